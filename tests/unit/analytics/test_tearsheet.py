"""The tearsheet HTML: header facts, every chart, determinism, size on a large run, edge cases."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.offline
import pyarrow as pa
import pytest

from quantfleet.analytics.tearsheet import TearsheetData, render_tearsheet, write_tearsheet
from quantfleet.core.types import US_PER_DAY

CHART_IDS = ("qf-equity", "qf-underwater", "qf-monthly", "qf-distribution", "qf-rolling", "qf-exposure", "qf-prices")
SHA = "3f" * 32
US_PER_MINUTE = 60_000_000
START_2005 = 1_104_537_600 * 1_000_000  # 2005-01-01 UTC
TRADE_TYPE = pa.timestamp("us", tz="UTC")


def trades_table(ts: np.ndarray, prices: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> pa.Table:
    """Return ``n`` random round trips over ``prices``; the last two are still open."""
    symbols = sorted(prices)
    bars = len(ts)
    sym = rng.integers(0, len(symbols), n) if symbols else np.zeros(0, dtype=np.int64)
    entry = np.sort(rng.integers(0, max(1, bars - 1), n))
    exit_ = np.minimum(entry + rng.integers(1, 20, n), bars - 1)
    closes = np.array([prices[symbols[s]] for s in range(len(symbols))]) if symbols else np.zeros((0, bars))
    entry_price = closes[sym, entry] if n else np.zeros(0)
    exit_price = closes[sym, exit_] if n else np.zeros(0)
    quantity = rng.integers(1, 500, n).astype(np.float64)
    long = rng.random(n) < 0.7
    sign = np.where(long, 1.0, -1.0)
    is_open = np.zeros(n, dtype=bool)
    is_open[-2:] = n >= 2
    exit_time = [None if o else int(ts[i]) for o, i in zip(is_open.tolist(), exit_.tolist(), strict=True)]
    return pa.table(
        {
            "symbol": pa.array([symbols[s] for s in sym.tolist()], pa.string()),
            "direction": pa.array(np.where(long, "long", "short").tolist(), pa.string()),
            "quantity": quantity,
            "entry_time": pa.array(ts[entry], TRADE_TYPE),
            "exit_time": pa.array(exit_time, TRADE_TYPE),
            "entry_price": entry_price,
            "exit_price": np.where(is_open, np.nan, exit_price),
            "pnl": np.where(is_open, np.nan, sign * (exit_price - entry_price) * quantity),
            "return": np.where(is_open, np.nan, sign * (exit_price / entry_price - 1.0)),
            "commission": quantity * 0.005,
            "open": is_open,
        }
    )


def make_data(
    *,
    bars: int = 800,
    symbols: int = 5,
    trades: int = 200,
    step_us: int = US_PER_DAY,
    frequency: str = "1d",
    periods_per_year: float = 252.0,
    benchmark: bool = True,
    flat: bool = False,
    seed: int = 7,
    sessions: int = 0,
    **manifest_extra: Any,
) -> TearsheetData:
    """Return a synthetic run: random-walk equity, closes and round trips.

    ``sessions`` > 0 makes a minute run of that many 390-minute sessions from 14:30 UTC (``bars`` is ignored).
    """
    rng = np.random.default_rng(seed)
    ts = START_2005 + np.arange(bars, dtype=np.int64) * step_us
    if sessions:
        minutes = np.arange(390, dtype=np.int64) * US_PER_MINUTE + (14 * 60 + 30) * US_PER_MINUTE
        ts = (START_2005 + 2 * US_PER_DAY + np.arange(sessions)[:, None] * US_PER_DAY + minutes).ravel()
        bars, frequency, periods_per_year = len(ts), "1m", 252 * 390
    returns = np.zeros(bars) if flat else rng.normal(0.0004, 0.01, bars)
    equity = 100_000.0 * np.cumprod(1.0 + returns)
    names = [f"S{i:03d}" for i in range(symbols)]
    prices = {s: 50.0 * np.cumprod(1.0 + rng.normal(0.0002, 0.015, bars)) for s in names}
    manifest = {
        "strategy": {"file": "sma_cross.py", "sha256": SHA, "kind": "event", "name": "SmaCross"},
        "parameters": {"fast": 10, "slow": 30},
        "universe": names,
        "start": "2005-01-01",
        "end": "2024-12-31",
        "frequency": frequency,
        "snapshot": 17,
        "engine": {"fill": "next_open"},
        "engine_version": "0.1.0",
        "seed": 42,
        "bars": bars,
        "first_bar": "2005-01-01",
        "last_bar": "2024-12-31",
        **manifest_extra,
    }
    total = float(equity[-1] / equity[0] - 1) if bars else None
    metrics = {"total_return": total, "sharpe": 0.91, "calmar": None, "my_extra": 2.5}
    return TearsheetData(
        manifest=manifest,
        ts=ts,
        equity=equity,
        gross_exposure=equity * 0.9,
        net_exposure=equity * 0.4,
        metrics=metrics,
        benchmark_metrics={"total_return": 0.5, "sharpe": 0.4} if benchmark else None,
        benchmark=100.0 * np.cumprod(1.0 + rng.normal(0.0003, 0.01, bars)) if benchmark else None,
        benchmark_name="SPY" if benchmark else None,
        trades=trades_table(ts, prices, trades, rng),
        prices=prices,
        periods_per_year=periods_per_year,
        notes={"calmar": "no drawdown to divide by"},
    )


def chart_traces(html: str) -> dict[str, int]:
    """Return chart id -> declared trace count, from the chart divs."""
    return {m[0]: int(m[1]) for m in re.findall(r'<div id="([\w-]+)" class="chart qf-chart" data-traces="(\d+)"', html)}


def test_header_shows_what_reproduces_the_run() -> None:
    html = render_tearsheet(make_data())
    assert re.search(r'class="qf-snapshot">17<', html)
    assert f'class="qf-code-hash">{SHA}<' in html
    for text in ("SmaCross (event)", "sma_cross.py", "fast = 10, slow = 30", "0.1.0", "next_open", "1d", "SPY"):
        assert text in html


def test_every_chart_is_present_and_plotly_is_inlined_once() -> None:
    html = render_tearsheet(make_data())
    traces = chart_traces(html)
    assert tuple(traces) == CHART_IDS
    assert traces["qf-equity"] == 2
    assert traces["qf-prices"] == 5 * 4
    for chart_id in CHART_IDS:
        assert f'"id":"{chart_id}"' in html
    signature = plotly.offline.get_plotlyjs()[:300]
    assert html.count(signature) == 1
    assert "<link" not in html
    assert "<script src" not in html


def test_same_inputs_give_the_same_bytes() -> None:
    assert render_tearsheet(make_data()) == render_tearsheet(make_data())


def test_metrics_table_shows_missing_unknown_and_notes() -> None:
    html = render_tearsheet(make_data())
    assert 'title="no drawdown to divide by"' in html
    assert "My extra" in html
    assert html.index("My extra") > html.index("Slippage")
    assert "n/a" in html
    assert "0.91" in html


def test_a_20_year_run_of_500_symbols_stays_small() -> None:
    data = make_data(bars=20 * 252, symbols=500, trades=50_000, seed=3)
    started = time.perf_counter()
    html = render_tearsheet(data)
    elapsed = time.perf_counter() - started
    assert len(html.encode()) < 20_000_000
    assert elapsed < 15
    assert "Showing the first 1,000 of 50,000 round trips" in html
    assert "Showing 10 of 500 traded symbols" in html
    assert html.count("<tr>") < 1_300  # trades capped, plus metrics and drawdowns rows


def test_long_series_are_downsampled() -> None:
    data = make_data(bars=40_000, symbols=2, trades=50, step_us=US_PER_MINUTE, frequency="1m", periods_per_year=98_280)
    html = render_tearsheet(data, max_points=2_000)
    assert len(html.encode()) < 8_000_000
    assert chart_traces(html)["qf-rolling"] == 4


def test_a_three_day_minute_run_renders() -> None:
    data = make_data(sessions=3, trades=30)
    html = render_tearsheet(data)
    assert tuple(chart_traces(html)) == CHART_IDS
    assert "Rolling windows need 49,140 and 98,280 bar returns" in html
    assert "Return per bar (1m)" in html
    assert "2005-01-03 14:30 → 2005-01-05 20:59 UTC" in html


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"trades": 0}, id="no-trades"),
        pytest.param({"flat": True}, id="flat-equity"),
        pytest.param({"benchmark": False}, id="no-benchmark"),
        pytest.param({"bars": 1, "trades": 0}, id="single-bar"),
        pytest.param({"bars": 0, "trades": 0, "symbols": 0}, id="no-bars"),
        pytest.param({"bars": 2, "trades": 1, "symbols": 1}, id="two-bars"),
        pytest.param({"symbols": 0, "trades": 0}, id="no-symbols"),
    ],
)
def test_edge_cases_render(kwargs: dict[str, Any]) -> None:
    html = render_tearsheet(make_data(**kwargs))
    assert tuple(chart_traces(html)) == CHART_IDS
    assert html.endswith("</html>\n")


def test_no_trades_and_no_benchmark_say_so() -> None:
    html = render_tearsheet(make_data(trades=0, benchmark=False, flat=True))
    assert "No trades." in html
    assert "No drawdowns." in html
    assert chart_traces(html)["qf-equity"] == 1


def test_text_from_the_run_is_escaped() -> None:
    data = make_data(strategy={"name": "</script><script>alert(1)</script>", "sha256": SHA, "kind": "event"})
    html = render_tearsheet(data)
    assert "<script>alert(1)" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html


def test_write_tearsheet_is_atomic(tmp_path: Path) -> None:
    path = write_tearsheet(make_data(), tmp_path / "out" / "tearsheet.html", max_symbols=2)
    assert path.read_text(encoding="utf-8") == render_tearsheet(make_data(), max_symbols=2)
    assert [p.name for p in path.parent.iterdir()] == ["tearsheet.html"]
    assert path.stat().st_mode & 0o777 == 0o644
