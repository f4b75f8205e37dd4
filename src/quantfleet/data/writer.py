"""Write bars as Parquet files one partition at a time, for one Delta commit at the end.

``write_deltalake`` keeps every partition's writer and buffers until the
commit, about 140 bytes of memory per bar: 70 GB for 490 million minute bars
in one snapshot. :class:`PartitionFileWriter` instead writes each partition's
rows as soon as they are complete and keeps only the Delta *add* actions (path,
size, partition values, statistics), so memory stays near one input batch
whatever the size of the ingest. The caller commits the actions as one
version; until then the files are in no snapshot, and :meth:`abort` deletes
them.

Input tables are in :data:`~quantfleet.data.schema.STORED_BARS_SCHEMA`,
sorted by symbol and time (as validation leaves them), so each partition is
one run of rows. A batch's last partition of each symbol may continue in the
next batch (a month split across two chunks of a CSV file), so it is held
back until a batch arrives that does not touch it. A partition whose rows
come back later anyway gets a second file, which Delta allows and the reader
handles.

Files look like the ones delta-rs writes: Hive-style folders
(``frequency=1m/symbol=AAPL/year=2024/month=3``, values percent-encoded),
snappy Parquet without the partition columns, and the same statistics JSON
(``numRecords``, ``minValues``, ``maxValues``, ``nullCount``; timestamps in
milliseconds, the minimum rounded down and the maximum up, so pruning by them
never drops a row).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

from quantfleet.data.schema import PARTITION_COLUMNS, STORED_BARS_SCHEMA

__all__ = ["PartitionFileWriter"]

log = logging.getLogger(__name__)

_Key = tuple[str, str, int, int]  # frequency, symbol, year, month
_DATA_COLUMNS = [name for name in STORED_BARS_SCHEMA.names if name not in PARTITION_COLUMNS]
_STATS_COLUMNS = [name for name in _DATA_COLUMNS if name != "ts"]
# Files being encoded or uploaded at once: enough to keep an S3 connection
# pool busy, few enough that their bytes stay small next to one input batch.
_IN_FLIGHT = 8
# Rows held back for partitions that may continue; past this, flush them all.
_HELD_ROWS = 2_000_000


class PartitionFileWriter:
    """Write stored-bars tables as one Parquet file per partition; return the add actions to commit."""

    def __init__(self, table_url: str, fs: fsspec.AbstractFileSystem, *, local: bool) -> None:
        self.table_url = table_url
        self.fs = fs
        self.local = local
        self.rows = 0
        self._held: dict[_Key, list[pa.Table]] = {}
        self._held_rows = 0
        self._actions: list[AddAction] = []
        self._written: list[str] = []  # full paths, for abort()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="quantfleet-write")
        self._slots = threading.BoundedSemaphore(_IN_FLIGHT)
        self._futures: list[Future[None]] = []

    def write(self, table: pa.Table) -> None:
        """Add a table of stored bars (sorted by symbol, then time)."""
        if table.num_rows == 0:
            return
        runs = _runs(table)
        last_of_symbol = {key[1]: key for key, _, _ in runs}
        here = {key for key, _, _ in runs}
        for key in [k for k in self._held if k not in here]:
            self._flush(key, self._take_held(key))
        for key, lo, hi in runs:
            parts = [*self._take_held(key), table.slice(lo, hi - lo)]
            if last_of_symbol[key[1]] == key:
                # Copy: a slice would keep the whole input batch alive until the next one.
                self._held[key] = [pa.concat_tables(parts).combine_chunks().take(np.arange(_rows(parts)))]
                self._held_rows += _rows(parts)
            else:
                self._flush(key, parts)
        if self._held_rows > _HELD_ROWS:
            for key in list(self._held):
                self._flush(key, self._take_held(key))
        self.rows += table.num_rows

    def finish(self) -> list[AddAction]:
        """Write what is held back, wait for every upload and return the add actions."""
        for key in list(self._held):
            self._flush(key, self._take_held(key))
        self._wait()
        self._pool.shutdown()
        return list(self._actions)

    def abort(self, *, delete: bool = True) -> None:
        """Stop writing; with ``delete``, delete the files written so far (best effort: orphans are harmless)."""
        self._held.clear()
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        with self._lock:
            paths = list(self._written)
        if not paths or not delete:
            return
        try:
            if self.local:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):  # its write had not begun
                        self.fs.rm_file(path)
            else:
                self.fs.rm(paths)  # one bulk request per 1,000 keys; missing keys are no error
        except Exception as exc:  # the ingest already failed; this must not hide why
            log.warning(
                "could not delete %d uncommitted data files under %s (%s); they are in no snapshot",
                len(paths),
                self.table_url,
                exc,
            )

    # -- internals -----------------------------------------------------------

    def _take_held(self, key: _Key) -> list[pa.Table]:
        parts = self._held.pop(key, [])
        self._held_rows -= _rows(parts)
        return parts

    def _flush(self, key: _Key, parts: list[pa.Table]) -> None:
        if not parts:
            return
        self._raise_failed()
        self._slots.acquire()  # bounded: at most _IN_FLIGHT files in memory
        try:
            future = self._pool.submit(self._write_file, key, pa.concat_tables(parts))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _write_file(self, key: _Key, table: pa.Table) -> None:
        data = table.select(_DATA_COLUMNS)
        ts = data.column("ts").cast(pa.int64()).to_numpy()
        if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
            data = data.take(pa.array(np.argsort(ts, kind="stable")))
        pairs = zip(PARTITION_COLUMNS, key, strict=True)
        folder = "/".join(f"{name}={quote(str(value), safe='')}" for name, value in pairs)
        relative = f"{folder}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="snappy")
        payload = sink.getvalue()
        path = f"{self.table_url}/{relative}"
        with self._lock:
            self._written.append(path)  # before the upload: a half-written object is deleted too
        if self.local:
            self.fs.makedirs(f"{self.table_url}/{folder}", exist_ok=True)
        self.fs.pipe_file(path, payload.to_pybytes())
        action = AddAction(
            path=relative,
            size=payload.size,
            partition_values={n: str(v) for n, v in zip(PARTITION_COLUMNS, key, strict=True)},
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=_stats(data),
        )
        with self._lock:
            self._actions.append(action)

    def _raise_failed(self) -> None:
        pending = []
        for future in self._futures:
            if future.done():
                future.result()  # re-raise an upload's error here, in the caller
            else:
                pending.append(future)
        self._futures = pending

    def _wait(self) -> None:
        for future in self._futures:
            future.result()
        self._futures = []


def _rows(parts: list[pa.Table]) -> int:
    return sum(p.num_rows for p in parts)


def _runs(table: pa.Table) -> list[tuple[_Key, int, int]]:
    """Return (partition key, first row, end row) of each run of rows in one partition."""
    symbols = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    codes = symbols.indices.to_numpy(zero_copy_only=False)
    names = symbols.dictionary.to_pylist()
    period = table.column("year").to_numpy() * 100 + table.column("month").to_numpy()
    freq = table.column("frequency").combine_chunks()
    change = (codes[1:] != codes[:-1]) | (period[1:] != period[:-1])
    bounds = np.flatnonzero(np.r_[True, change, True])
    out = []
    for lo, hi in itertools.pairwise(bounds):
        key = (str(freq[int(lo)]), names[codes[lo]], int(period[lo] // 100), int(period[lo] % 100))
        out.append((key, int(lo), int(hi)))
    return out


def _ms_iso(ms: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ms, "ms"), unit="ms")) + "Z"


def _stats(data: pa.Table) -> str:
    """Return the statistics JSON of a file as delta-rs writes it (minimum and maximum per column)."""
    ts = data.column("ts").cast(pa.int64()).to_numpy()
    lo, hi = int(ts.min()), int(ts.max())
    mins: dict[str, object] = {"ts": _ms_iso(lo // 1000)}
    maxs: dict[str, object] = {"ts": _ms_iso(-(-hi // 1000))}
    for name in _STATS_COLUMNS:
        pair = pc.min_max(data.column(name))
        mins[name] = pair["min"].as_py()
        maxs[name] = pair["max"].as_py()
    nulls = {name: data.column(name).null_count for name in _DATA_COLUMNS}
    return json.dumps({"numRecords": data.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})
