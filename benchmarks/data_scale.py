"""Data-scale benchmark: ingest minute bars into an S3 snapshot, then backtest symbol-years through the worker cache.

Run ``python benchmarks/data_scale.py`` (``--help`` lists every option with its default). The
defaults are the issue's full size: ``--symbols 500 --years 10`` (about 490 million one-minute
bars, 11 GB on the store) in one snapshot, then ``--jobs 100`` jobs over ``--distinct 20``
symbol-years on ``--slots 2``. moto's S3 server keeps every object in memory, so the full size
needs about 15 GB of free memory for it and, on one process, about 15-30 minutes of ingest; on a
shared machine run a smaller ``--symbols`` and extrapolate from the printed rows/s and bytes/row
(the jobs' figures do not depend on the size of the store: each job reads one symbol-year).

1. **Ingest**: seeded synthetic one-minute bars, generated one symbol at a time and streamed into
   one snapshot (``--commit-symbols 0``, the default; N commits every N symbols) in
   ``s3://bench/data`` on moto's S3 server (loopback), with a progress bar: rows/s (generation
   included), bytes on the store, and the peak memory of this process and of the S3 server. The
   ingest's memory stays bounded whatever the size: each partition's file is written as soon as
   it is complete (one symbol's bars in flight), and the seen-timestamp check keeps runs.
2. **Backtests through the cache**: ``--jobs`` SMA-crossover jobs, each on one symbol-year of
   minute bars (drawn with a fixed seed from ``--distinct`` symbol-years, so repeats are what a
   team's traffic looks like), submitted at once to a local worker (forkserver launcher: the
   sandbox cannot read remote data yet) whose children read through the worker's file cache.
   Printed: wall time, jobs/min, bytes the jobs asked for, bytes of data files fetched from the
   store and the hit rate by bytes, and what else the S3 server answered while the jobs ran (it
   counts the bytes it serves, see ``benchmarks/_counting_s3.py``): Delta-log GETs, listings, HEADs.
   Then the same jobs again on the warm cache, where a job reads no Delta log (the snapshot's file
   list is cached on the worker) and fetches only the data files it misses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ROOT = Path(__file__).resolve().parents[1]


def _folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sum(p.stat().st_size for p in files), len(files)


def _peak_mb(pid: int | str = "self") -> float:
    """Return a process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    return Progress(*columns, console=Console(stderr=True), transient=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=500, help="symbols of minute bars to ingest")
    parser.add_argument("--years", type=int, default=10, help="years of minute bars per symbol (ending 2024)")
    parser.add_argument("--jobs", type=int, default=100, help="backtest jobs, one symbol-year each")
    parser.add_argument("--distinct", type=int, default=20, help="distinct symbol-years the jobs draw from")
    parser.add_argument("--slots", type=int, default=2, help="worker slots")
    parser.add_argument("--commit-symbols", type=int, default=0,
                        help="symbols per commit (each a snapshot); 0: all in one snapshot")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work folder (store, cache, database)")
    args = parser.parse_args()

    import boto3

    from quantfleet.core.settings import Settings
    from quantfleet.core.types import Frequency
    from quantfleet.data import MarketDataStore
    from quantfleet.data.ingest.synthetic import synthetic_bars
    from quantfleet.jobs import JobService, JobSpec, JobState

    root = Path(tempfile.mkdtemp(prefix="qf-bench-datascale-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below: moto, the worker, the folder
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION":
                       "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})  # fmt: skip
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "_counting_s3.py"), str(port)],
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

        def batches(names: list[str], offset: int, bar: Progress, task: int):  # one symbol's bars in flight
            nonlocal rows
            for i, symbol in enumerate(names, start=offset):
                bars = synthetic_bars([symbol], start=date(first, 1, 1), end=date(last, 12, 31), frequency="1m",
                                      seed=i, actions=False).bars  # fmt: skip
                rows += bars.num_rows
                yield bars
                bar.update(task, advance=1, description=f"ingest {rows / 1e6:,.1f} M bars")

        started = time.perf_counter()
        step = args.commit_symbols or len(symbols)
        with _progress() as bar:
            task = bar.add_task("ingest", total=len(symbols))
            for lo in range(0, len(symbols), step):
                store.ingest_bars(batches(symbols[lo : lo + step], lo, bar, task), frequency="1m", source="bench")
        ingest = time.perf_counter() - started
        objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench")
                   for o in page.get("Contents", [])]  # fmt: skip
        stored = sum(o["Size"] for o in objects)
        log_bytes = sum(o["Size"] for o in objects if "/_delta_log/" in o["Key"])
        commits = -(-len(symbols) // step)
        print(f"ingest: {rows:,} one-minute bars ({args.symbols} symbols x {args.years} years, {commits} commits of "
              f"{step} symbols) in {ingest:.1f} s: "
              f"{rows / ingest:,.0f} rows/s (generation included), {stored / 1e6:,.1f} MB on the store, "
              f"{stored / rows:.1f} bytes/row; peak memory {_peak_mb():,.0f} MB here, "
              f"{_peak_mb(moto.pid):,.0f} MB in the S3 server")  # fmt: skip
        print(f"  {len(objects):,} objects; the Delta log is {log_bytes / 1e6:,.1f} MB (a worker reads it once "
              "per snapshot, then keeps the snapshot's file list in its cache)")  # fmt: skip
        expected = 500 * 10 * rows / (args.symbols * args.years)
        if (args.symbols, args.years) != (500, 10):
            gb = expected * stored / rows / 1e9
            print(f"  extrapolated linearly to 500 symbols x 10 years: {expected / 1e6:,.0f} M rows, {gb:,.1f} GB, "
                  f"{expected / (rows / ingest) / 60:,.0f} min of ingest at this rate on one process")  # fmt: skip

        snapshot = int(store.resolve(None))
        service = JobService.from_settings(settings)
        sma = ROOT / "examples" / "sma_crossover.py"
        code = service.put_code(sma.read_bytes(), sma.name)
        rng = random.Random(7)
        pool = [(s, y) for s in symbols for y in range(first, last + 1)]
        popular = rng.sample(pool, min(args.distinct, len(pool)))
        picks = [rng.choice(popular) for _ in range(args.jobs)]
        # The jobs are this benchmark's own code: unsandboxed (the sandbox cannot read S3 data yet).
        env = {**os.environ, "QUANTFLEET_SANDBOX": "trusted", "QUANTFLEET_HOME": str(settings.home),
               "QUANTFLEET_DATA_URL": settings.data_url or "", "QUANTFLEET_S3_ENDPOINT_URL": endpoint,
               "QUANTFLEET_CACHE_DIR": str(root / "cache"), "QUANTFLEET_CACHE_CAPACITY_GB": "50"}  # fmt: skip
        log = (root / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "quantfleet.cli.app", "worker", "--slots", str(args.slots),
                                   "--launcher", "forkserver"], env=env, stdout=log, stderr=log)  # fmt: skip

        busy = {JobState.QUEUED, JobState.RUNNING}

        def counters(reset: bool = False) -> dict[str, dict[str, int]]:
            """Return the bytes and requests the S3 server answered, by method and kind of key."""
            request = urllib.request.Request(f"{endpoint}/__counters", method="POST" if reset else "GET")
            with urllib.request.urlopen(request, timeout=10) as answer:
                body: dict[str, dict[str, int]] = json.loads(answer.read())
                return body

        def wave(label: str) -> None:
            before, _ = _folder_bytes(root / "cache")
            counters(reset=True)
            started = time.perf_counter()
            ids = [service.submit(JobSpec(code=code, universe=(s,), snapshot=snapshot, frequency=Frequency.parse("1m"),
                                          start=date(y, 1, 1), end=date(y, 12, 31), owner="bench",
                                          params={"fast": 10, "slow": 30})).id for s, y in picks]  # fmt: skip
            with _progress() as bar:
                task = bar.add_task(label, total=len(ids))
                while pending := sum(n for st, n in service.counts_by_state().items() if st in busy):
                    if worker is not None and worker.poll() is not None:
                        raise SystemExit(f"the worker exited ({worker.returncode}); see {root / 'worker.log'}")
                    bar.update(task, completed=len(ids) - pending)
                    pause.wait(0.5)
            wall = time.perf_counter() - started
            failed = [service.get(i) for i in ids if service.get(i).state is not JobState.SUCCEEDED]
            assert not failed, failed[0].error
            served = counters()
            after, files = _folder_bytes(root / "cache")
            per_year = (stored - log_bytes) / len(pool)  # symbol-years are the same size: bytes one job asks for
            asked = per_year * len(picks)
            got = served["bytes"]
            calls = served["requests"]
            fetched = got.get("GET data", 0)  # as the S3 server counted them
            print(f"{label}: {len(ids)} jobs ({len(set(picks))} distinct symbol-years, {args.slots} slots) in "
                  f"{wall:.1f} s, {60 * len(ids) / wall:.0f} jobs/min; asked {asked / 1e6:,.1f} MB, fetched "
                  f"{fetched / 1e6:,.1f} MB of data files from the store, cache hit rate {1 - fetched / asked:.0%} "
                  f"by bytes; the cache grew {(after - before) / 1e6:,.1f} MB ({files} files cached, the "
                  "snapshot's file list among them)")  # fmt: skip
            read = sum(n for k, n in got.items() if k.startswith("GET"))
            print(f"  the S3 server answered {sum(calls.values()):,} requests, {read / 1e6:,.2f} MB of GETs: "
                  f"{got.get('GET log', 0) / 1e6:,.2f} MB of Delta log ({calls.get('GET log', 0)} GETs), "
                  f"{got.get('GET data', 0) / 1e6:,.2f} MB of data files ({calls.get('GET data', 0)} GETs), "
                  f"{calls.get('GET list', 0)} listings, {calls.get('HEAD data', 0) + calls.get('HEAD log', 0)} "
                  f"HEADs; per job {read / len(ids) / 1e3:,.1f} kB "
                  f"({got.get('GET log', 0) / len(ids) / 1e3:,.1f} kB of log)")  # fmt: skip

        wave("cold cache")
        wave("warm cache")
        log.close()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        moto.terminate()
        moto.wait(10)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
