"""Job-system benchmark: submit-to-running latency, throughput, and the cost of running a backtest as a job.

Run ``python benchmarks/jobs.py`` (add ``--quick`` for a ~0.5 s backtest instead
of a ~4 s one: 180 symbols x 15 years of daily bars). In a temporary home (SQLite, local objects, synthetic data)
it measures, on a local worker with 2 slots and the fork-server launcher:

1. **submit to running** (p50, p95): jobs submitted one at a time through a
   second job service with no ``notify`` hook, as from another process (the
   CLI), so the worker sees each through its 50 ms idle poll; the time from
   the job row's ``submitted_at`` to its ``started_at`` (both the database's
   clock). Goal: p50 under 100 ms.
2. **throughput**: 100 trivial jobs submitted at once; completed jobs per
   second until the last one ends.
3. **overhead**: the same SMA-crossover backtest run in-process with
   ``run_spec`` and as a job (submit to succeeded, artifacts uploaded),
   as the ratio job / in-process (each on a freshly opened data store). Goal: under 1.10 for a ~10 s backtest; the
   fixed cost is a few hundred ms, so a ~4 s backtest already shows it. The
   fork server keeps the heavy imports (pandas, pyarrow, numba, plotly) out of
   each job's start-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A ~0.5 s backtest for the overhead (default ~4 s).")
    parser.add_argument("--latency-jobs", type=int, default=40)
    parser.add_argument("--throughput-jobs", type=int, default=100)
    args = parser.parse_args()

    from quantfleet.core.settings import Settings
    from quantfleet.data import MarketDataStore
    from quantfleet.data.ingest.synthetic import synthetic_bars
    from quantfleet.dispatch.pool import worker_from_settings
    from quantfleet.engine import EngineConfig
    from quantfleet.jobs import JobService, JobSpec, JobState
    from quantfleet.sandbox import BacktestSpec, run_spec
    from quantfleet.testing.jobs import COUNTING_STRATEGY, write_strategy

    home = Path(tempfile.mkdtemp(prefix="qf-bench-jobs-"))
    settings = Settings(home=home / "home")
    store = MarketDataStore.from_settings(settings)
    years = 3 if args.quick else 15
    symbols = [f"S{i:02d}" for i in range(8 if args.quick else 180)]
    data = synthetic_bars(symbols, start=date(2024 - years, 1, 1), end=date(2024, 12, 31), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="bench")
    snapshot = int(store.resolve(None))

    service = JobService.from_settings(settings)
    worker = worker_from_settings(settings, slots=2, service=service)
    stop = threading.Event()
    serving = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    serving.start()
    other = JobService.from_settings(settings)  # no notify: like a submit from another process
    trivial = write_strategy(home, "trivial.py", COUNTING_STRATEGY)
    code = other.put_code(trivial.read_bytes(), trivial.name)

    def spec(**kw: object) -> JobSpec:
        return JobSpec(code=code, universe=(symbols[0],), snapshot=snapshot, owner="bench", **kw)  # type: ignore[arg-type]

    def wait_all(ids: list[str]) -> None:
        pause = threading.Event()
        if len(ids) == 1:
            while not other.get(ids[0]).terminal:  # type: ignore[arg-type]
                pause.wait(0.01)
            return
        while other.list(state=[JobState.QUEUED, JobState.RUNNING], limit=1).items:
            pause.wait(0.05)  # one cheap query, not one per job: the benchmark must not load the database

    wait_all([other.submit(spec()).id])  # warm: the fork server and the first child
    latencies = []
    for _ in range(args.latency_jobs):
        job = other.submit(spec())
        wait_all([job.id])
        done = other.get(job.id)
        assert done.started_at is not None
        latencies.append((done.started_at - done.submitted_at).total_seconds() * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"submit to running: p50 {p50:.0f} ms, p95 {p95:.0f} ms ({len(latencies)} jobs, 2 slots, 50 ms idle poll)")

    started = time.perf_counter()
    ids = [other.submit(spec(params={"tag": i})).id for i in range(args.throughput_jobs)]
    wait_all(ids)
    elapsed = time.perf_counter() - started
    ok = sum(other.get(i).state is JobState.SUCCEEDED for i in ids)
    print(f"throughput: {ok / elapsed:.1f} jobs/s ({ok} trivial jobs in {elapsed:.1f} s, 2 slots)")

    sma = ROOT / "examples" / "sma_crossover.py"
    engine = EngineConfig(warmup=30)
    bt = BacktestSpec(strategy=sma, symbols=tuple(symbols), snapshot=snapshot, engine=engine)
    run_spec(bt, MarketDataStore.from_settings(settings), home / "warm")  # lazy imports, OS page cache
    started = time.perf_counter()
    run_spec(bt, MarketDataStore.from_settings(settings), home / "direct")  # a fresh store, as a job's child has
    direct = time.perf_counter() - started
    sma_code = other.put_code(sma.read_bytes(), sma.name)
    job_spec = JobSpec(code=sma_code, universe=tuple(symbols), snapshot=snapshot, owner="bench",
                       engine=engine.model_dump(mode="json"))  # fmt: skip
    started = time.perf_counter()
    job = other.submit(job_spec)
    wait_all([job.id])
    as_job = time.perf_counter() - started
    assert other.get(job.id).state is JobState.SUCCEEDED, other.get(job.id).error
    print(f"overhead: in-process {direct:.2f} s, as a job {as_job:.2f} s, ratio {as_job / direct:.3f}")

    stop.set()
    serving.join()
    worker.shutdown(grace=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
