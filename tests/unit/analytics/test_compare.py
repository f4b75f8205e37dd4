"""The compare page: overlaid equity curves, metrics side by side with the best value highlighted."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import plotly.offline
import pytest

from quantfleet.analytics.compare import CompareRun, render_compare, write_compare
from quantfleet.core.types import US_PER_DAY

START = 1_577_836_800 * 1_000_000  # 2020-01-01 UTC


def make_run(name: str, *, seed: int, bars: int = 500, capital: float = 1e5, **metrics: object) -> CompareRun:
    """Return a run with a random-walk equity curve and the given metrics."""
    rng = np.random.default_rng(seed)
    ts = START + np.arange(bars, dtype=np.int64) * US_PER_DAY
    equity = capital * np.cumprod(1 + rng.normal(0.0005, 0.01, bars))
    manifest = {
        "strategy": {"name": f"Strategy{seed}", "sha256": f"{seed:02d}" * 32, "kind": "event", "file": "s.py"},
        "parameters": {"fast": seed},
        "frequency": "1d",
        "snapshot": 3,
        "engine_version": "0.1.0",
        "first_bar": "2020-01-01",
        "last_bar": "2021-05-14",
    }
    return CompareRun(name=name, manifest=manifest, metrics=metrics, ts=ts, equity=equity)


def runs() -> list[CompareRun]:
    return [
        make_run("fast-5", seed=5, sharpe=1.2, max_drawdown=-0.25, annual_volatility=0.18, trades=40),
        make_run("fast-10", seed=10, sharpe=0.8, max_drawdown=-0.12, annual_volatility=0.11, trades=25),
        make_run("fast-20", seed=20, bars=300, capital=5e6, sharpe=None, max_drawdown=-0.3, annual_volatility=0.25),
    ]


def row_cells(html: str, key: str) -> list[str]:
    """Return the raw <td> cells of the metrics row for ``key``."""
    match = re.search(rf'<tr data-key="{key}">(.*?)</tr>', html)
    assert match, key
    return re.findall(r"<td[^>]*>.*?</td>", match.group(1))


def test_best_value_per_row_is_highlighted_by_direction() -> None:
    html = render_compare(runs())
    sharpe = row_cells(html, "sharpe")
    assert 'class="best"' in sharpe[1]
    assert "1.20" in sharpe[1]
    assert "n/a" in sharpe[3]
    drawdown = row_cells(html, "max_drawdown")
    assert 'class="best"' in drawdown[2]
    assert "-12.00%" in drawdown[2]
    volatility = row_cells(html, "annual_volatility")
    assert 'class="best"' in volatility[2]
    assert not any('class="best"' in c for c in row_cells(html, "trades"))  # no better direction
    assert 'data-key="cagr"' not in html  # no run reports it


def test_page_has_both_charts_and_every_run() -> None:
    html = render_compare(runs())
    assert re.findall(r'<div id="([\w-]+)" class="chart qf-chart" data-traces="(\d+)"', html) == [
        ("qf-compare-equity", "3"),
        ("qf-compare-underwater", "3"),
    ]
    for name in ("fast-5", "fast-10", "fast-20", "Strategy10", "050505050505"):
        assert name in html
    assert html.count(plotly.offline.get_plotlyjs()[:300]) == 1


def test_compare_is_deterministic_and_written_atomically(tmp_path: Path) -> None:
    path = write_compare(runs(), tmp_path / "compare.html")
    assert path.read_text(encoding="utf-8") == render_compare(runs())
    assert [p.name for p in tmp_path.iterdir()] == ["compare.html"]


def test_a_single_run_highlights_nothing() -> None:
    html = render_compare(runs()[:1])
    assert 'class="best"' not in html


def test_no_runs_is_an_error_that_names_the_fix() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        render_compare([])
