"""Strategy files: three styles, parameters by name, and the user's own traceback on errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet.engine import EngineConfig, run_backtest
from quantfleet.strategy.loader import StrategyError, StrategyKind, load_strategy
from quantfleet.strategy.params import ParameterError
from quantfleet.testing import make_feed

ROWS = [(float(p), p + 1.0, p - 1.0, float(p), 100.0) for p in [10, 11, 12, 11, 10, 9, 10, 12, 14, 13]]

CLASS_STYLE = """
from quantfleet import Strategy

class Buy(Strategy):
    size: int = 5
    ratio: float = 0.5
    verbose: bool = False

    def on_bar(self, ctx, bars):
        if ctx.bar_index == 0:
            ctx.order("X", self.size)
"""

RUN_STYLE = """
def initialize(ctx):
    ctx.log.info("starting")

def run(ctx, size: int = 3):
    if ctx.bar_index == 1:
        ctx.order("X", size)
"""

SIGNALS_STYLE = """
import numpy as np

def signals(close, threshold=11.5):
    return close > threshold
"""

BROKEN = """
from quantfleet import Strategy

class Oops(Strategy):
    def on_bar(self, ctx, bars):
        if ctx.bar_index == 3:
            return 1 / 0
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_class_style_with_params(tmp_path: Path) -> None:
    loaded = load_strategy(write(tmp_path, "buy.py", CLASS_STYLE))
    assert loaded.kind is StrategyKind.CLASS
    assert list(loaded.parameters) == ["size", "ratio", "verbose"]
    strategy = loaded.instantiate({"size": "7", "ratio": "0.25", "verbose": "true"})
    assert (strategy.size, strategy.ratio, strategy.verbose) == (7, 0.25, True)
    result = run_backtest(strategy, make_feed(ROWS), EngineConfig())
    assert result.fills[0].quantity == 7


def test_unknown_or_mistyped_parameters_list_the_valid_ones(tmp_path: Path) -> None:
    loaded = load_strategy(write(tmp_path, "buy.py", CLASS_STYLE))
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) sise; this strategy takes: size: int = 5"):
        loaded.instantiate({"sise": 3})
    with pytest.raises(ParameterError, match="parameter size must be int"):
        loaded.instantiate({"size": "five"})


def test_run_style(tmp_path: Path) -> None:
    loaded = load_strategy(write(tmp_path, "r.py", RUN_STYLE))
    assert loaded.kind is StrategyKind.RUN
    assert list(loaded.parameters) == ["size"]
    result = run_backtest(loaded.instantiate({"size": 4}), make_feed(ROWS), EngineConfig())
    assert [(f.quantity, f.price) for f in result.fills] == [(4, 12.0)]


def test_signals_style_runs_on_the_event_engine(tmp_path: Path) -> None:
    loaded = load_strategy(write(tmp_path, "s.py", SIGNALS_STYLE))
    assert loaded.kind is StrategyKind.SIGNALS
    assert list(loaded.parameters) == ["threshold"]
    result = run_backtest(loaded.instantiate(), make_feed(ROWS), EngineConfig(cash=1000.0))
    # close > 11.5 first at bar 2 (12): buy at bar 3's open (11); flat at bar 3 (11): sell at bar 4's open.
    assert [(f.ts.day, f.quantity, f.price) for f in result.fills][:2] == [(4, 90, 11.0), (5, -90, 10.0)]


def test_user_errors_show_the_users_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "oops.py", BROKEN)
    loaded = load_strategy(path)
    with pytest.raises(StrategyError) as err:
        run_backtest(loaded.instantiate(), make_feed(ROWS), EngineConfig(), source=path)
    message = str(err.value)
    assert "ZeroDivisionError: division by zero (raised at oops.py:7 in on_bar on bar 2024-01-04" in message
    assert "Traceback (your code)" in message
    assert "quantfleet/engine" not in message


def test_syntax_and_import_errors_while_loading(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="while loading the file"):
        load_strategy(write(tmp_path, "bad.py", "import numpyy\n"))
    with pytest.raises(StrategyError, match="no strategy found"):
        load_strategy(write(tmp_path, "empty.py", "x = 1\n"))
    two = CLASS_STYLE + "\nclass Other(Buy):\n    pass\n"
    with pytest.raises(StrategyError, match="--class NAME"):
        load_strategy(write(tmp_path, "two.py", two))
    assert load_strategy(write(tmp_path, "two2.py", two), class_name="Other").name == "Other"
    with pytest.raises(StrategyError, match="no such strategy file"):
        load_strategy(tmp_path / "missing.py")
