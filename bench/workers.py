"""The Procfile's Celery workers as the bench runs them: every worker (the pipeline phases), the enrichment
consumers apart from the rest (the enrichment phases), or the same topology on the bare chain's queues
(the ceiling). Each is sampled (CPU, RSS) under its Procfile name."""

import uuid
from pathlib import Path

from bench import procs
from bench.env import CELERY
from devtools.procs import wait_until

ENRICHMENT_QUEUE = "enrichment"
WORKER_STOP_GRACE = 1.0  # seconds between SIGTERM and SIGKILL for the workers of a finished phase


def enrichment_split(workers: list[procs.WorkerSpec]) -> tuple[list[procs.WorkerSpec], list[procs.WorkerSpec]]:
    """The workers without the enrichment queue (the rest of the pipeline), and those that consume it, on
    the enrichment queue only (same pool and concurrency). With the Procfile's dedicated workers that is
    every worker but worker_enrichment, and worker_enrichment; with one worker on all the queues, that
    worker on process+finalize, and the same worker on enrichment."""
    rest, enrich = [], []
    for spec in workers:
        others = [q for q in spec.queues if q != ENRICHMENT_QUEUE]
        if others:
            rest.append(spec if len(others) == len(spec.queues) else spec.with_queues(others))
        if ENRICHMENT_QUEUE in spec.queues:
            enrich.append(spec.with_queues([ENRICHMENT_QUEUE]))
    return rest, enrich


def ceiling_specs(workers: list[procs.WorkerSpec], stage_queues: tuple[str, ...]) -> list[procs.WorkerSpec]:
    """The workers, each on the bare chain's queues instead of the stages' (process -> bench.a,
    enrichment -> bench.b, finalize -> bench.c): the same topology, pools and concurrencies; a queue
    that is not a stage's is dropped, and so is a worker left without any."""
    from bench.ceiling_celery import QUEUES

    mapping = dict(zip(stage_queues, QUEUES, strict=False))
    specs = []
    for spec in workers:
        queues = [mapping[q] for q in spec.queues if q in mapping]
        if queues:
            specs.append(spec.with_queues(queues))
    return specs


def pipeline_env(env: dict, latency_ms: int = 0) -> dict:
    return {**env, "ENRICHMENT_LATENCY_MS": str(latency_ms)}


class Workers:
    """Starts and stops the run's Celery workers. `stage_queues`: the product's stage queues, in order
    (bench/run.py reads them from the broker topology)."""

    def __init__(self, env: dict, logs: Path, sampler: procs.Sampler, queues, sizes, stage_queues: tuple[str, ...]):
        self.env, self.logs, self.sampler, self.queues, self.sizes = env, logs, sampler, queues, sizes
        self.stage_queues = stage_queues

    def specs(self, env: dict) -> list[procs.WorkerSpec]:
        """Every worker of the Procfile (entries named worker*), expanded from `env`."""
        return procs.procfile_workers(env)

    def enrichment_split(self, env: dict) -> tuple[list[procs.WorkerSpec], list[procs.WorkerSpec]]:
        return enrichment_split(self.specs(env))

    def ceiling_specs(self, env: dict) -> list[procs.WorkerSpec]:
        return ceiling_specs(self.specs(env), self.stage_queues)

    def start(
        self, specs: list[procs.WorkerSpec], env: dict, *, app: str | None = None, kind_prefix: str = ""
    ) -> list[procs.Proc]:
        """One Celery worker per spec (its own node name); ready when each of their queues has as many
        consumers as workers started on it (the Procfile's log level hides 'ready')."""
        started: list = []
        expected: dict = {}
        for spec in specs:
            tag = uuid.uuid4().hex[:6]
            argv = [CELERY if a == "celery" else a for a in spec.argv]
            if app:
                argv = procs.set_option(argv, ("-A", "--app"), app)
            node = procs.option(argv, "-n", "--hostname") or f"{spec.name}@%h"
            argv = procs.set_option(
                argv, ("-n", "--hostname"), node.replace("@", f"-{tag}@") if "@" in node else f"{node}-{tag}"
            )
            if app:
                # The bare chain's workers: no gossip, mingle or heartbeat events. The product's run as the
                # Procfile has them (their heartbeats are Flower's worker list; without the Events step no
                # task event can be turned on, which hid Flower's cost from the bench before issue 29).
                argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            kind = f"{kind_prefix}{spec.name}"
            proc = procs.start(f"{kind}-{tag}", kind, argv, env, self.logs)
            self.sampler.track(kind, proc.pid)
            started.append(proc)
            for queue in spec.queues:
                expected[queue] = expected.get(queue, 0) + 1
        if started:
            self.wait_consumers(started, expected)
        return started

    def wait_consumers(self, started: list, queues: dict[str, int]) -> None:
        """Workers are ready when their queues have their consumers (the Procfile's log level hides 'ready')."""

        def ready():
            for proc in started:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
            return all(self.queues.consumers(q) >= n for q, n in queues.items())

        wait_until(ready, timeout=self.sizes.start_timeout, what=f"consumers on {queues}", interval=0.2)

    def start_pipeline(self, *, latency_ms: int = 0, specs: list[procs.WorkerSpec] | None = None) -> list[procs.Proc]:
        env = pipeline_env(self.env, latency_ms)
        return self.start(self.specs(env) if specs is None else specs, env)

    def start_ceiling(self) -> list[procs.Proc]:
        env = {k: v for k, v in self.env.items() if k != "DJANGO_SETTINGS_MODULE"}
        return self.start(self.ceiling_specs(env), env, app="bench.ceiling_celery", kind_prefix="ceiling_")

    def stop(self, started: list[procs.Proc]) -> None:
        """Workers at the end of a phase: nothing is in flight any more (the phase waited for it), so a
        warm shutdown buys nothing, and a threads-pool worker takes up to 10 s to notice SIGTERM (its
        event loop sleeps in epoll until the next timer, up to 10 s): SIGKILL after WORKER_STOP_GRACE."""
        started = [p for p in started if p is not None]
        procs.stop(started, grace=WORKER_STOP_GRACE)
        for p in started:
            self.sampler.forget(p.kind, [p.pid])
