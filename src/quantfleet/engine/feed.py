"""The engine's input: bars of several symbols aligned on one timeline, plus corporate-action events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantfleet.core.errors import DataError
from quantfleet.core.types import US_PER_DAY, Adjustment, Frequency, SnapshotId
from quantfleet.data import MarketDataStore
from quantfleet.data.reader import TimeLike, parse_time

__all__ = ["Event", "Feed", "load_feed"]

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Event:
    """A corporate action applied to the books at the open of a bar."""

    symbol: int
    kind: str  # "split" or "dividend"
    value: float


@dataclass(frozen=True)
class Feed:
    """Aligned bars: ``ts`` (UTC microseconds, shape n) and one (n, m) array per field, NaN where missing."""

    symbols: tuple[str, ...]
    ts: np.ndarray
    fields: Mapping[str, np.ndarray]
    frequency: Frequency = Frequency.DAILY
    events: Mapping[int, tuple[Event, ...]] = field(default_factory=dict)
    snapshot: SnapshotId | None = None

    def __post_init__(self) -> None:
        for arr in (self.ts, *self.fields.values()):
            arr.flags.writeable = False

    @property
    def n_bars(self) -> int:
        """Return the number of timestamps."""
        return len(self.ts)

    def time(self, i: int) -> datetime:
        """Return bar ``i``'s timestamp (UTC)."""
        return datetime.fromtimestamp(self.ts.item(i) / 1e6, tz=UTC)

    @classmethod
    def from_arrays(
        cls,
        symbols: Sequence[str],
        ts: np.ndarray,
        fields: Mapping[str, np.ndarray],
        *,
        frequency: Frequency = Frequency.DAILY,
        events: Mapping[int, tuple[Event, ...]] | None = None,
    ) -> Feed:
        """Return a feed from (n,) timestamps and (n, m) or (n,) arrays per field."""
        arrays = {}
        for name in FIELDS:
            arr = np.asarray(fields[name], dtype=np.float64)
            arrays[name] = np.ascontiguousarray(arr.reshape(len(ts), -1))
        return cls(tuple(symbols), np.asarray(ts, dtype=np.int64).copy(), arrays, frequency, events or {})

    @classmethod
    def from_table(cls, table: pa.Table, *, frequency: Frequency = Frequency.DAILY) -> Feed:
        """Return a feed from a long table (symbol, ts, open, high, low, close, volume)."""
        # Symbols as dictionary codes (no Python string per row), renumbered in sorted order.
        encoded = pc.dictionary_encode(table.column("symbol").cast(pa.string())).combine_chunks()
        names = encoded.dictionary.to_pylist()
        order = sorted(range(len(names)), key=names.__getitem__)
        renumber = np.empty(len(names), dtype=np.intp)
        renumber[order] = np.arange(len(names))
        symbols = [names[i] for i in order]
        sym_idx = renumber[encoded.indices.to_numpy(zero_copy_only=False)]
        ts_all = table.column("ts").cast(pa.int64()).to_numpy()
        if len(symbols) == 1 and bool(np.all(ts_all[1:] > ts_all[:-1])):
            # One symbol in time order (the common read): the rows are the bars, no sort or scatter.
            ts = np.ascontiguousarray(ts_all)
            arrays = {name: np.array(table.column(name).to_numpy(), dtype=np.float64).reshape(-1, 1) for name in FIELDS}
            return cls(tuple(symbols), ts, arrays, frequency)
        ts, rows = np.unique(ts_all, return_inverse=True)
        arrays = {}
        for name in FIELDS:
            arr = np.full((len(ts), len(symbols)), np.nan)
            arr[rows, sym_idx] = table.column(name).to_numpy()
            arrays[name] = arr
        return cls(tuple(symbols), ts, arrays, frequency)


def _events(store: MarketDataStore, feed: Feed, adjustment: Adjustment) -> dict[int, tuple[Event, ...]]:
    if adjustment is Adjustment.ALL or feed.snapshot is None:
        return {}
    actions = store.corporate_actions(feed.snapshot)
    if actions.num_rows == 0:
        return {}
    days = feed.ts // US_PER_DAY
    out: dict[int, list[Event]] = {}
    index = {s: j for j, s in enumerate(feed.symbols)}
    for row in actions.to_pylist():
        if row["symbol"] not in index or (row["kind"] == "split" and adjustment is Adjustment.SPLITS):
            continue
        ex_day = (row["ex_date"] - datetime(1970, 1, 1).date()).days
        i = int(np.searchsorted(days, ex_day, side="left"))
        if 0 < i < len(days):  # before the first bar nothing is held; after the last, nothing trades
            out.setdefault(i, []).append(Event(index[row["symbol"]], row["kind"], float(row["value"])))
    return {i: tuple(evs) for i, evs in out.items()}


def load_feed(
    store: MarketDataStore,
    symbols: Sequence[str],
    *,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    frequency: Frequency | str = Frequency.DAILY,
    snapshot: int | str | None = None,
    adjustment: Adjustment | str = Adjustment.RAW,
    warmup: int = 0,
) -> tuple[Feed, int]:
    """Return the feed for a backtest and the index of its first tradable bar (after ``warmup`` bars)."""
    freq = Frequency.parse(frequency)
    adj = Adjustment(adjustment)
    first = None
    if start is not None and warmup:
        # Read enough calendar time before the start to hold ``warmup`` bars, then trim.
        per_day = 1 if not freq.is_intraday else max(1, int(390 * 60 / freq.step.total_seconds()))
        days = int(warmup / per_day * 7 / 4) + 10
        first = parse_time(start) - days * US_PER_DAY
    data = store.read_bars(
        symbols,
        start=datetime.fromtimestamp(first / 1e6, tz=UTC) if first is not None else start,
        end=end,
        frequency=freq,
        snapshot=snapshot,
        adjustment=adj,
    )
    feed = Feed.from_table(data.table, frequency=freq)
    feed = Feed(feed.symbols, feed.ts, feed.fields, freq, {}, data.snapshot)
    begin = 0
    if start is not None:
        begin = int(np.searchsorted(feed.ts, parse_time(start), side="left"))
        if begin >= feed.n_bars:
            raise DataError(f"no bars on or after {start}; choose an earlier start")
        if warmup:
            if begin < warmup:
                raise DataError(
                    f"only {begin} bar(s) before {start} for a warm-up of {warmup}; start later or shorten --warmup"
                )
            cut = begin - warmup
            feed = Feed(
                feed.symbols, feed.ts[cut:], {k: v[cut:] for k, v in feed.fields.items()}, freq, {}, data.snapshot
            )
            begin = warmup
        else:
            feed = Feed(
                feed.symbols, feed.ts[begin:], {k: v[begin:] for k, v in feed.fields.items()}, freq, {}, data.snapshot
            )
            begin = 0
    events = _events(store, feed, adj)
    return Feed(feed.symbols, feed.ts, feed.fields, freq, events, data.snapshot), begin
