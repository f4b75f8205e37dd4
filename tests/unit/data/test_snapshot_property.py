"""Invariant: whatever is written later, a pinned snapshot reads the same bytes."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantfleet.core.errors import NoDataError
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars

SYMBOLS = ["AAA", "BBB"]
operation = st.tuples(st.sampled_from(["append", "upsert", "delete"]), st.sampled_from(SYMBOLS), st.integers(1, 40))


def _read(store: MarketDataStore, snapshot: int) -> pa.Table | None:
    """Return every bar of the snapshot (None when it holds none)."""
    held = sorted({s.symbol for s in store.catalog(snapshot)})
    return store.read_bars(held, snapshot=snapshot).table if held else None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_snapshots_never_change(ops: list[tuple[str, str, int]], seed: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = MarketDataStore(root)
        base = synthetic_bars(SYMBOLS, start=date(2024, 1, 1), end=date(2024, 3, 31), seed=seed, actions=False).bars
        store.ingest_bars([base], frequency="1d")
        seen = {0: _read(store, 0)}
        end = date(2024, 3, 31)
        for kind, symbol, n in ops:
            if kind == "append":
                first, end = end + timedelta(days=1), end + timedelta(days=n)
                try:
                    new = synthetic_bars([symbol], start=first, end=end, seed=seed, actions=False).bars
                except NoDataError:  # a weekend or holiday: no sessions to append
                    continue
                store.ingest_bars([new], frequency="1d")
            elif kind == "upsert":
                rows = base.filter(pc.equal(base.column("symbol"), symbol)).slice(n, 5)
                corrected = rows.set_column(5, "close", rows.column("high"))  # a vendor correction
                store.ingest_bars([corrected], frequency="1d", mode="upsert")
            else:
                cut = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n)
                store.delete_bars([symbol], frequency="1d", end=cut)
            latest = store.latest()
            assert latest is not None
            seen[latest] = _read(store, latest)
        fresh = MarketDataStore(root)  # nothing cached in memory
        for snapshot, table in seen.items():
            again = _read(fresh, snapshot)
            if table is None:
                assert again is None
            else:
                assert again is not None
                assert again.equals(table), f"snapshot {snapshot} changed"
