"""The bench derives its processes from the Procfile, whatever its workers look like (dedicated workers or
one worker on several queues, flags like -E, short or long options), without services."""

from pathlib import Path

import pytest

from bench import procs
from bench.load import Catalog
from bench.run import Sizes, ceiling_specs, cpu_per_order, enrichment_split, reference_step, step_ok

DEDICATED = """\
web: gunicorn orders_project.wsgi:application --config python:orders_project.gunicorn_conf --bind 0.0.0.0:${WEB_PORT:-8000}
live: uvicorn orders_project.asgi:application --host 0.0.0.0 --port ${LIVE_PORT:-8001}
worker_process: celery -A orders_project worker -Q process -n process@%h --concurrency ${PROCESS_CONCURRENCY:-2} -E
worker_enrichment: celery -A orders_project worker -Q enrichment -n enrichment@%h --pool threads --concurrency ${ENRICHMENT_CONCURRENCY:-16} -E
worker_finalize: celery -A orders_project worker -Q finalize -n finalize@%h --concurrency ${FINALIZE_CONCURRENCY:-2} -E
relay: python manage.py relay_outbox
"""  # noqa: E501  Procfile lines cannot be wrapped
SHARED = """\
web: gunicorn orders_project.wsgi:application --bind=0.0.0.0:${WEB_PORT:-8000}
worker: celery -A orders_project worker -Qprocess,enrichment,finalize -c ${WORKER_CONCURRENCY:-3} -E
worker_slow: celery -A orders_project worker --queues=enrichment,other --pool=threads
archiver: python manage.py archive_dead_letters
"""


def procfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Procfile"
    path.write_text(text)
    return path


def test_every_listen_address_is_loopback_and_the_web_port_follows_the_environment(tmp_path):
    commands = procs.procfile_commands({"WEB_PORT": "4321"}, procfile(tmp_path, DEDICATED))
    assert commands["web"][-2:] == ["--bind", "127.0.0.1:4321"]
    assert commands["live"][2:4] == ["--host", "127.0.0.1"]
    assert procs.procfile_commands({}, procfile(tmp_path, SHARED))["web"][-1] == "--bind=127.0.0.1:8000"


def test_serve_on_rewrites_gunicorn_binds_and_uvicorn_host_port(tmp_path):
    web = procs.procfile_commands({}, procfile(tmp_path, DEDICATED))["web"]
    assert procs.serve_on(web, "127.0.0.1", 99)[-2:] == ["--bind", "127.0.0.1:99"]
    live = procs.serve_on(procs.procfile_commands({}, procfile(tmp_path, DEDICATED))["live"], "127.0.0.1", 98)
    assert live[live.index("--host") + 1] == "127.0.0.1" and live[live.index("--port") + 1] == "98"
    assert procs.serve_on(["gunicorn", "app", "--bind=0.0.0.0:1"], "127.0.0.1", 97) == [
        "gunicorn",
        "app",
        "--bind=127.0.0.1:97",
    ]
    assert procs.serve_on(["gunicorn", "app"], "127.0.0.1", 96) == ["gunicorn", "app", "--bind", "127.0.0.1:96"]


def test_workers_are_every_entry_named_worker_with_queues_pool_and_concurrency(tmp_path):
    workers = procs.procfile_workers({"ENRICHMENT_CONCURRENCY": "32"}, procfile(tmp_path, DEDICATED))
    assert [(w.name, w.queues, w.pool, w.concurrency) for w in workers] == [
        ("worker_process", ["process"], "prefork", 2),
        ("worker_enrichment", ["enrichment"], "threads", 32),
        ("worker_finalize", ["finalize"], "prefork", 2),
    ]
    shared = procs.procfile_workers({}, procfile(tmp_path, SHARED))
    assert [(w.name, w.queues, w.pool) for w in shared] == [
        ("worker", ["process", "enrichment", "finalize"], "prefork"),
        ("worker_slow", ["enrichment", "other"], "threads"),
    ]
    assert shared[0].concurrency == 3 and "-E" in shared[0].argv


def test_set_option_replaces_every_spelling_or_appends():
    assert procs.set_option(["celery", "worker", "-Qa,b", "-c4"], procs.QUEUES_OPT, "x") == [
        "celery",
        "worker",
        "-Q",
        "x",
        "-c4",
    ]
    assert procs.set_option(["w", "--concurrency=4"], procs.CONCURRENCY_OPT, "9") == ["w", "--concurrency=9"]
    assert procs.set_option(["w", "--concurrency", "4", "-E"], procs.CONCURRENCY_OPT, "9") == [
        "w",
        "--concurrency",
        "9",
        "-E",
    ]
    assert procs.set_option(["w", "-E"], procs.POOL_OPT, "threads") == ["w", "-E", "-P", "threads"]


def test_ceiling_workers_mirror_the_procfile_workers_on_the_bare_chain_queues(tmp_path):
    dedicated = ceiling_specs(procs.procfile_workers({}, procfile(tmp_path, DEDICATED)))
    assert [(w.name, w.queues, w.pool, w.concurrency) for w in dedicated] == [
        ("worker_process", ["bench.a"], "prefork", 2),
        ("worker_enrichment", ["bench.b"], "threads", 16),
        ("worker_finalize", ["bench.c"], "prefork", 2),
    ]
    assert all("-E" in w.argv for w in dedicated)
    shared = ceiling_specs(procs.procfile_workers({}, procfile(tmp_path, SHARED)))
    assert [(w.name, w.queues) for w in shared] == [
        ("worker", ["bench.a", "bench.b", "bench.c"]),
        ("worker_slow", ["bench.b"]),
    ]
    assert procs.option(shared[0].argv, *procs.QUEUES_OPT) == "bench.a,bench.b,bench.c"


def test_enrichment_split_keeps_pools_and_takes_the_enrichment_queue_apart(tmp_path):
    rest, enrich = enrichment_split(procs.procfile_workers({}, procfile(tmp_path, DEDICATED)))
    assert [w.name for w in rest] == ["worker_process", "worker_finalize"]
    assert [(w.name, w.queues, w.pool) for w in enrich] == [("worker_enrichment", ["enrichment"], "threads")]
    rest, enrich = enrichment_split(procs.procfile_workers({}, procfile(tmp_path, SHARED)))
    assert [(w.name, w.queues) for w in rest] == [("worker", ["process", "finalize"]), ("worker_slow", ["other"])]
    assert [(w.name, w.queues, w.pool) for w in enrich] == [
        ("worker", ["enrichment"], "prefork"),
        ("worker_slow", ["enrichment"], "threads"),
    ]


def test_the_real_procfile_has_workers_for_every_stage_queue():
    from bench.run import STAGE_QUEUES

    workers = procs.procfile_workers({})
    assert workers and {q for w in workers for q in w.queues} >= set(STAGE_QUEUES)
    assert ceiling_specs(workers)


def test_zipf_catalog_is_skewed_and_hot_catalog_is_the_demo_skus():
    import random

    rng = random.Random(3)
    zipf = Catalog("zipf", s=1.1)
    picks = [sku for _ in range(3000) for sku in zipf.pick(rng, rng.randint(1, 3))]
    assert all(sku.startswith("Z") and len(sku) == 5 for sku in picks)
    assert picks.count("Z0000") > picks.count("Z0010") > picks.count("Z0500")
    assert len(set(zipf.pick(rng, 3))) == 3
    assert set(Catalog("hot").pick(rng, 3)) <= {"ABC", "XYZ", "Notebook", "Pen", "Mug"}
    with pytest.raises(ValueError):
        Catalog("nope")


def test_sustained_step_helpers():
    cost = {"web": {"cpu_s": 1.0}, "worker_process": {"cpu_s": 2.0}, "postgres (shared)": {"cpu_s": 1.0}}
    per = cpu_per_order(cost, 200)
    assert (
        per["cpu_ms_per_order"]["web"] == 5.0
        and per["cpu_ms_per_order_total"] == 20.0
        and per["cpu_ms_per_order_own"] == 15.0
    )
    assert cpu_per_order(cost, 0)["cpu_ms_per_order_total"] is None
    good = {"end": "done", "errors": 0, "failed": 0, "sent": 10, "accepted": 10, "completed": 10, "p99_ms": 200.0}
    assert step_ok(good, 250) and not step_ok({**good, "p99_ms": 300.0}, 250)
    assert not step_ok({**good, "completed": 9}, 250) and not step_ok({**good, "errors": 1}, 250)
    phase = {"steps": [{"rate": 25.0}, {"rate": 75.0}, {"rate": 100.0, "skipped": "x"}]}
    assert reference_step(phase, 50)["rate"] == 25.0 and reference_step(phase, 90)["rate"] == 75.0
    assert Sizes().sustained_rates == (25.0, 35.0, 45.0, 55.0, 75.0, 100.0) and Sizes().sustained_seconds == 60.0
