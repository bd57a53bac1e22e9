"""The bench's isolation between runs, without services: one run per name at a time (machine-wide
lock), the process groups a dead run left behind are reaped (and only those), and the bare-chain
counter is named after the run, so a smoke run and a full run never count each other's chains."""

import argparse
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from bench import procs
from bench.run import bench_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def name():
    name = f"bench_isolation_test_{uuid.uuid4().hex[:8]}"
    yield name
    for suffix in (".bench.lock", ".bench.pids"):
        Path(f"/tmp/{name}{suffix}").unlink(missing_ok=True)


def take_lock(name: str, wait: float, hold: float = 0.0) -> subprocess.Popen:
    code = (
        f"import time; from bench import procs; procs.lock_run({name!r}, wait={wait}, log=lambda m: None); "
        f"print('locked', flush=True); time.sleep({hold})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_second_run_of_the_same_name_waits_for_the_first(name):
    holder = take_lock(name, wait=5, hold=30)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = take_lock(name, wait=1)
        _, err = second.communicate(timeout=30)
        assert second.returncode != 0 and "held /tmp/" in err
        other = take_lock(f"{name}_other", wait=1)  # another name is not blocked
        assert other.communicate(timeout=30)[0].strip() == "locked"
    finally:
        holder.kill()
        holder.wait()
    third = take_lock(name, wait=5)  # the kernel released the dead holder's lock
    assert third.communicate(timeout=30)[0].strip() == "locked"
    Path(f"/tmp/{name}_other.bench.lock").unlink(missing_ok=True)


def test_leftovers_of_a_dead_run_are_killed_and_nothing_else(name):
    left = subprocess.Popen(["sleep", "60"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        created = psutil.Process(left.pid).create_time()
        Path(f"/tmp/{name}.bench.pids").write_text(
            # the stranger: a recycled pid (other start time)
            f"{left.pid} {created}\n{stranger.pid} {psutil.Process(stranger.pid).create_time() - 5}\n"
        )
        assert procs.reap_leftovers(name, log=lambda m: None) == 1
        assert left.wait(timeout=10) == -9
        assert stranger.poll() is None
        assert Path(f"/tmp/{name}.bench.pids").read_text() == ""
    finally:
        procs._REGISTRY = None
        for p in (left, stranger):
            p.kill()
            p.wait()


def test_the_bare_chain_counter_is_named_after_the_run():
    def env(run_name):
        args = argparse.Namespace(name=run_name, redis_db=12, env=[])
        return bench_env(args)

    smoke, full = env("orders_bench_smoke"), env("orders_bench")
    assert smoke["BENCH_CEILING_DONE_KEY"] != full["BENCH_CEILING_DONE_KEY"]
    assert smoke["REDIS_URL"] == full["REDIS_URL"]  # same Redis db: the key is what keeps them apart
