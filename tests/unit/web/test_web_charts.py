"""The dashboard's figures stay small whatever the run's length: a 20-year minute curve draws from 2,000 points."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from quantfleet.web import charts

MINUTES = 20 * 252 * 390  # twenty years of regular-hours minute bars


def _curve() -> pa.Table:
    rng = np.random.default_rng(3)
    start = np.datetime64("2004-01-02T14:30", "us").astype(np.int64)
    days, minute = np.divmod(np.arange(MINUTES, dtype=np.int64), 390)
    ts = start + days * 86_400_000_000 + minute * 60_000_000
    equity = 1e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, MINUTES)))
    equity[MINUTES // 3] *= 0.5  # a one-minute crash the downsampling must keep
    return pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "equity": equity})


def test_a_20_year_intraday_curve_is_downsampled_for_display() -> None:
    table = _curve()
    started = time.perf_counter()
    equity = charts.equity_figure(table)
    underwater = charts.underwater_figure(table)
    seconds = time.perf_counter() - started
    for figure in (equity, underwater):
        assert all(len(t.x) <= charts.MAX_POINTS for t in figure.data)
        assert len(figure.to_json()) < 200_000  # what the browser receives: tens of kB, not 2 million points
    low = float(np.min(table.column("equity").to_numpy()))
    assert min(equity.data[0].y) == low  # the crash is drawn
    assert equity.layout.xaxis.hoverformat == "%Y-%m-%d %H:%M"  # read as intraday
    assert seconds < 20, f"building the figures took {seconds:.1f} s"
