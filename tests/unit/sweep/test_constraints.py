"""Constraints are parsed with ast and interpreted from a whitelist: never eval'd."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantfleet.core.errors import ConfigError
from quantfleet.sweep import parse_constraint

NAMES = ("fast", "slow", "weight")


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        ("fast < slow", {"fast": 5, "slow": 20}, True),
        ("fast < slow", {"fast": 20, "slow": 20}, False),
        ("5 <= fast < slow <= 100", {"fast": 5, "slow": 100}, True),
        ("5 <= fast < slow <= 100", {"fast": 4, "slow": 100}, False),
        ("slow - fast >= 10 and not weight > 1", {"fast": 5, "slow": 15, "weight": 1.0}, True),
        ("slow % fast == 0 or fast * 2 > slow", {"fast": 7, "slow": 20}, False),
        ("(slow / fast) >= 2.5", {"fast": 4, "slow": 10}, True),
        ("slow // fast == 2", {"fast": 4, "slow": 11}, True),
        ("-fast < -3", {"fast": 4}, True),
        ("slow / fast > 1", {"fast": 0, "slow": 3}, False),  # division by zero rules the combination out
        ("weight == True", {"weight": 1}, True),
    ],
)
def test_constraints_evaluate(text: str, params: dict[str, float], expected: bool) -> None:
    assert parse_constraint(text, NAMES)(params) is expected


def test_constraint_records_the_names_it_uses() -> None:
    assert parse_constraint("fast < slow", NAMES).names == {"fast", "slow"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("__import__('os').system('true')", "a function call"),
        ("fast.__class__ == 1", "attribute access ('.__class__')"),
        ("open('x')", "a function call"),
        ("fast[0] < 1", "indexing"),
        ("'a' < fast", "the constant 'a'"),
        ("(lambda: 1)() == 1", "a function call"),
        ("fast ** 2 < slow", "the operator Pow"),
        ("fast in [1, 2]", "the comparison In"),
        ("fast < slow if fast else slow", "'IfExp'"),
        ("(fast := 3) < slow", "'NamedExpr'"),
        ("fast < 1e999", "the constant inf"),
    ],
)
def test_constraints_outside_the_whitelist_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_constraint(text, NAMES)
    message = str(info.value)
    assert problem in message
    assert "is not allowed; use only parameter names, numbers" in message
    assert "--where 'fast < slow'" in message


def test_unknown_names_and_bad_syntax_name_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"'fats' is not a parameter of this sweep; name one of: fast, slow, weight"):
        parse_constraint("fats < slow", NAMES)
    with pytest.raises(ConfigError, match="is not a valid expression"):
        parse_constraint("fast <", NAMES)
    with pytest.raises(ConfigError, match="the constraint is empty"):
        parse_constraint("  ", NAMES)
    with pytest.raises(ConfigError, match="longer than 500 characters"):
        parse_constraint("fast < slow and " * 40 + "fast < slow", NAMES)
    with pytest.raises(ConfigError, match="'os' is not a parameter"):
        parse_constraint("os", NAMES)


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 9))
def test_interpretation_agrees_with_python_arithmetic(fast: int, slow: int, k: int) -> None:
    expressions = {
        "fast < slow": fast < slow,
        "fast * 2 + 1 <= slow - 3": fast * 2 + 1 <= slow - 3,
        "slow % 3 == fast % 2 or not fast != slow": slow % 3 == fast % 2 or fast == slow,
        "0 < fast < slow < 40": 0 < fast < slow < 40,
    }
    for text, want in expressions.items():
        assert parse_constraint(text, NAMES)({"fast": fast, "slow": slow, "weight": k}) is want
