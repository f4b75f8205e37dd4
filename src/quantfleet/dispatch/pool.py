"""Build a worker from settings, and run one until told to stop (``quantfleet worker`` and ``quantfleet up``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from quantfleet.core.settings import Settings
from quantfleet.data.storage import is_remote
from quantfleet.dispatch.launcher import LAUNCHERS, ChildLauncher, child_environment
from quantfleet.dispatch.task import DataRef
from quantfleet.dispatch.trusted import launcher_from_settings
from quantfleet.dispatch.worker import Worker, WorkerConfig, default_worker_name
from quantfleet.jobs import JobId, JobService

__all__ = ["run_worker", "worker_from_settings"]


def worker_from_settings(
    settings: Settings,
    *,
    slots: int | None = None,
    name: str | None = None,
    launcher: str | ChildLauncher | None = None,
    poll_seconds: float = 0.05,
    service: JobService | None = None,
) -> Worker:
    """Return a worker on the settings' database, object store and data, its launcher started.

    ``launcher``: a launcher's name (checked against the sandbox policy, see
    :mod:`quantfleet.dispatch.trusted`; default the settings'), or a launcher
    the caller built and vouches for. Without ``service``, one is opened whose
    ``notify`` wakes this worker, so jobs submitted in this process start at once.
    """
    holder: list[Worker] = []

    def notify(job_id: JobId) -> None:
        if holder:
            holder[0].wake(job_id)

    jobs = service or JobService.from_settings(settings, notify=notify)
    data = DataRef.from_settings(settings)
    env = child_environment(os.environ, remote_data=is_remote(data.url))
    if launcher is None or isinstance(launcher, str):
        child_launcher = launcher_from_settings(settings, env, service=jobs, kind=launcher)
    else:
        child_launcher = launcher
    start = getattr(child_launcher, "start", None)
    if start is not None:
        start()  # the fork server starts now, with the scrubbed environment, before any slot thread
    config = WorkerConfig(
        data=data,
        work_root=(settings.home / "work").resolve(),
        name=name or default_worker_name(),
        slots=slots or (os.cpu_count() or 1),
        poll_seconds=poll_seconds,
        lease_seconds=settings.lease_seconds,
    )
    worker = Worker(jobs, config, launcher=child_launcher)
    holder.append(worker)
    return worker


def run_worker(
    worker: Worker,
    stop: threading.Event,
    *,
    grace: Callable[[], float] | float = 30.0,
) -> None:
    """Serve until ``stop`` is set, then let running jobs finish for ``grace`` seconds and re-queue the rest."""
    try:
        worker.serve(stop)
    finally:
        worker.shutdown(grace=grace() if callable(grace) else grace)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m quantfleet.dispatch.pool [--slots N] [--name NAME]``: a worker without the CLI's faces.

    Settings come from the ``QUANTFLEET_*`` environment; SIGINT or SIGTERM stops it
    (running jobs get ``--grace`` seconds, then are re-queued).
    """
    import argparse
    import signal

    from quantfleet.core.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m quantfleet.dispatch.pool")
    parser.add_argument("--slots", type=int, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--launcher", default=None, choices=LAUNCHERS, help="default: QUANTFLEET_WORKER_LAUNCHER")
    args = parser.parse_args(argv)
    worker = worker_from_settings(load_settings(), slots=args.slots, name=args.name, launcher=args.launcher)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"worker {worker.config.name} ready with {worker.config.slots} slots", flush=True)
    run_worker(worker, stop, grace=args.grace)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    raise SystemExit(main())
