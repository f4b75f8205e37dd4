"""The tearsheet in headless Chromium, offline: no errors, every chart drawn, the controls work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantfleet.analytics.tearsheet import write_tearsheet

OpenOffline = Callable[[Path], Any]  # returns conftest.Opened


def expected_traces(symbols: int, *, benchmark: bool = True) -> dict[str, int]:
    return {
        "qf-equity": 2 if benchmark else 1,
        "qf-underwater": 1,
        "qf-monthly": 2,
        "qf-distribution": 1,
        "qf-rolling": 4,
        "qf-exposure": 4,
        "qf-prices": 4 * symbols,
    }


def assert_clean(opened: Any, traces: dict[str, int]) -> None:
    assert opened.errors == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    state = opened.charts()
    assert {k: v["traces"] for k, v in state.items()} == traces
    assert all(v["svgs"] >= 1 for v in state.values()), state
    assert all(v["declared"] == v["traces"] for v in state.values()), state


def test_tearsheet_opens_offline_and_draws_every_chart(open_offline: OpenOffline, samples: Any, tmp_path: Path) -> None:
    path = write_tearsheet(samples.make_data(bars=3 * 252, symbols=6, trades=300), tmp_path / "tearsheet.html")
    opened = open_offline(path)
    assert_clean(opened, expected_traces(6))
    assert opened.page.locator(".qf-code-hash").inner_text() == samples.SHA
    opened.screenshot("tearsheet.png")


def test_controls_switch_scale_symbol_and_sort(open_offline: OpenOffline, samples: Any, tmp_path: Path) -> None:
    path = write_tearsheet(samples.make_data(bars=400, symbols=3, trades=60), tmp_path / "tearsheet.html")
    page = open_offline(path).page
    page.locator("#qf-equity .updatemenu-button", has_text="Log").click()
    assert page.evaluate("document.getElementById('qf-equity').layout.yaxis.type") == "log"

    page.locator("#qf-prices .updatemenu-header").click()
    page.locator("#qf-prices .updatemenu-dropdown-button").nth(1).click()
    visible = page.evaluate("document.getElementById('qf-prices').data.map(t => t.visible)")
    assert visible == [False] * 4 + [True] * 4 + [False] * 4

    header = page.locator("#qf-trades-table th", has_text="P&L")
    header.click()
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    values = page.eval_on_selector_all(
        "#qf-trades-table tbody tr td:nth-child(8)", "cells => cells.map(c => parseFloat(c.dataset.v))"
    )
    finite = [v for v in values if v == v]
    assert finite == sorted(finite, reverse=True)


def test_a_20_year_run_of_500_symbols_opens_quickly(open_offline: OpenOffline, samples: Any, tmp_path: Path) -> None:
    data = samples.make_data(bars=20 * 252, symbols=500, trades=50_000, seed=3)
    path = write_tearsheet(data, tmp_path / "tearsheet.html")
    assert path.stat().st_size < 20_000_000
    opened = open_offline(path)
    assert_clean(opened, expected_traces(10))
    assert opened.seconds < 20, f"the page took {opened.seconds:.1f} s to draw"
    opened.screenshot("tearsheet-20y-500-symbols.png")


def test_a_three_day_minute_run(open_offline: OpenOffline, samples: Any, tmp_path: Path) -> None:
    data = samples.make_data(sessions=3, symbols=2, trades=40)
    opened = open_offline(write_tearsheet(data, tmp_path / "tearsheet.html"))
    assert_clean(opened, expected_traces(2))
    opened.screenshot("tearsheet-3-day-1m.png")


@pytest.mark.parametrize(
    ("kwargs", "symbols"),
    [
        pytest.param({"bars": 1, "trades": 0, "benchmark": False}, 5, id="single-bar"),
        pytest.param({"flat": True, "trades": 0, "symbols": 0}, 0, id="flat-no-trades"),
    ],
)
def test_edge_cases_draw_without_errors(
    open_offline: OpenOffline, samples: Any, tmp_path: Path, kwargs: dict[str, Any], symbols: int
) -> None:
    opened = open_offline(write_tearsheet(samples.make_data(**kwargs), tmp_path / "tearsheet.html"))
    assert_clean(opened, expected_traces(symbols, benchmark=kwargs.get("benchmark", True)))
