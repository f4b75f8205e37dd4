"""Back-adjustment for splits and dividends, as of a snapshot (the documented worked example)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from quantfleet.data import MarketDataStore


def _bars(closes: list[float], days: list[date], volume: float = 1000.0) -> pa.Table:
    n = len(closes)
    return pa.table(
        {
            "symbol": ["XYZ"] * n,
            "ts": pa.array([datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days], pa.timestamp("us", tz="UTC")),
            "open": closes,
            "high": [c * 1.01 for c in closes],
            "low": [c * 0.99 for c in closes],
            "close": closes,
            "volume": [volume] * n,
        }
    )


DAYS = [date(2024, 3, 13), date(2024, 3, 14), date(2024, 3, 15), date(2024, 6, 7), date(2024, 6, 10)]
CLOSES = [99.0, 100.0, 99.5, 120.0, 60.5]
ACTIONS = pa.table(
    {
        "symbol": ["XYZ", "XYZ"],
        "ex_date": [date(2024, 3, 15), date(2024, 6, 10)],
        "kind": ["dividend", "split"],
        "value": [1.0, 2.0],
    }
)


@pytest.fixture
def xyz(store: MarketDataStore) -> MarketDataStore:
    store.ingest_bars([_bars(CLOSES, DAYS)], frequency="1d")
    store.ingest_corporate_actions(ACTIONS)
    return store


def test_worked_example_from_the_docs(xyz: MarketDataStore) -> None:
    # Close 100.00 the day before a 1.00 dividend: factor 0.99. Later a 2-for-1 split: 0.5.
    raw = xyz.read_bars("XYZ").table.column("close").to_pylist()
    splits = xyz.read_bars("XYZ", adjustment="splits").table.column("close").to_pylist()
    total = xyz.read_bars("XYZ", adjustment="all").table.column("close").to_pylist()
    assert raw == CLOSES
    assert splits == pytest.approx([49.5, 50.0, 49.75, 60.0, 60.5], rel=1e-12)
    assert total == pytest.approx([49.5 * 0.99, 49.5, 49.75, 60.0, 60.5], rel=1e-12)
    volume = xyz.read_bars("XYZ", adjustment="splits").table.column("volume").to_pylist()
    assert volume == [2000.0] * 4 + [1000.0]


def test_adjustment_follows_the_snapshot(xyz: MarketDataStore) -> None:
    # Snapshot 0 has bars only; 1 adds the actions. A later split must not change 0 or 1.
    assert xyz.read_bars("XYZ", snapshot=0, adjustment="all").table.column("close").to_pylist() == CLOSES
    before = xyz.read_bars("XYZ", snapshot=1, adjustment="all").table
    xyz.ingest_corporate_actions(
        pa.table({"symbol": ["XYZ"], "ex_date": [date(2024, 6, 7)], "kind": ["split"], "value": [3.0]})
    )
    assert xyz.read_bars("XYZ", snapshot=1, adjustment="all").table.equals(before)
    newest = xyz.read_bars("XYZ", adjustment="splits").table.column("close").to_pylist()
    assert newest[0] == pytest.approx(99.0 / 6)


def test_dividend_after_the_range_read_uses_the_close_before_it(xyz: MarketDataStore) -> None:
    # Reading only March 13-14 must still use the raw close of March 14 (100.00) for the dividend.
    part = xyz.read_bars("XYZ", end="2024-03-14", adjustment="all").table.column("close").to_pylist()
    assert part == pytest.approx([99.0 * 0.99 * 0.5, 100.0 * 0.99 * 0.5], rel=1e-12)


def test_bad_corporate_actions_are_refused(xyz: MarketDataStore) -> None:
    from quantfleet.core.errors import DataError

    bad = pa.table({"symbol": ["XYZ"], "ex_date": [date(2024, 1, 2)], "kind": ["merger"], "value": [1.0]})
    with pytest.raises(DataError, match="'split' or 'dividend'"):
        xyz.ingest_corporate_actions(bad)
    neg = pa.table({"symbol": ["XYZ"], "ex_date": [date(2024, 1, 2)], "kind": ["split"], "value": [-2.0]})
    with pytest.raises(DataError, match="must be positive"):
        xyz.ingest_corporate_actions(neg)
    assert xyz.latest() == 1
