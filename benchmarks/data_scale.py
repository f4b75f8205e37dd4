"""Data-scale benchmark: ingest minute bars into an S3 snapshot, then backtest symbol-years through the worker cache.

Run ``python benchmarks/data_scale.py`` (defaults: 10 symbols x 2 years, 100 jobs over 20 distinct
symbol-years). The issue's full size is ``--symbols 500 --years 10`` (about 490 million rows); on a
shared 2-core machine run a small size and extrapolate from rows/s and bytes/row, as printed.

1. **Ingest**: seeded synthetic one-minute bars, one symbol at a time in one snapshot, into
   ``s3://bench/data`` on moto's S3 server (loopback): rows/s and bytes on the store.
2. **Backtests through the cache**: ``--jobs`` SMA-crossover jobs, each on one symbol-year of
   minute bars (drawn with a fixed seed from ``--distinct`` symbol-years, so repeats are what a
   team's traffic looks like), submitted at once to a local worker (2 slots, forkserver launcher:
   the sandbox cannot read remote data yet) whose children read through the worker's file cache.
   Printed: wall time, jobs/min, bytes the jobs asked for, bytes fetched from the store (the
   cache's growth: every miss writes one file there; nothing is evicted at this size), and the
   hit rate by bytes. Then the same jobs again on the warm cache.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--distinct", type=int, default=20, help="distinct symbol-years the jobs draw from")
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()

    import boto3

    from quantfleet.core.settings import Settings
    from quantfleet.core.types import Frequency
    from quantfleet.data import MarketDataStore
    from quantfleet.data.ingest.synthetic import synthetic_bars
    from quantfleet.jobs import JobService, JobSpec, JobState

    root = Path(tempfile.mkdtemp(prefix="qf-bench-datascale-"))
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION":
                       "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})  # fmt: skip
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    pause = threading.Event()
    worker = None
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for _ in range(200):
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:
                pause.wait(0.1)
        settings = Settings(home=root / "home", data_url="s3://bench/data", s3_endpoint_url=endpoint,
                            cache_dir=root / "cache", cache_capacity_gb=50)  # fmt: skip
        store = MarketDataStore.from_settings(settings)
        symbols = [f"S{i:03d}" for i in range(args.symbols)]
        first, last = 2024 - args.years + 1, 2024
        rows = 0

        def batches():  # one symbol at a time: memory stays at one symbol's bars
            nonlocal rows
            for i, symbol in enumerate(symbols):
                bars = synthetic_bars([symbol], start=date(first, 1, 1), end=date(last, 12, 31), frequency="1m",
                                      seed=i, actions=False).bars  # fmt: skip
                rows += bars.num_rows if hasattr(bars, "num_rows") else len(bars)
                yield bars

        started = time.perf_counter()
        store.ingest_bars(batches(), frequency="1m", source="bench")
        ingest = time.perf_counter() - started
        stored = sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench")
                     for o in page.get("Contents", []))  # fmt: skip
        print(f"ingest: {rows:,} one-minute bars ({args.symbols} symbols x {args.years} years) in {ingest:.1f} s: "
              f"{rows / ingest:,.0f} rows/s (generation included), {stored / 1e6:,.1f} MB on the store, "
              f"{stored / rows:.1f} bytes/row")  # fmt: skip
        full = 500 * 10 * rows / (args.symbols * args.years)
        gb = full * stored / rows / 1e9
        print(f"  extrapolated to 500 symbols x 10 years: {full / 1e6:,.0f} M rows, {gb:,.1f} GB, "
              f"{full / (rows / ingest) / 3600:,.1f} h of ingest at this rate on one process")  # fmt: skip

        snapshot = int(store.resolve(None))
        service = JobService.from_settings(settings)
        sma = ROOT / "examples" / "sma_crossover.py"
        code = service.put_code(sma.read_bytes(), sma.name)
        rng = random.Random(7)
        pool = [(s, y) for s in symbols for y in range(first, last + 1)]
        popular = rng.sample(pool, min(args.distinct, len(pool)))
        picks = [rng.choice(popular) for _ in range(args.jobs)]
        env = {**os.environ, "QUANTFLEET_HOME": str(settings.home), "QUANTFLEET_DATA_URL": settings.data_url or "",
               "QUANTFLEET_S3_ENDPOINT_URL": endpoint, "QUANTFLEET_CACHE_DIR": str(root / "cache"),
               "QUANTFLEET_CACHE_CAPACITY_GB": "50"}  # fmt: skip
        log = (root / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "quantfleet.cli.app", "worker", "--slots", str(args.slots),
                                   "--launcher", "forkserver"], env=env, stdout=log, stderr=log)  # fmt: skip

        def wave(label: str) -> None:
            before, _ = _folder_bytes(root / "cache")
            started = time.perf_counter()
            ids = [service.submit(JobSpec(code=code, universe=(s,), snapshot=snapshot, frequency=Frequency.parse("1m"),
                                          start=date(y, 1, 1), end=date(y, 12, 31), owner="bench",
                                          params={"fast": 10, "slow": 30})).id for s, y in picks]  # fmt: skip
            while service.list(state=[JobState.QUEUED, JobState.RUNNING], limit=1).items:
                pause.wait(0.1)
            wall = time.perf_counter() - started
            failed = [service.get(i) for i in ids if service.get(i).state is not JobState.SUCCEEDED]
            assert not failed, failed[0].error
            after, files = _folder_bytes(root / "cache")
            per_year = stored / len(pool)  # symbol-years are the same size: bytes one job asks for
            asked = per_year * len(picks)
            fetched = after - before
            print(f"{label}: {len(ids)} jobs ({len(set(picks))} distinct symbol-years, {args.slots} slots) in "
                  f"{wall:.1f} s, {60 * len(ids) / wall:.0f} jobs/min; asked {asked / 1e6:,.1f} MB, fetched "
                  f"{fetched / 1e6:,.1f} MB from the store, cache hit rate {1 - fetched / asked:.0%} by bytes "
                  f"({files} files cached)")  # fmt: skip

        wave("cold cache")
        wave("warm cache")
        log.close()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        moto.terminate()
        moto.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
