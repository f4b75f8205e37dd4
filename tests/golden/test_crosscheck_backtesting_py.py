"""Cross-check: the SMA-crossover example gives backtesting.py's trades and final equity.

Conventions compared (both engines): market orders fill at the next bar's
open; no commission, spread or slippage; all-in sizing in whole shares
(backtesting.py's ``buy()`` with its default size, our
``order_target_percent(symbol, 1.0)``); long only (cross up buys, cross down
closes); a cross at bar i means fast < slow at i-1 and fast > slow at i; the
open trade at the end is marked at the last close, not closed. Data: the GOOG
daily series (2004-2013) that backtesting.py ships.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from quantfleet.engine import EngineConfig, Feed, run_backtest
from quantfleet.strategy.loader import load_strategy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.py"


class SmaCrossLong(BtStrategy):  # type: ignore[misc]
    n1 = 10
    n2 = 20

    def init(self) -> None:
        self.sma1 = self.I(SMA, self.data.Close, self.n1)
        self.sma2 = self.I(SMA, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


@pytest.mark.parametrize(("fast", "slow"), [(10, 20), (5, 30), (20, 50)])
def test_same_trades_and_final_equity_as_backtesting_py(fast: int, slow: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns that the last trade is still open, which is the convention here
        stats = Backtest(GOOG, SmaCrossLong, cash=10_000, commission=0, finalize_trades=False).run(n1=fast, n2=slow)
    theirs = stats._trades

    ts = GOOG.index.values.astype("datetime64[us]").astype(np.int64)
    fields = {k.lower(): GOOG[k].to_numpy(dtype=float) for k in ("Open", "High", "Low", "Close", "Volume")}
    feed = Feed.from_arrays(("GOOG",), ts, fields)
    strategy = load_strategy(EXAMPLE).instantiate({"fast": fast, "slow": slow})
    ours = run_backtest(strategy, feed, EngineConfig(cash=10_000))
    trades = ours.trades_table().to_pandas()
    closed = trades[~trades["open"]]

    assert len(closed) == len(theirs) > 10
    assert list(closed["entry_time"].dt.tz_localize(None)) == list(theirs["EntryTime"])
    assert list(closed["exit_time"].dt.tz_localize(None)) == list(theirs["ExitTime"])
    assert list(closed["quantity"]) == list(theirs["Size"].astype(float))
    np.testing.assert_allclose(closed["entry_price"], theirs["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(closed["exit_price"], theirs["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(closed["pnl"], theirs["PnL"], rtol=1e-9)
    assert ours.final_equity == pytest.approx(stats["Equity Final [$]"], rel=1e-9)
    np.testing.assert_allclose(ours.equity, stats._equity_curve["Equity"].to_numpy(), rtol=1e-9)
