"""Read bars from a snapshot: only the partitions and row groups a request needs.

The reader prunes files with the Delta log alone (frequency, symbol, year and
month partitions, then each file's min/max timestamp statistics), reads the
survivors with ``pyarrow.parquet`` (row-group predicate pushdown on ``ts``
for files that straddle the range), and applies corporate-action adjustments
as of the snapshot.

Ranges: ``start`` is inclusive; ``end`` is inclusive, and a date without a
time means the whole of that day. Naive datetimes are UTC.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quantfleet.core.errors import DataError, NoDataError, UnknownSymbolError
from quantfleet.core.types import US_PER_DAY, Adjustment, Frequency, SnapshotId, SnapshotRef
from quantfleet.data.adjust import adjustment_factors
from quantfleet.data.schema import PRICE_FIELDS, VALUE_FIELDS
from quantfleet.data.storage import is_remote, storage_errors

if TYPE_CHECKING:
    from quantfleet.data.store import MarketDataStore

__all__ = ["BarData", "TimeLike", "read_bars"]

TimeLike = str | date | datetime | pd.Timestamp


@dataclass(frozen=True)
class BarData:
    """Bars read from one snapshot, sorted by symbol then time.

    ``table`` holds ``symbol`` (dictionary-encoded), ``ts`` (UTC) and the
    requested fields; ``files_read`` lists the data files the read touched.
    """

    table: pa.Table
    snapshot: SnapshotId
    frequency: Frequency
    adjustment: Adjustment
    files_read: tuple[str, ...]

    @property
    def symbols(self) -> list[str]:
        """Return the symbols present, sorted."""
        names: list[str] = pc.unique(self.table.column("symbol").cast(pa.string())).to_pylist()
        return sorted(names)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def for_symbol(self, symbol: str) -> pa.Table:
        """Return the rows of one symbol (without the symbol column)."""
        mask = pc.equal(self.table.column("symbol").cast(pa.string()), symbol)
        return self.table.filter(mask).drop_columns(["symbol"])

    def to_numpy(self, symbol: str) -> dict[str, np.ndarray]:
        """Return one symbol's columns as NumPy arrays (``ts`` as datetime64[us])."""
        table = self.for_symbol(symbol)
        out = {name: table.column(name).to_numpy() for name in table.column_names if name != "ts"}
        out["ts"] = table.column("ts").cast(pa.timestamp("us")).to_numpy()
        return out

    def to_pandas(self) -> pd.DataFrame:
        """Return a DataFrame indexed by (symbol, ts)."""
        df: pd.DataFrame = self.table.to_pandas()
        df["symbol"] = df["symbol"].astype(str)
        return df.set_index(["symbol", "ts"])


def parse_time(value: TimeLike, *, end: bool = False) -> int:
    """Return ``value`` as UTC microseconds; a bare date as an ``end`` means the end of that day."""
    whole_day = isinstance(value, date) and not isinstance(value, datetime)
    if isinstance(value, str):
        text = value.strip()
        whole_day = len(text) == 10
        try:
            value = pd.Timestamp(text)
        except ValueError:
            raise DataError(f"cannot read {text!r} as a date or time; use YYYY-MM-DD or an ISO time") from None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    if end and whole_day:
        ts = ts + timedelta(days=1) - timedelta(microseconds=1)
    return int(ts.value // 1000)  # Timestamp.value is always nanoseconds


def _files_for(
    store: MarketDataStore, sid: SnapshotId, symbols: Sequence[str], freq: Frequency, lo: int, hi: int
) -> pa.Table:
    files = store.files(sid)
    mask = pc.and_(
        pc.equal(files.column("frequency"), freq.value),
        pc.is_in(files.column("symbol"), pa.array(symbols)),
    )
    lo_year = datetime.fromtimestamp(lo / 1e6, tz=UTC).year if lo > -(2**62) else -(2**31)
    hi_year = datetime.fromtimestamp(hi / 1e6, tz=UTC).year if hi < 2**62 else 2**31 - 1
    mask = pc.and_(
        mask, pc.and_(pc.greater_equal(files.column("year"), lo_year), pc.less_equal(files.column("year"), hi_year))
    )
    # Statistics prune further, including month partitions of intraday data.
    mask = pc.and_(
        mask,
        pc.and_(
            pc.less_equal(files.column("min_ts").cast(pa.int64()), hi),
            pc.greater_equal(files.column("max_ts").cast(pa.int64()), lo),
        ),
    )
    return files.filter(mask).sort_by([("symbol", "ascending"), ("min_ts", "ascending")])


def _check_symbols(store: MarketDataStore, sid: SnapshotId, symbols: Sequence[str], freq: Frequency) -> None:
    files = store.files(sid)
    known = set(pc.unique(files.filter(pc.equal(files.column("frequency"), freq.value)).column("symbol")).to_pylist())
    unknown = [s for s in symbols if s not in known]
    if not unknown:
        return
    hints = []
    for s in unknown[:3]:
        close = difflib.get_close_matches(s, sorted(known), n=3)
        hints.append(f"{s} (did you mean {', '.join(close)}?)" if close else s)
    raise UnknownSymbolError(
        f"no {freq.value} bars for {', '.join(hints)} in snapshot {sid}; "
        f"list the symbols with 'quantfleet data ls --snapshot {sid}'"
    )


def _read_file(store: MarketDataStore, uri: str, columns: list[str], lo: int, hi: int, inside: bool) -> pa.Table:
    filters = None
    if not inside:
        lo_ts = pa.scalar(lo, pa.timestamp("us", tz="UTC"))
        hi_ts = pa.scalar(hi, pa.timestamp("us", tz="UTC"))
        filters = (pc.field("ts") >= lo_ts) & (pc.field("ts") <= hi_ts)
    if not is_remote(uri):
        return pq.read_table(uri, columns=columns, filters=filters)
    fs = store.storage.filesystem(uri)
    if store.cache is not None:
        cached = store.cache.fetch(uri, fs)
        if cached is not None:
            try:
                return pq.read_table(cached, columns=columns, filters=filters)
            except FileNotFoundError:
                pass  # another process evicted it between fetch and read: read it directly
    return pq.read_table(uri.split("://", 1)[1], columns=columns, filters=filters, filesystem=fs)


def read_bars(
    store: MarketDataStore,
    symbols: str | Iterable[str],
    *,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    frequency: Frequency | str = Frequency.DAILY,
    fields: Sequence[str] | None = None,
    snapshot: SnapshotRef | None = None,
    adjustment: Adjustment | str = Adjustment.RAW,
) -> BarData:
    """Return bars of ``symbols`` from ``start`` to ``end`` as held by ``snapshot`` (default: newest)."""
    freq = Frequency.parse(frequency)
    adj = Adjustment(adjustment)
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    names = list(dict.fromkeys(s.strip().upper() for s in names))
    if not names:
        raise DataError("no symbols asked for; pass at least one symbol")
    wanted = list(fields) if fields else list(VALUE_FIELDS)
    bad = [f for f in wanted if f not in VALUE_FIELDS]
    if bad:
        raise DataError(f"unknown field(s) {', '.join(bad)}; choose from {', '.join(VALUE_FIELDS)}")
    lo = parse_time(start) if start is not None else -(2**63)
    hi = parse_time(end, end=True) if end is not None else 2**63 - 1
    if lo > hi:
        raise DataError(f"start {start} is after end {end}; swap them")
    sid = store.resolve(snapshot)
    _check_symbols(store, sid, names, freq)
    files = _files_for(store, sid, names, freq, lo, hi)
    if files.num_rows == 0:
        raise NoDataError(_no_data_message(store, sid, names, freq, start, end))
    columns = ["ts", *wanted]
    if adj is not Adjustment.RAW and "close" not in columns:
        columns.append("close")  # dividend factors need the raw close
    parts = []
    table_url = store.table_url("bars")
    with storage_errors(store.url, store.storage):
        for row in files.to_pylist():
            inside = row["min_ts"] is not None and _us(row["min_ts"]) >= lo and _us(row["max_ts"]) <= hi
            part = _read_file(store, f"{table_url}/{row['path']}", columns, lo, hi, inside)
            symbol = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(part.num_rows, dtype=np.int32)), pa.array([row["symbol"]])
            )
            parts.append(part.add_column(0, "symbol", symbol))
    table = pa.concat_tables(parts, promote_options="permissive").combine_chunks().unify_dictionaries()
    table = _ensure_sorted(table)
    if table.num_rows == 0:
        raise NoDataError(_no_data_message(store, sid, names, freq, start, end))
    if adj is not Adjustment.RAW:
        table = _adjust(store, sid, table, freq, adj, hi)
    table = table.select(["symbol", "ts", *wanted])
    return BarData(
        table=table,
        snapshot=sid,
        frequency=freq,
        adjustment=adj,
        files_read=tuple(files.column("path").to_pylist()),
    )


def _us(value: datetime) -> int:
    return int(pd.Timestamp(value).value // 1000)


def _ensure_sorted(table: pa.Table) -> pa.Table:
    if table.num_rows < 2:
        return table
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    codes = table.column("symbol").chunk(0).indices.to_numpy() if table.column("symbol").num_chunks else None
    same = codes[1:] == codes[:-1] if codes is not None else np.ones(len(ts) - 1, dtype=bool)
    if np.all(~same | (ts[1:] > ts[:-1])):
        return table
    # Several ingests or a merge left files out of order: sort once. Arrow cannot
    # sort dictionary columns; the codes follow the (sorted) symbol order of the files.
    order = np.lexsort((ts, codes)) if codes is not None else np.argsort(ts, kind="stable")
    return table.take(pa.array(order))


def _no_data_message(
    store: MarketDataStore, sid: SnapshotId, names: list[str], freq: Frequency, start: object, end: object
) -> str:
    ranges = [
        f"{s.symbol} {s.first:%Y-%m-%d}..{s.last:%Y-%m-%d}"
        for s in store.catalog(sid)
        if s.symbol in names and s.frequency is freq
    ]
    held = "; ".join(ranges[:5])
    return (
        f"no {freq.value} bars for {', '.join(names[:5])} between {start or 'the beginning'} and "
        f"{end or 'the end'} in snapshot {sid}; the snapshot holds {held}. Choose dates inside that range"
    )


def _adjust(
    store: MarketDataStore, sid: SnapshotId, table: pa.Table, freq: Frequency, adj: Adjustment, hi: int
) -> pa.Table:
    actions = store.corporate_actions(sid)
    if actions.num_rows == 0:
        return table
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    days = ts // US_PER_DAY  # session date: UTC date of the bar (see module docs)
    codes = table.column("symbol").chunk(0)
    dictionary = codes.dictionary.to_pylist()
    idx = codes.indices.to_numpy()
    price_factor = np.ones(len(ts))
    volume_factor = np.ones(len(ts))
    closes = table.column("close").to_numpy()
    for code, symbol in enumerate(dictionary):
        rows = np.flatnonzero(idx == code)
        acts = actions.filter(pc.equal(actions.column("symbol"), symbol))
        if acts.num_rows == 0 or len(rows) == 0:
            continue
        ex_days = acts.column("ex_date").cast(pa.int32()).to_numpy().astype(np.int64)
        kinds = np.asarray(acts.column("kind").to_pylist())
        values = acts.column("value").to_numpy()
        later = ex_days[(kinds == "dividend") & (ex_days > days[rows[-1]])]
        before = _closes_before(store, sid, symbol, freq, later) if adj is Adjustment.ALL and len(later) else None
        p, v = adjustment_factors(
            days[rows], closes[rows], ex_days, kinds, values, dividends=adj is Adjustment.ALL, close_before=before
        )
        price_factor[rows] = p
        volume_factor[rows] = v
    for name in PRICE_FIELDS:
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, pa.array(table.column(name).to_numpy() * price_factor))
    if "volume" in table.column_names:
        i = table.column_names.index("volume")
        table = table.set_column(i, "volume", pa.array(table.column("volume").to_numpy() * volume_factor))
    return table


def _closes_before(
    store: MarketDataStore, sid: SnapshotId, symbol: str, freq: Frequency, ex_days: np.ndarray
) -> dict[int, float]:
    """Return the raw close of the last bar before each ex-date (for ex-dates after the range read)."""
    last = int(ex_days.max()) * US_PER_DAY - 1
    first = int(ex_days.min()) * US_PER_DAY - 400 * US_PER_DAY
    try:
        later = read_bars(
            store,
            symbol,
            start=pd.Timestamp(first, unit="us", tz="UTC"),
            end=pd.Timestamp(last, unit="us", tz="UTC"),
            frequency=freq,
            fields=["close"],
            snapshot=sid,
        )
    except NoDataError:
        return {}
    days = later.table.column("ts").cast(pa.int64()).to_numpy() // US_PER_DAY
    closes = later.table.column("close").to_numpy()
    out = {}
    for ex in ex_days:
        k = int(np.searchsorted(days, ex, side="left"))
        if k > 0:
            out[int(ex)] = float(closes[k - 1])
    return out
