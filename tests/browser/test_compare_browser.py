"""The compare page in headless Chromium, offline: no errors, both charts drawn, best values marked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.analytics.compare import CompareRun, write_compare
from quantfleet.core.types import US_PER_DAY

START = 1_577_836_800 * 1_000_000  # 2020-01-01 UTC


def run(name: str, seed: int, **metrics: object) -> CompareRun:
    rng = np.random.default_rng(seed)
    ts = START + np.arange(750, dtype=np.int64) * US_PER_DAY
    manifest = {
        "strategy": {"name": "SmaCross", "sha256": f"{seed:02d}" * 32},
        "parameters": {"fast": seed, "slow": 4 * seed},
        "frequency": "1d",
        "snapshot": 12,
        "engine_version": "0.1.0",
        "first_bar": "2020-01-01",
        "last_bar": "2022-01-19",
    }
    equity = 1e5 * np.cumprod(1 + rng.normal(0.0004, 0.01, len(ts)))
    return CompareRun(name=name, manifest=manifest, metrics=metrics, ts=ts, equity=equity)


def test_compare_page_opens_offline(open_offline: Callable[[Path], Any], tmp_path: Path) -> None:
    runs = [
        run("fast=5", 5, total_return=0.4, sharpe=1.1, max_drawdown=-0.2, annual_volatility=0.15, trades=80),
        run("fast=10", 10, total_return=0.3, sharpe=0.9, max_drawdown=-0.1, annual_volatility=0.12, trades=50),
        run("fast=20", 20, total_return=0.5, sharpe=None, max_drawdown=-0.3, annual_volatility=0.2, trades=30),
    ]
    opened = open_offline(write_compare(runs, tmp_path / "compare.html"))
    assert opened.errors == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    state = opened.charts()
    assert {k: (v["traces"], v["svgs"] >= 1) for k, v in state.items()} == {
        "qf-compare-equity": (3, True),
        "qf-compare-underwater": (3, True),
    }
    best = opened.page.locator("#qf-compare-metrics td.best").all_inner_texts()
    assert best == ["50.00%", "12.00%", "1.10", "-10.00%"]
    opened.screenshot("compare.png")
