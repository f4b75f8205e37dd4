"""Grid syntax, typing by the strategy's declared parameters, constraints, and seeded random draws."""

from __future__ import annotations

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.strategy.params import ParamSpec
from quantfleet.sweep import ParamSpace, parse_axis, parse_space


def test_ranges_include_the_stop_and_keep_ints(sma_params: dict[str, ParamSpec]) -> None:
    axis = parse_axis("fast=5:50:5", sma_params)
    assert axis.values == (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
    assert all(type(v) is int for v in axis.values)
    assert parse_axis("fast=5:12:5", sma_params).values == (5, 10)  # the stop is included only when a step lands on it
    assert parse_axis("fast=7:7:1", sma_params).values == (7,)


def test_float_ranges_are_rounded_to_the_step(sma_params: dict[str, ParamSpec]) -> None:
    axis = parse_axis("weight=0.1:1.0:0.1", sma_params)
    assert axis.values == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert parse_axis("weight=0:1:0.25", sma_params).values == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert all(type(v) is float for v in parse_axis("weight=1:3:1", sma_params).values)  # a float parameter


def test_lists_are_typed_by_the_declared_parameter(sma_params: dict[str, ParamSpec]) -> None:
    assert parse_axis("fast=5, 10,20", sma_params).values == (5, 10, 20)
    assert parse_axis("weight=1,0.5", sma_params).values == (1.0, 0.5)
    assert all(type(v) is float for v in parse_axis("weight=1,2", sma_params).values)


@pytest.mark.parametrize(
    ("item", "fix"),
    [
        ("fast", "write NAME=START:STOP:STEP or NAME=a,b,c"),
        ("fast=", "write NAME=START:STOP:STEP or NAME=a,b,c"),
        ("fats=1:5:1", "the strategy has no parameter 'fats'; it takes: fast: int = 10, slow: int = 30"),
        ("fast=1:5", "a range is START:STOP:STEP (three numbers)"),
        ("fast=1:x:1", "STOP 'x' is not a number"),
        ("fast=1:5:0", "STEP must be positive"),
        ("fast=9:5:1", "STOP is below START"),
        ("fast=1:5:0.5", "fast is an int; give integer START:STOP:STEP"),
        ("fast=5,ten", "parameter fast must be int"),
        ("fast=5,,6", "an empty value in the list"),
        ("fast=5,5", "a value is listed twice"),
        ("fast=1:100000000:1", "values on one axis; use a larger STEP"),
    ],
)
def test_bad_grid_items_name_the_fix(item: str, fix: str, sma_params: dict[str, ParamSpec]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_axis(item, sma_params)
    assert fix in str(info.value)
    assert item in str(info.value)


def test_space_rejects_duplicates_and_empty_grids(sma_params: dict[str, ParamSpec]) -> None:
    with pytest.raises(ConfigError, match="is given twice"):
        parse_space(["fast=1:3:1", "fast=4,5"], [], sma_params)
    with pytest.raises(ConfigError, match="nothing to sweep: add --grid"):
        parse_space([], [], sma_params)


def test_grid_respects_constraints_in_a_fixed_order(sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=5:30:5", "slow=10:40:10"], ["fast < slow", "slow - fast >= 10"], sma_params)
    combos = list(space.grid())
    assert space.size == 24
    assert space.count() == len(combos) == 12
    assert combos[:3] == [{"fast": 5, "slow": 20}, {"fast": 5, "slow": 30}, {"fast": 5, "slow": 40}]
    assert all(c["fast"] < c["slow"] and c["slow"] - c["fast"] >= 10 for c in combos)
    assert len({tuple(c.values()) for c in combos}) == len(combos)


def test_impossible_constraints_say_so(sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=5:10:5", "slow=1:3:1"], ["fast < slow"], sma_params)
    assert space.count() == 0
    with pytest.raises(ConfigError, match="no combination of the grid satisfies --where"):
        space.sample(3, seed=0)


def test_random_draws_are_seeded_distinct_and_allowed(sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=2:60:1", "slow=10:200:5"], ["fast < slow"], sma_params)
    a = space.sample(50, seed=1)
    assert a == space.sample(50, seed=1)
    assert a != space.sample(50, seed=2)
    assert len({tuple(c.values()) for c in a}) == 50
    assert all(space.allows(c) for c in a)
    assert space.sample(10_000, seed=1) == space.sample(10_000, seed=1)
    assert len(space.sample(10_000, seed=1)) == space.count()  # asking for more than there is gives them all


def test_random_draws_from_a_huge_space_reject_and_redraw(sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=1:1000:1", "slow=1:1000:1", "weight=0.01:1:0.01"], ["fast * 2 < slow"], sma_params)
    assert space.size == 100_000_000
    draws = space.sample(200, seed=7)
    assert draws == space.sample(200, seed=7)
    assert len(draws) == 200
    assert all(c["fast"] * 2 < c["slow"] for c in draws)
    with pytest.raises(ConfigError, match="use larger steps, or sample it with --random N or --optimize N"):
        next(space.grid())


def test_to_json_records_the_space(sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=5:20:5", "weight=0.5,1"], ["fast < 20"], sma_params)
    assert space.to_json() == {
        "axes": [{"name": "fast", "start": 5, "stop": 20, "step": 5}, {"name": "weight", "values": [0.5, 1.0]}],
        "constraints": ["fast < 20"],
    }
    assert isinstance(space, ParamSpace)
