"""Scale benchmark: completed short backtests per minute against worker slots, local pool and Celery.

Run ``python benchmarks/scale.py`` (``--slots 1,2,4`` up to the cores; ``--jobs`` per point).
Each point starts a real worker process with N slots (``quantfleet worker``), submits the same
short backtest (the SMA crossover on 3 symbols x 3 years of daily bars) ``--jobs`` times at once,
and times first submit to last end. Backends: the local pool on SQLite (the one-machine default)
and Celery over a private ``redis-server`` with PostgreSQL (a fresh schema on 127.0.0.1:5432).

Printed per point: jobs/min, scaling efficiency (throughput / (N x the 1-slot throughput)), the mean
run time of one job (started -> finished) and the mean dispatch gap (wall x N / jobs - run time:
claim, start-up, upload, record). If the run time grows with N the cores are the limit; if the gap
grows, the database or the broker is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _check_alive(worker: subprocess.Popen[bytes], home: Path) -> None:
    """Stop the benchmark if the worker exited (a sandbox it cannot set up, say), instead of waiting forever."""
    if worker.poll() is not None:
        raise SystemExit(f"the worker exited with code {worker.returncode}; see {home / 'worker.log'}")


def _point(backend: str, slots: int, jobs: int, *, database: str | None, broker: str | None, root: Path) -> dict:
    from quantfleet.core.settings import Settings
    from quantfleet.data import MarketDataStore
    from quantfleet.data.ingest.synthetic import synthetic_bars
    from quantfleet.dispatch.notify import submit_notifier
    from quantfleet.engine import EngineConfig
    from quantfleet.jobs import JobService, JobSpec, JobState

    home = root / f"{backend}-{slots}"
    settings = Settings(home=home, database_url=database, broker_url=broker)
    store = MarketDataStore.from_settings(settings)
    data = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2022, 1, 1), end=date(2024, 12, 31), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="bench")
    service = JobService.from_settings(settings, notify=submit_notifier(settings))
    sma = ROOT / "examples" / "sma_crossover.py"
    code = service.put_code(sma.read_bytes(), sma.name)
    spec = JobSpec(code=code, universe=("AAA", "BBB", "CCC"), snapshot=int(store.resolve(None)), owner="bench",
                   engine=EngineConfig(warmup=30).model_dump(mode="json"))  # fmt: skip
    env = {**os.environ, "QUANTFLEET_HOME": str(home)}
    for name, value in (("QUANTFLEET_DATABASE_URL", database), ("QUANTFLEET_BROKER_URL", broker)):
        if value:
            env[name] = value
    log = (home / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "quantfleet.cli.app", "worker", "--slots", str(slots)],
                              env=env, stdout=log, stderr=log)  # fmt: skip
    pause = threading.Event()
    try:
        warm = service.submit(spec.model_copy(update={"params": {"fast": 5}}))  # the fork server and imports
        while not service.get(warm.id).terminal:
            _check_alive(worker, home)
            pause.wait(0.1)
        started = time.perf_counter()
        ids = [service.submit(spec.model_copy(update={"params": {"fast": 5 + i % 10}})).id for i in range(jobs)]
        while service.list(state=[JobState.QUEUED, JobState.RUNNING], limit=1).items:
            _check_alive(worker, home)
            pause.wait(0.05)
        wall = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()
    done = [service.get(i) for i in ids]
    ok = [j for j in done if j.state is JobState.SUCCEEDED]
    assert len(ok) == jobs, [j.error for j in done if j.state is not JobState.SUCCEEDED][:2]
    run = statistics.mean((j.finished_at - j.started_at).total_seconds() for j in ok)  # type: ignore[operator]
    service.db.dispose()
    return {"backend": backend, "slots": slots, "wall": wall, "per_min": 60 * jobs / wall, "run": run,
            "gap": wall * slots / jobs - run}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="1,2", help="comma-separated slot counts (default 1,2)")
    parser.add_argument("--jobs", type=int, default=16, help="backtests per point")
    parser.add_argument("--backends", default="local,celery")
    args = parser.parse_args()
    slot_counts = [int(s) for s in args.slots.split(",")]
    root = Path(tempfile.mkdtemp(prefix="qf-bench-scale-"))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other work shares them)")
    results = []
    with ExitStack() as stack:
        for backend in args.backends.split(","):
            database = broker = None
            if backend == "celery":
                from quantfleet.testing.databases import postgres_schema

                database = stack.enter_context(postgres_schema())
                port = _free_port()
                redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                                          "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
                stack.callback(lambda r=redis: (r.terminate(), r.wait(10)))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with socket.socket() as s:
                        if s.connect_ex(("127.0.0.1", port)) == 0:
                            break
                    threading.Event().wait(0.05)
                broker = f"redis://127.0.0.1:{port}/0"
            base = None
            for slots in slot_counts:
                r = _point(backend, slots, args.jobs, database=database, broker=broker, root=root)
                base = base or r["per_min"] / slots
                r["efficiency"] = r["per_min"] / (slots * base)
                results.append(r)
                print(f"{backend:6} {slots} slot(s): {r['per_min']:6.1f} backtests/min  "
                      f"efficiency {r['efficiency']:4.0%}"
                      f"  run {r['run']:.2f} s/job  dispatch gap {r['gap']:.2f} s/job  ({args.jobs} jobs, "
                      f"{r['wall']:.1f} s)", flush=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
