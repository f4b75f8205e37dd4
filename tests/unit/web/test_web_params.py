"""Declared parameters are read from the syntax tree (never by running the file); the form's checks name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet.web.params import Declared, FormError, check_grid, coerce_value, declared_parameters

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_the_class_example_declares_its_parameters() -> None:
    found = declared_parameters((EXAMPLES / "sma_crossover.py").read_text())
    assert found == [Declared("fast", "int", 10), Declared("slow", "int", 30), Declared("weight", "float", 1.0)]


def test_function_styles_skip_their_leading_arguments() -> None:
    source = "def signals(close, fast=10, slow: float = 30, name='x', *, flag=True):\n    return close\n"
    assert declared_parameters(source) == [
        Declared("fast", "int", 10),
        Declared("slow", "float", 30),
        Declared("name", "str", "x"),
        Declared("flag", "bool", True),
    ]
    assert declared_parameters("def run(ctx, n: int = 3):\n    pass\n") == [Declared("n", "int", 3)]


def test_the_file_is_never_run() -> None:
    source = "raise SystemExit('ran')\nimport os\nos.remove('/')\ndef run(ctx, n=1):\n    pass\n"
    assert declared_parameters(source) == [Declared("n", "int", 1)]


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(FormError, match="line 2"):
        declared_parameters("x = 1\ndef broken(:\n")


def test_values_are_coerced_to_the_declared_type() -> None:
    fast = Declared("fast", "int", 10)
    assert coerce_value(fast, "5") == 5
    assert coerce_value(fast, "") == 10
    assert coerce_value(Declared("w", "float", 1.0), "0.5") == 0.5
    assert coerce_value(Declared("on", "bool", False), "yes") is True
    with pytest.raises(FormError, match="fast must be int"):
        coerce_value(fast, "5.5")
    with pytest.raises(FormError, match="true or false"):
        coerce_value(Declared("on", "bool", False), "maybe")


def test_grids_are_checked_and_counted() -> None:
    fast = Declared("fast", "int", 10)
    assert check_grid(fast, " 5:30:5 ") == ("fast=5:30:5", 6)
    assert check_grid(fast, "3, 5,8") == ("fast=3,5,8", 3)
    assert check_grid(fast, "") is None
    with pytest.raises(FormError, match="step must be positive"):
        check_grid(fast, "5:30:0")
    with pytest.raises(FormError, match="below the start"):
        check_grid(fast, "30:5:5")
    with pytest.raises(FormError, match="must be int"):
        check_grid(fast, "1:2:0.5")
    with pytest.raises(FormError, match="a,b,c"):
        check_grid(Declared("name", "str", "x"), "1:3")
