"""Warm the fork server: pay once for what every run's first backtest and tearsheet load lazily.

Imported by the fork server only (after :mod:`quantfleet.dispatch.child`). It
runs a 60-bar backtest of a strategy that trades, computes its report and
renders its tearsheet in memory: plotly's validators, plotly.js (cached), the
engine's and the metrics' first-call costs are then already in the server's
memory, which every forked child shares. A failure here only costs speed.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np

__all__ = ["warm_up"]

log = logging.getLogger(__name__)


def _flip() -> Any:
    from quantfleet.strategy import Strategy

    class Flip(Strategy):
        """Hold half the book five bars in ten: a few trades to report."""

        def on_bar(self, ctx: Any, bars: Any) -> None:
            ctx.order_target_percent("X", 0.5 if ctx.bar_index % 10 < 5 else 0.0)

    return Flip()


def warm_up() -> None:
    """Run and report a tiny backtest in memory (see the module docstring)."""
    from quantfleet.analytics.tearsheet import render_tearsheet
    from quantfleet.engine import EngineConfig, Feed, run_backtest
    from quantfleet.sandbox.report import build_report, tearsheet_data

    n = 60
    ts = (np.arange(n, dtype=np.int64) + 19_723) * 86_400_000_000
    close = 100 + np.cumsum(np.sin(np.arange(n)))
    fields = {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": np.full(n, 1e6)}
    feed = Feed.from_arrays(("X",), ts, fields)
    quiet = logging.getLogger("quantfleet.dispatch.warm.strategy")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    result = run_backtest(_flip(), feed, EngineConfig(), start=0, logger=quiet)
    report = build_report(result, feed, None, calendar="24/7", benchmark=None)  # type: ignore[arg-type]
    render_tearsheet(tearsheet_data(report, result, feed, 0, {"strategy": {"name": "warm-up"}}))


with contextlib.suppress(Exception):
    warm_up()
