"""Market-data store speed: ingest rows/s, and reads beside a plain pyarrow read of the same files.

Measured in one run, on the same files:

1. ingest: synthetic one-minute bars (5 symbols x 1 year) and daily bars
   (200 symbols x 10 years) into a fresh local store, rows/s;
2. one symbol-year of one-minute bars (about 98,000 rows, all OHLCV fields):
   - quantfleet cold: a new ``MarketDataStore`` (the Delta log is read and
     the files pruned; the OS page cache is warm, as it is after any ingest);
   - quantfleet warm: the same store object again;
   - through the local file cache: the same files fetched into a cache folder
     (first read copies them, later reads come from the copy);
   - pyarrow: ``pyarrow.parquet.read_table`` of exactly the files quantfleet
     read, same columns, concatenated: the floor.

The goal: the reader costs no more than 1.5x the plain pyarrow read.

    python benchmarks/data_read.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from quantfleet.data import FileCache, MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars

FIELDS = ["ts", "open", "high", "low", "close", "volume"]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the median and the best of ``repeat`` timings of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    """Run the benchmark and print our figures beside pyarrow's."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller ingest")
    parser.add_argument("--repeat", type=int, default=15, help="repeats of each read")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qf-bench-"))
    try:
        run(root, quick=args.quick, repeat=args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, *, quick: bool, repeat: int) -> None:
    """Ingest, then read, then print."""
    store = MarketDataStore(str(root / "data"))
    minute = synthetic_bars(
        ["M0", "M1", "M2", "M3", "M4"][: 2 if quick else 5],
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        frequency="1m",
        actions=False,
    ).bars
    daily_names = [f"D{k:03d}" for k in range(50 if quick else 200)]
    daily = synthetic_bars(daily_names, start=date(2015, 1, 1), end=date(2024, 12, 31), actions=False).bars

    start = time.perf_counter()
    store.ingest_bars([minute], frequency="1m")
    minute_rate = minute.num_rows / (time.perf_counter() - start)
    start = time.perf_counter()
    store.ingest_bars([daily], frequency="1d")
    daily_rate = daily.num_rows / (time.perf_counter() - start)

    def read_cold() -> pa.Table:
        return MarketDataStore(store.url).read_bars("M0", start="2024-01-01", end="2024-12-31", frequency="1m").table

    warm_store = MarketDataStore(store.url)

    def read_warm() -> pa.Table:
        return warm_store.read_bars("M0", start="2024-01-01", end="2024-12-31", frequency="1m").table

    data = warm_store.read_bars("M0", start="2024-01-01", end="2024-12-31", frequency="1m")
    files = [f"{store.table_url('bars')}/{p}" for p in data.files_read]

    def read_pyarrow() -> pa.Table:
        return pa.concat_tables([pq.read_table(f, columns=FIELDS) for f in files])

    cache = FileCache(root / "cache", capacity_bytes=10 * 1024**3)
    fs = fsspec.filesystem("file")
    fetch_start = time.perf_counter()
    cached = [cache.fetch(f, fs) for f in files]
    fetch_cold = time.perf_counter() - fetch_start

    def read_cached() -> pa.Table:
        paths = [cache.fetch(f, fs) for f in files]
        return pa.concat_tables([pq.read_table(p, columns=FIELDS) for p in paths if p])

    assert all(cached)
    assert read_cached().equals(read_pyarrow())
    rows = data.table.num_rows
    results = {
        "quantfleet cold (new store)": timed(read_cold, max(3, repeat // 3)),
        "quantfleet warm": timed(read_warm, repeat),
        "via the local cache (hits)": timed(read_cached, repeat),
        "pyarrow.parquet, same files": timed(read_pyarrow, repeat),
    }
    print(f"ingest 1-minute bars: {minute.num_rows:,} rows at {minute_rate:,.0f} rows/s")
    print(f"ingest daily bars:    {daily.num_rows:,} rows at {daily_rate:,.0f} rows/s")
    print(
        f"\nread one symbol-year of 1-minute bars: {rows:,} rows, {len(files)} files "
        f"(median and best of {repeat}; cache's first copy of the files: {fetch_cold * 1000:.1f} ms)"
    )
    floor = results["pyarrow.parquet, same files"][0]
    print(f"  {'reader':32} {'median ms':>10} {'best ms':>9} {'vs pyarrow':>11}")
    for name, (median, best) in results.items():
        print(f"  {name:32} {median * 1000:>10.2f} {best * 1000:>9.2f} {median / floor:>10.2f}x")
    ratio = results["quantfleet warm"][0] / floor
    verdict = "met" if ratio <= 1.5 else "NOT met"
    print(f"\ngoal: the reader costs at most 1.5x the plain pyarrow read; warm ratio {ratio:.2f}x: {verdict}")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
