"""The feed a backtest reads: aligned symbols, warm-up, and corporate actions from the store."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from quantfleet.core.errors import DataError
from quantfleet.core.types import US_PER_DAY
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.engine import EngineConfig, load_feed, run_backtest
from quantfleet.testing import ScriptedStrategy


@pytest.fixture
def market(store: MarketDataStore) -> MarketDataStore:
    bars = synthetic_bars(["AAA", "BBB"], start=date(2024, 1, 1), end=date(2024, 3, 29), actions=False).bars
    # BBB has no bar on Jan 10: the feed shows a gap, not a shifted series.
    keep = ~(
        (bars.column("symbol").to_numpy(zero_copy_only=False) == "BBB")
        & (bars.column("ts").cast(pa.int64()).to_numpy() == 19_732 * US_PER_DAY)
    )
    store.ingest_bars([bars.filter(pa.array(keep))], frequency="1d")
    store.ingest_corporate_actions(
        pa.table(
            {
                "symbol": ["AAA", "AAA"],
                "ex_date": [date(2024, 2, 1), date(2024, 3, 1)],
                "kind": ["split", "dividend"],
                "value": [2.0, 0.5],
            }
        )
    )
    return store


def test_aligned_with_gaps_and_events(market: MarketDataStore) -> None:
    feed, first = load_feed(market, ["AAA", "BBB"], start="2024-01-02", end="2024-03-29")
    assert first == 0
    assert feed.symbols == ("AAA", "BBB")
    day = int(np.searchsorted(feed.ts, 19_732 * US_PER_DAY))
    assert np.isnan(feed.fields["close"][day, 1])
    assert not np.isnan(feed.fields["close"][day, 0])
    kinds = {feed.time(i).date(): [(e.kind, e.value) for e in evs] for i, evs in feed.events.items()}
    assert kinds == {date(2024, 2, 1): [("split", 2.0)], date(2024, 3, 1): [("dividend", 0.5)]}
    split_only, _ = load_feed(market, ["AAA"], start="2024-01-02", adjustment="splits")
    assert [e.kind for evs in split_only.events.values() for e in evs] == ["dividend"]
    adjusted, _ = load_feed(market, ["AAA"], start="2024-01-02", adjustment="all")
    assert adjusted.events == {}


def test_split_and_dividend_reach_the_books(market: MarketDataStore) -> None:
    feed, _ = load_feed(market, ["AAA"], start="2024-01-02")
    result = run_backtest(ScriptedStrategy({0: lambda ctx: ctx.order("AAA", 10)}), feed, EngineConfig())
    assert result.quantity[-1, 0] == 20
    assert result.dividends == pytest.approx(20 * 0.5)


def test_warmup_reads_bars_before_the_start(market: MarketDataStore) -> None:
    feed, first = load_feed(market, ["AAA"], start="2024-02-01", warmup=10)
    assert first == 10
    assert feed.time(first).date() == date(2024, 2, 1)
    with pytest.raises(DataError, match="shorten --warmup"):
        load_feed(market, ["AAA"], start="2024-01-05", warmup=10)
