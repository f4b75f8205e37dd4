"""The versioned market-data store: Delta Lake tables of bars, corporate actions and instruments.

Layout under the store's root URL (a folder or ``s3://bucket/prefix``)::

    bars/                 Delta table, partitioned by frequency, symbol, year, month
    corporate_actions/    Delta table (splits, cash dividends)
    instruments/          Delta table (the security master)
    _quantfleet/tags.json snapshot tags

A **snapshot** is a version of the bars table. Every ingest, correction or
deletion commits exactly one new version, and that commit records which
versions of the corporate-actions and instruments tables belong to it, so a
snapshot pins all three. Old versions are never vacuumed: the table
properties keep every log entry and data file, so a snapshot reads the same
bytes years later.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from quantfleet.core.errors import (
    DataError,
    InvalidBarsError,
    NoDataError,
    OverlappingBarsError,
    SnapshotNotFound,
)
from quantfleet.core.settings import Settings
from quantfleet.core.types import Adjustment, Frequency, SnapshotId, SnapshotRef
from quantfleet.data.cache import FileCache
from quantfleet.data.reader import BarData, TimeLike
from quantfleet.data.reader import read_bars as _read_bars
from quantfleet.data.runs import TimeRuns
from quantfleet.data.schema import (
    CORPORATE_ACTIONS_SCHEMA,
    INSTRUMENTS_SCHEMA,
    PARTITION_COLUMNS,
    SOURCE_KEY,
    STORED_BARS_SCHEMA,
)
from quantfleet.data.storage import StorageOptions, is_remote, normalize_url, storage_errors
from quantfleet.data.validate import OffSession, ValidationNotes, check_bars, coerce_bars
from quantfleet.data.writer import PartitionFileWriter

__all__ = ["IngestResult", "MarketDataStore", "SnapshotInfo", "SymbolSummary"]

# Keep every version readable for a century: a pinned snapshot must never lose
# its log entries or data files to cleanup.
TABLE_CONFIG = {
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
    "delta.enableExpiredLogCleanup": "false",
}
_META_KEY = "quantfleet"
_COMMIT_RE = re.compile(r"/(\d{20})\.json$")
# Columns of MarketDataStore.files(), from get_add_actions(flatten=True). Bump
# _FILES_FORMAT when they change: it is part of the cache key of a file list.
_FILE_COLUMNS = {
    "path": "path",
    "size_bytes": "size",
    "num_records": "rows",
    "min.ts": "min_ts",
    "max.ts": "max_ts",
    "partition.frequency": "frequency",
    "partition.symbol": "symbol",
    "partition.year": "year",
    "partition.month": "month",
}
_FILES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("rows", pa.int64()),
        pa.field("min_ts", pa.timestamp("us", tz="UTC")),
        pa.field("max_ts", pa.timestamp("us", tz="UTC")),
        pa.field("frequency", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("month", pa.int32()),
    ]
)
_FILES_FORMAT = "quantfleet-files-v1"
_META_FORMAT = "quantfleet-commit-v1"
# When to write a Delta checkpoint (see MarketDataStore._checkpoint).
CHECKPOINT_FILES = 100
CHECKPOINT_EVERY = 10
log = logging.getLogger(__name__)
_TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot as listed by ``quantfleet data snapshots``."""

    id: SnapshotId
    created: datetime
    operation: str
    source: str
    rows_added: int
    tags: tuple[str, ...]
    corporate_actions_version: int | None
    instruments_version: int | None


@dataclass(frozen=True)
class SymbolSummary:
    """What a snapshot holds for one symbol at one frequency."""

    symbol: str
    frequency: Frequency
    first: datetime
    last: datetime
    rows: int
    files: int


@dataclass(frozen=True)
class IngestResult:
    """What an ingest wrote."""

    snapshot: SnapshotId
    rows: int
    symbols: tuple[str, ...]
    notes: ValidationNotes


class MarketDataStore:
    """Read and write versioned market data under one root URL."""

    def __init__(
        self,
        url: str,
        *,
        storage: StorageOptions | None = None,
        cache: FileCache | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.storage = storage or StorageOptions()
        self.cache = cache if is_remote(self.url) else None
        self._tables: dict[tuple[str, int], DeltaTable] = {}
        self._files: dict[int, pa.Table] = {}
        self._meta: dict[int, dict[str, Any]] = {}
        self._latest: SnapshotId | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MarketDataStore:
        """Return the store the settings point at, with a local cache for remote roots."""
        storage = StorageOptions(endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
        cache = FileCache(
            settings.resolved_cache_dir,
            capacity_bytes=settings.cache_capacity_bytes,
            threshold=settings.cache_threshold,
        )
        return cls(settings.resolved_data_url, storage=storage, cache=cache)

    def __repr__(self) -> str:
        return f"MarketDataStore({self.url!r})"

    # -- tables and versions -------------------------------------------------

    def table_url(self, name: str) -> str:
        """Return the URL of the Delta table ``name`` (bars, corporate_actions, instruments)."""
        return f"{self.url}/{name}"

    def _open(self, name: str, version: int | None = None) -> DeltaTable | None:
        if version is not None and (name, version) in self._tables:
            return self._tables[(name, version)]
        url = self.table_url(name)
        with storage_errors(url, self.storage):
            try:
                dt = DeltaTable(url, version=version, storage_options=self.storage.delta(url))
            except TableNotFoundError:
                return None
        if version is not None:
            self._tables[(name, version)] = dt
        return dt

    def latest(self) -> SnapshotId | None:
        """Return the newest snapshot id, or None while the store is empty.

        Commits are numbered files in the Delta log, so once a version is known,
        checking that the next commit file does not exist (one stat or HEAD)
        proves it is still the newest; after a change the log folder is listed
        (its commit files' names), never replayed.
        """
        known = self._latest
        if known is not None and not self._commit_exists(known + 1):
            return known
        # Listing the log names every commit: O(commits), not O(files) as a table load is.
        log_url = f"{self.table_url('bars')}/_delta_log"
        with storage_errors(self.url, self.storage):
            try:
                names = self.storage.filesystem(self.url).ls(log_url, detail=False)
            except FileNotFoundError:
                names = []
        versions = [int(m.group(1)) for n in names if (m := _COMMIT_RE.search(str(n)))]
        if versions:
            self._latest = SnapshotId(max(versions))
            return self._latest
        dt = self._open("bars")  # no table yet (or no bucket: delta-rs's error names it)
        self._latest = None if dt is None else SnapshotId(dt.version())
        return self._latest

    def _commit_exists(self, version: int) -> bool:
        path = f"{self.table_url('bars')}/_delta_log/{version:020d}.json"
        with storage_errors(self.url, self.storage):
            return bool(self.storage.filesystem(self.url).exists(path))

    def resolve(self, ref: SnapshotRef | None = None) -> SnapshotId:
        """Return the snapshot id named by ``ref`` (an id, a tag, or None for the newest).

        A pinned id costs one existence check of its commit file (none once
        a newer snapshot is known), not a listing of the log.
        """
        if ref is not None and not _is_tag(ref):
            pinned = int(ref)
            newest = self._latest
            if pinned >= 0 and ((newest is not None and pinned <= newest) or self._commit_exists(pinned)):
                return SnapshotId(pinned)
        latest = self.latest()
        if latest is None:
            raise NoDataError(
                f"the market-data store at {self.url} is empty; ingest bars first, "
                "e.g. 'quantfleet data ingest synthetic' or 'quantfleet data ingest csv FILE'"
            )
        if ref is None:
            return latest
        if _is_tag(ref):
            assert isinstance(ref, str)
            tags = self.tags()
            if ref not in tags:
                known = ", ".join(sorted(tags)) or "none yet"
                raise SnapshotNotFound(
                    f"no snapshot is tagged {ref!r} (tags: {known}); tag one with "
                    "'quantfleet data tag NAME SNAPSHOT' or list them with 'quantfleet data snapshots'"
                )
            return SnapshotId(tags[ref])
        version = int(ref)
        if not 0 <= version <= latest:
            raise SnapshotNotFound(
                f"snapshot {version} does not exist (snapshots run from 0 to {latest}); "
                "list them with 'quantfleet data snapshots'"
            )
        return SnapshotId(version)

    def bars_table(self, snapshot: SnapshotId) -> DeltaTable:
        """Return the bars Delta table as of ``snapshot`` (cached: versions never change)."""
        dt = self._open("bars", int(snapshot))
        if dt is None:  # pragma: no cover - resolve() checked it exists
            raise NoDataError(f"the market-data store at {self.url} is empty")
        return dt

    def files(self, snapshot: SnapshotId) -> pa.Table:
        """Return the data files of ``snapshot``: path, size, rows, ts range and partition values.

        A snapshot never changes, so with a cache (remote stores) its file
        list is kept there as Parquet, keyed by table URL and version: a job
        on a warm worker reads no Delta log at all, only the files it needs.
        """
        if snapshot not in self._files:
            self._files[snapshot] = self._cached_file_table(snapshot)
        return self._files[snapshot]

    def _cached_file_table(self, snapshot: SnapshotId) -> pa.Table:
        if self.cache is None:
            return self._file_table(snapshot)
        key = f"{self.table_url('bars')}/_delta_log/{int(snapshot):020d}.{_FILES_FORMAT}.parquet"
        built: list[pa.Table] = []

        def build() -> bytes:
            built.append(self._file_table(snapshot))
            sink = pa.BufferOutputStream()
            pq.write_table(built[0], sink)
            return bytes(sink.getvalue().to_pybytes())

        path = self.cache.fetch_built(key, build)
        if built:
            return built[0]
        if path is not None:
            try:
                return pq.read_table(path)
            except FileNotFoundError:
                pass  # evicted by another process between fetch and read
        return self._file_table(snapshot)

    def _file_table(self, snapshot: SnapshotId) -> pa.Table:
        """Return the file list of ``snapshot`` from its Delta log."""
        dt = self.bars_table(snapshot)
        with storage_errors(self.url, self.storage):
            actions = pa.table(dt.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return _FILES_SCHEMA.empty_table()
        table = actions.select(list(_FILE_COLUMNS)).rename_columns(list(_FILE_COLUMNS.values()))
        # The log holds each path URL-encoded (a folder symbol=%5EGSPC is "symbol=%255EGSPC"):
        # decode once to name the object in the store.
        paths = pa.array([unquote(p) for p in table.column("path").to_pylist()], pa.string())
        return table.set_column(0, "path", paths).cast(_FILES_SCHEMA)

    def commit_metadata(self, snapshot: SnapshotId) -> dict[str, Any]:
        """Return what quantfleet recorded in the commit of ``snapshot`` (kept in the cache, like files())."""
        version = int(snapshot)
        if version in self._meta:
            return self._meta[version]
        meta: dict[str, Any] | None = None
        if self.cache is not None:
            key = f"{self.table_url('bars')}/_delta_log/{version:020d}.{_META_FORMAT}.json"
            path = self.cache.fetch_built(key, lambda: json.dumps(self._read_commit_metadata(version)).encode())
            if path is not None:
                with contextlib.suppress(FileNotFoundError):  # evicted meanwhile: read the log
                    meta = json.loads(Path(path).read_bytes())
        self._meta[version] = self._read_commit_metadata(version) if meta is None else meta
        return self._meta[version]

    def _read_commit_metadata(self, snapshot: int) -> dict[str, Any]:
        fs = self.storage.filesystem(self.url)
        for version in range(snapshot, -1, -1):
            path = f"{self.table_url('bars')}/_delta_log/{version:020d}.json"
            with storage_errors(self.url, self.storage):
                try:
                    info = _commit_info(fs, path)
                except FileNotFoundError:
                    continue
            if info and _META_KEY in info:
                meta: dict[str, Any] = json.loads(info[_META_KEY])
                return meta
        return {}

    # -- reading -------------------------------------------------------------

    def read_bars(
        self,
        symbols: str | Iterable[str],
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        frequency: Frequency | str = Frequency.DAILY,
        fields: list[str] | None = None,
        snapshot: SnapshotRef | None = None,
        adjustment: Adjustment | str = Adjustment.RAW,
    ) -> BarData:
        """Return bars as held by ``snapshot`` (default: newest); see :func:`quantfleet.data.reader.read_bars`."""
        return _read_bars(
            self,
            symbols,
            start=start,
            end=end,
            frequency=frequency,
            fields=fields,
            snapshot=snapshot,
            adjustment=adjustment,
        )

    # -- catalog -------------------------------------------------------------

    def catalog(self, snapshot: SnapshotRef | None = None) -> list[SymbolSummary]:
        """Return symbols, date ranges and row counts held by a snapshot (read from metadata only)."""
        sid = self.resolve(snapshot)
        files = self.files(sid)
        if files.num_rows == 0:
            return []
        grouped = (
            files.group_by(["frequency", "symbol"])
            .aggregate([("rows", "sum"), ("min_ts", "min"), ("max_ts", "max"), ("path", "count")])
            .sort_by([("symbol", "ascending"), ("frequency", "ascending")])
        )
        return [
            SymbolSummary(
                symbol=row["symbol"],
                frequency=Frequency(row["frequency"]),
                first=row["min_ts_min"],
                last=row["max_ts_max"],
                rows=row["rows_sum"],
                files=row["path_count"],
            )
            for row in grouped.to_pylist()
        ]

    def snapshots(self) -> list[SnapshotInfo]:
        """Return every snapshot, newest first, with its tags."""
        dt = self._open("bars")
        if dt is None:
            return []
        with storage_errors(self.url, self.storage):
            history = dt.history()
        by_version: dict[int, list[str]] = {}
        for name, version in self.tags().items():
            by_version.setdefault(version, []).append(name)
        out = []
        for commit in history:
            meta = json.loads(commit.get(_META_KEY, "{}"))
            metrics = commit.get("operationMetrics", {})
            rows = metrics.get("num_added_rows", metrics.get("num_target_rows_inserted", 0)) or 0
            version = int(commit["version"])
            out.append(
                SnapshotInfo(
                    id=SnapshotId(version),
                    created=datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
                    operation=meta.get("operation", commit.get("operation", "?").lower()),
                    source=meta.get("source", ""),
                    rows_added=int(rows),
                    tags=tuple(sorted(by_version.get(version, []))),
                    corporate_actions_version=meta.get("corporate_actions_version"),
                    instruments_version=meta.get("instruments_version"),
                )
            )
        return out

    # -- tags ----------------------------------------------------------------

    def _tags_path(self) -> str:
        return f"{self.url}/_quantfleet/tags.json"

    def tags(self) -> dict[str, int]:
        """Return tag names and the snapshot each points at."""
        fs = self.storage.filesystem(self.url)
        with storage_errors(self.url, self.storage):
            try:
                with fs.open(self._tags_path(), "rb") as fh:
                    data: dict[str, dict[str, Any]] = json.loads(fh.read())
            except FileNotFoundError:
                return {}
        return {name: int(entry["snapshot"]) for name, entry in data.items()}

    def tag(self, name: str, snapshot: SnapshotRef | None = None, *, force: bool = False) -> SnapshotId:
        """Name a snapshot (default: the newest). Moving an existing tag needs ``force``."""
        if not _TAG_RE.match(name) or name.isdigit():
            raise DataError(
                f"invalid tag name {name!r}: start with a letter, then letters, digits, '.', '_' or '-' "
                "(for example eod-2026-11-20)"
            )
        sid = self.resolve(snapshot)
        tags = self.tags()
        if name in tags and tags[name] != sid and not force:
            raise DataError(f"tag {name!r} already points at snapshot {tags[name]}; pass --force to move it to {sid}")
        fs = self.storage.filesystem(self.url)
        entries = {n: {"snapshot": v} for n, v in tags.items()}
        entries[name] = {"snapshot": int(sid)}
        payload = json.dumps(entries, indent=2, sort_keys=True).encode()
        path = self._tags_path()
        with storage_errors(self.url, self.storage):
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            if is_remote(self.url):
                fs.pipe_file(path, payload)  # an S3 PUT replaces the object atomically
            else:
                tmp = f"{path}.tmp"
                fs.pipe_file(tmp, payload)
                fs.mv(tmp, path)
        return sid

    # -- writing -------------------------------------------------------------

    def _pointers(self) -> dict[str, Any]:
        latest = self.latest()
        if latest is None:
            return {"corporate_actions_version": None, "instruments_version": None}
        meta = self.commit_metadata(latest)
        return {
            "corporate_actions_version": meta.get("corporate_actions_version"),
            "instruments_version": meta.get("instruments_version"),
        }

    def _commit(
        self, operation: str, source: str, *, metrics: dict[str, int] | None = None, **pointers: Any
    ) -> CommitProperties:
        meta = {**self._pointers(), **pointers, "operation": operation, "source": source}
        custom: dict[str, Any] = {_META_KEY: json.dumps(meta, sort_keys=True)}
        if metrics is not None:  # what delta-rs records for its own writes, read by snapshots()
            custom["operationMetrics"] = metrics
        return CommitProperties(custom_metadata=custom)

    def _write_bars(self, data: pa.Table | pa.RecordBatchReader, commit: CommitProperties) -> None:
        url = self.table_url("bars")
        with storage_errors(url, self.storage):
            write_deltalake(
                url,
                data,
                mode="append",
                partition_by=list(PARTITION_COLUMNS),
                configuration=TABLE_CONFIG,
                storage_options=self.storage.delta(url),
                commit_properties=commit,
            )

    def _existing_ranges(self, frequency: Frequency) -> dict[str, tuple[int, int]]:
        latest = self.latest()
        if latest is None:
            return {}
        files = self.files(latest)
        files = files.filter(pc.equal(files.column("frequency"), frequency.value))
        if files.num_rows == 0:
            return {}
        grouped = files.group_by("symbol").aggregate([("min_ts", "min"), ("max_ts", "max")])
        lo = grouped.column("min_ts_min").cast(pa.int64()).to_pylist()
        hi = grouped.column("max_ts_max").cast(pa.int64()).to_pylist()
        return dict(zip(grouped.column("symbol").to_pylist(), zip(lo, hi, strict=True), strict=True))

    def ingest_bars(
        self,
        batches: Iterable[pa.Table],
        *,
        frequency: Frequency | str,
        mode: str = "append",
        calendar: str = "XNYS",
        off_session: OffSession | str = OffSession.ERROR,
        source: str = "api",
        progress: ProgressFn | None = None,
    ) -> IngestResult:
        """Validate and write bars as one new snapshot.

        ``mode="append"`` streams the input and refuses bars that overlap what
        the store already holds for a symbol; ``mode="upsert"`` replaces
        existing bars with the same symbol and time (corrections) and inserts
        the rest. Any failure, even halfway through the input, commits
        nothing: the previous snapshot stays the newest and readable.
        """
        freq = Frequency.parse(frequency)
        off = OffSession(off_session)
        if mode not in ("append", "upsert"):
            raise DataError(f"unknown ingest mode {mode!r}; use 'append' or 'upsert'")
        state = _IngestState(existing=self._existing_ranges(freq) if mode == "append" else {})
        stream = self._validated(batches, freq, calendar, off, source, state, progress)
        if mode == "append" or self.latest() is None:
            self._append_bars(stream, state, source)
        else:
            self._merge_bars(pa.concat_tables(list(stream)).combine_chunks(), self._commit("ingest", source))
        snapshot = self.latest()  # a listing of the log, not a load of the table
        assert snapshot is not None
        return IngestResult(
            snapshot=snapshot,
            rows=state.rows,
            symbols=tuple(sorted(state.seen)),
            notes=state.notes,
        )

    def _validated(
        self,
        batches: Iterable[pa.Table],
        freq: Frequency,
        calendar: str,
        off: OffSession,
        source: str,
        state: _IngestState,
        progress: ProgressFn | None,
    ) -> Iterator[pa.Table]:
        for raw in batches:
            origin = (raw.schema.metadata or {}).get(SOURCE_KEY.encode(), source.encode()).decode()
            table, notes = check_bars(
                coerce_bars(raw, source=origin), frequency=freq, calendar=calendar, off_session=off, source=origin
            )
            state.absorb(table, notes, freq)
            yield _to_stored(table, freq)
            if progress is not None:
                progress(table.num_rows)
        if state.rows == 0:
            raise NoDataError(f"{source}: the input holds no bars; nothing was written")

    def _append_bars(self, stream: Iterator[pa.Table], state: _IngestState, source: str) -> None:
        """Write the stream's partitions as they complete, then commit them all as one version.

        Memory stays near one input batch (see :mod:`quantfleet.data.writer`).
        Until the commit the files belong to no snapshot; on any failure they
        are deleted (best effort) and the previous snapshot stays the newest.
        """
        url = self.table_url("bars")
        before = self.latest()
        writer = PartitionFileWriter(url, self.storage.filesystem(url), local=not is_remote(url))
        try:
            with storage_errors(url, self.storage):
                for table in stream:
                    writer.write(table)
                actions = writer.finish()
                metrics = {"num_added_rows": writer.rows, "num_added_files": len(actions)}
                self._commit_actions(actions, self._commit("ingest", source, metrics=metrics))
        except BaseException:
            self._latest = None
            try:
                committed = self.latest() != before
            except Exception:  # the store is unreachable: whether the commit landed is unknown
                committed = True
            writer.abort(delete=not committed)  # files in no snapshot go; a committed file must stay
            raise
        self._checkpoint(added_files=len(actions))

    def _checkpoint(self, *, added_files: int) -> None:
        """Write a Delta checkpoint after an append of many files, or one that lands on every tenth version.

        A reader that loads a version then reads one Parquet checkpoint instead
        of every commit's JSON (an add action per file: megabytes for a big
        ingest). The commit stands either way, so a failure here only warns.
        """
        version = self.latest()
        if version is None or (added_files < CHECKPOINT_FILES and (version == 0 or version % CHECKPOINT_EVERY)):
            return
        try:
            dt = self._open("bars", int(version))
            assert dt is not None
            with storage_errors(self.url, self.storage):
                dt.create_checkpoint()
        except Exception as exc:
            log.warning(
                "snapshot %s is committed, but its Delta checkpoint failed (%s); readers replay the log", version, exc
            )

    def _commit_actions(self, actions: list[AddAction], commit: CommitProperties) -> None:
        url = self.table_url("bars")
        dt = self._open("bars")
        if dt is None:
            create_table_with_add_actions(
                url,
                DeltaSchema.from_arrow(STORED_BARS_SCHEMA),
                actions,
                mode="error",
                partition_by=list(PARTITION_COLUMNS),
                configuration=TABLE_CONFIG,
                storage_options=self.storage.delta(url),
                commit_properties=commit,
            )
        else:
            dt.create_write_transaction(
                list[AddAction | RemoveAction](actions),
                mode="append",
                schema=STORED_BARS_SCHEMA,
                partition_by=list(PARTITION_COLUMNS),
                commit_properties=commit,
            )

    def _merge_bars(self, source: pa.Table, commit: CommitProperties) -> None:
        dt = self._open("bars")
        assert dt is not None
        keys = " AND ".join(f"t.{c} = s.{c}" for c in (*PARTITION_COLUMNS, "ts"))
        with storage_errors(self.url, self.storage):
            dt.merge(
                source, predicate=keys, source_alias="s", target_alias="t", commit_properties=commit
            ).when_matched_update_all().when_not_matched_insert_all().execute()

    def delete_bars(
        self,
        symbols: Iterable[str],
        *,
        frequency: Frequency | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> SnapshotId:
        """Delete bars of ``symbols`` (optionally only from ``start`` to ``end``) as a new snapshot."""
        freq = Frequency.parse(frequency)
        names = sorted({s.strip().upper() for s in symbols})
        dt = self._open("bars")
        if dt is None or not names:
            raise NoDataError("nothing to delete: the store is empty or no symbol was given")
        quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in names)
        predicate = f"frequency = '{freq.value}' AND symbol IN ({quoted})"
        if start is not None:
            predicate += f" AND ts >= '{_iso(start)}'"
        if end is not None:
            predicate += f" AND ts <= '{_iso(end)}'"
        commit = self._commit("delete", ",".join(names))
        with storage_errors(self.url, self.storage):
            dt.delete(predicate, commit_properties=commit)
        return SnapshotId(self._open("bars").version())  # type: ignore[union-attr]

    def _write_side_table(self, name: str, table: pa.Table, keys: tuple[str, ...]) -> int:
        url = self.table_url(name)
        dt = self._open(name)
        with storage_errors(url, self.storage):
            if dt is None:
                write_deltalake(url, table, configuration=TABLE_CONFIG, storage_options=self.storage.delta(url))
            else:
                predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
                dt.merge(
                    table, predicate=predicate, source_alias="s", target_alias="t"
                ).when_matched_update_all().when_not_matched_insert_all().execute()
        return self._open(name).version()  # type: ignore[union-attr]

    def _bump(self, operation: str, source: str, **pointers: Any) -> SnapshotId:
        # An empty append is a commit with no data files: a new snapshot whose
        # bars are the previous one's, pointing at the new side-table version.
        self._write_bars(STORED_BARS_SCHEMA.empty_table(), self._commit(operation, source, **pointers))
        return SnapshotId(self._open("bars").version())  # type: ignore[union-attr]

    def ingest_corporate_actions(self, actions: pa.Table, *, source: str = "api") -> SnapshotId:
        """Upsert splits and cash dividends; return the new snapshot that includes them."""
        table = _check_actions(actions, source)
        version = self._write_side_table("corporate_actions", table, ("symbol", "ex_date", "kind"))
        return self._bump("corporate_actions", source, corporate_actions_version=version)

    def ingest_instruments(self, instruments: pa.Table, *, source: str = "api") -> SnapshotId:
        """Upsert security-master rows; return the new snapshot that includes them."""
        table = _check_instruments(instruments, source)
        version = self._write_side_table("instruments", table, ("symbol",))
        return self._bump("instruments", source, instruments_version=version)

    def _side_table(self, name: str, pointer: str, snapshot: SnapshotRef | None, schema: pa.Schema) -> pa.Table:
        sid = self.resolve(snapshot)
        version = self.commit_metadata(sid).get(pointer)
        if version is None:
            return schema.empty_table()
        dt = self._open(name, int(version))
        if dt is None:
            return schema.empty_table()
        with storage_errors(self.url, self.storage):
            return dt.to_pyarrow_table().select(schema.names).cast(schema)

    def corporate_actions(self, snapshot: SnapshotRef | None = None) -> pa.Table:
        """Return the corporate actions known as of a snapshot, sorted by symbol and date."""
        table = self._side_table("corporate_actions", "corporate_actions_version", snapshot, CORPORATE_ACTIONS_SCHEMA)
        return table.sort_by([("symbol", "ascending"), ("ex_date", "ascending")])

    def instruments(self, snapshot: SnapshotRef | None = None) -> pa.Table:
        """Return the security master as of a snapshot; dates default to the bars' range."""
        sid = self.resolve(snapshot)
        table = self._side_table("instruments", "instruments_version", sid, INSTRUMENTS_SCHEMA)
        rows = {r["symbol"]: r for r in table.to_pylist()}
        for summary in self.catalog(sid):
            row = rows.setdefault(
                summary.symbol, {f.name: None for f in INSTRUMENTS_SCHEMA} | {"symbol": summary.symbol}
            )
            first, last = summary.first.date(), summary.last.date()
            row["first_date"] = min(row["first_date"] or first, first)
            row["last_date"] = max(row["last_date"] or last, last)
        ordered = [rows[s] for s in sorted(rows)]
        return pa.Table.from_pylist(ordered, schema=INSTRUMENTS_SCHEMA)


@dataclass
class _IngestState:
    existing: dict[str, tuple[int, int]]
    rows: int = 0

    def __post_init__(self) -> None:
        self.seen: dict[str, TimeRuns] = {}  # runs, not arrays: bounded memory for big ingests
        self.notes = ValidationNotes()

    def absorb(self, table: pa.Table, notes: ValidationNotes, freq: Frequency) -> None:
        """Check ``table`` against earlier batches and the table, then count it."""
        if table.num_rows == 0:
            return
        symbols = table.column("symbol").to_numpy(zero_copy_only=False)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        bounds = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1], True])
        for lo, hi in itertools.pairwise(bounds):
            symbol, chunk = str(symbols[lo]), ts[lo:hi]
            if symbol in self.existing:
                first, last = self.existing[symbol]
                if chunk[0] <= last and chunk[-1] >= first:
                    raise OverlappingBarsError(
                        f"{freq.value} bars for {symbol} from {_fmt(chunk[0])} to {_fmt(chunk[-1])} overlap the "
                        f"{_fmt(first)}..{_fmt(last)} already stored; nothing was written. To correct stored bars "
                        "ingest with --mode upsert; to add only new bars, start after the stored range"
                    )
            dup = self.seen.setdefault(symbol, TimeRuns()).add(chunk)
            if dup.size:
                raise InvalidBarsError(
                    f"duplicate bars for {symbol} across the inputs (e.g. {_fmt(dup[0])}); "
                    "nothing was written. Keep one bar per symbol and time"
                )
        self.rows += table.num_rows
        self.notes.dropped_off_session += notes.dropped_off_session
        self.notes.kept_off_session += notes.kept_off_session
        self.notes.examples.extend(notes.examples[: max(0, 3 - len(self.notes.examples))])


def _to_stored(table: pa.Table, freq: Frequency) -> pa.Table:
    ts = table.column("ts")
    year = pc.year(ts).cast(pa.int32())
    month = pc.month(ts).cast(pa.int32()) if freq.is_intraday else pa.repeat(pa.scalar(0, pa.int32()), table.num_rows)
    freq_col = pa.repeat(pa.scalar(freq.value), table.num_rows)
    columns = [freq_col, table.column("symbol"), year, month, *table.select(STORED_BARS_SCHEMA.names[4:]).columns]
    return pa.Table.from_arrays(columns, schema=STORED_BARS_SCHEMA)


def _commit_info(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any] | None:
    """Return the commitInfo action of one commit file, reading only as much of it as needed.

    delta-rs writes commitInfo first, and an ingest's commit holds an add
    action per file (megabytes for a big ingest): read the head, and more
    only if the line is not complete.
    """
    size = 1 << 16
    while True:
        data = fs.cat_file(path, start=0, end=size)
        whole = len(data) < size
        lines = data.split(b"\n")
        for line in lines if whole else lines[:-1]:
            if line.strip():
                info: dict[str, Any] | None = json.loads(line).get("commitInfo")
                if info is not None:
                    return info
        if whole:
            return None
        size *= 4


def _is_tag(ref: SnapshotRef) -> bool:
    return isinstance(ref, str) and not ref.strip().lstrip("-").isdigit()


def _fmt(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_actions(actions: pa.Table, source: str) -> pa.Table:
    missing = [n for n in CORPORATE_ACTIONS_SCHEMA.names if n not in actions.column_names]
    if missing:
        raise DataError(
            f"{source}: corporate actions need columns symbol, ex_date, kind, value; missing {', '.join(missing)}"
        )
    try:
        table = actions.select(CORPORATE_ACTIONS_SCHEMA.names).cast(
            pa.schema([pa.field(f.name, f.type) for f in CORPORATE_ACTIONS_SCHEMA])
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{source}: corporate actions cannot be read: {exc}") from None
    problems = []
    rows = table.to_pylist()
    for i, row in enumerate(rows, start=1):
        if any(v is None for v in row.values()):
            problems.append(f"row {i} has an empty field")
        elif row["kind"] not in ("split", "dividend"):
            problems.append(f"row {i}: kind {row['kind']!r} is not 'split' or 'dividend'")
        elif not row["value"] > 0:
            problems.append(f"row {i}: value must be positive (split ratio or cash per share), got {row['value']}")
    if len({(r["symbol"], r["ex_date"], r["kind"]) for r in rows}) != len(rows):
        problems.append("the same symbol, ex_date and kind appear more than once")
    if problems:
        raise DataError(
            f"{source}: {len(problems)} problem(s) in corporate actions, nothing was written: "
            + "; ".join(problems[:5])
        )
    symbols = pc.utf8_upper(pc.utf8_trim_whitespace(table.column("symbol")))
    return table.set_column(0, "symbol", symbols).cast(CORPORATE_ACTIONS_SCHEMA)


def _check_instruments(instruments: pa.Table, source: str) -> pa.Table:
    if "symbol" not in instruments.column_names:
        raise DataError(f"{source}: instruments need a symbol column")
    columns = {}
    for fld in INSTRUMENTS_SCHEMA:
        if fld.name in instruments.column_names:
            columns[fld.name] = instruments.column(fld.name).cast(fld.type)
        else:
            columns[fld.name] = pa.nulls(instruments.num_rows, fld.type)
    table = pa.table(columns, schema=pa.schema([pa.field(f.name, f.type) for f in INSTRUMENTS_SCHEMA]))
    if table.column("symbol").null_count or len(pc.unique(table.column("symbol"))) != table.num_rows:
        raise DataError(f"{source}: each instrument needs one row with a non-empty symbol")
    symbols = pc.utf8_upper(pc.utf8_trim_whitespace(table.column("symbol")))
    return table.set_column(0, "symbol", symbols).cast(INSTRUMENTS_SCHEMA)
