"""A run loads only what initialize subscribes to, and the strategy sees only those fields."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.engine.probe import probe_subscriptions
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.strategy.loader import StrategyError, load_strategy

SUBSET = """
from quantfleet import Strategy

class OnlyB(Strategy):
    def initialize(self, ctx):
        ctx.subscribe(["BBB"], frequency="1d", fields=["close"])
        self.seen = ctx.indicator(lambda c: c, "close", symbol="BBB")

    def on_bar(self, ctx, bars):
        if ctx.bar_index == 0:
            ctx.log.info("symbols %s universe %s", list(bars.symbols), list(ctx.universe))
"""

PEEK = """
from quantfleet import Strategy

class Peek(Strategy):
    def initialize(self, ctx):
        ctx.subscribe(["AAA"], fields=["close"])

    def on_bar(self, ctx, bars):
        ctx.history("AAA", "volume", 5)
"""


@pytest.fixture
def market(store: MarketDataStore) -> MarketDataStore:
    data = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2024, 1, 1), end=date(2024, 3, 29), actions=False)
    store.ingest_bars([data.bars], frequency="1d")
    return store


def test_probe_records_subscriptions_and_stops_at_data(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text(SUBSET)
    subs = probe_subscriptions(load_strategy(path).instantiate(), ["AAA", "BBB", "CCC"])
    assert subs.symbols == ["BBB"]
    assert subs.frequency is not None
    assert subs.frequency.value == "1d"
    assert subs.fields == {"close"}


def test_a_run_loads_only_the_subscribed_symbols(market: MarketDataStore, tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text(SUBSET)
    spec = BacktestSpec(strategy=path, symbols=("AAA", "BBB", "CCC"), start="2024-01-02")
    outcome = run_spec(spec, market, tmp_path / "run")
    assert outcome.manifest["universe"] == ["BBB"]
    assert "symbols ['BBB'] universe ['BBB']" in (outcome.run_dir / "log.txt").read_text()


def test_unsubscribed_fields_are_refused(market: MarketDataStore, tmp_path: Path) -> None:
    path = tmp_path / "p.py"
    path.write_text(PEEK)
    spec = BacktestSpec(strategy=path, symbols=("AAA",), start="2024-01-02")
    with pytest.raises(StrategyError, match=r"not among the subscribed fields.*raised at p\.py:9 in on_bar"):
        run_spec(spec, market, tmp_path / "run")
