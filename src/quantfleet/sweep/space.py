"""A parameter space: axes (ranges and lists) and constraints, walked as a grid or sampled at random.

Grid syntax, as the command line takes it:

- ``NAME=START:STOP:STEP``: a range whose stop is included when the steps land
  on it (``fast=5:50:5`` is 5, 10, ..., 50). Integers stay integers; floats
  are allowed (``weight=0.1:1.0:0.1``) and rounded to the step's decimals, so
  0.30000000000000004 never appears.
- ``NAME=a,b,c``: a list; values are typed by the strategy's declared type of
  ``NAME`` (``--grid fast=5,10,20`` gives ints to an ``int`` parameter).

Combinations are dicts of the swept parameters only; the strategy's defaults
fill the rest. Their order is deterministic (the grid in axis order, or the
seeded draw order), and a combination's index in that order breaks ties in
the leaderboard.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from quantfleet.core.errors import ConfigError
from quantfleet.strategy.params import ParameterError, ParamSpec, coerce
from quantfleet.sweep.constraints import Constraint, parse_constraint, satisfies

__all__ = ["Axis", "ParamSpace", "parse_axis", "parse_space"]

MAX_COMBINATIONS = 1_000_000
"""A grid larger than this (before constraints) is refused: sample it with --random or --optimize."""
_ENUMERATE_BELOW = 200_000  # random draws from a smaller space enumerate it; a larger one rejects and redraws


@dataclass(frozen=True)
class Axis:
    """One swept parameter and its values, in order; ``step`` is set for a range."""

    name: str
    values: tuple[Any, ...]
    step: int | float | None = None

    @property
    def is_range(self) -> bool:
        """Return whether the axis is an evenly spaced numeric range."""
        return self.step is not None

    def to_json(self) -> dict[str, Any]:
        """Return the axis for sweep.json."""
        if self.step is not None:
            return {"name": self.name, "start": self.values[0], "stop": self.values[-1], "step": self.step}
        return {"name": self.name, "values": list(self.values)}


def _number(text: str, what: str, item: str) -> int | float:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        value = float(t)
    except ValueError:
        raise ConfigError(f"--grid {item!r}: {what} {t!r} is not a number; write e.g. --grid fast=5:50:5") from None
    if not math.isfinite(value):
        raise ConfigError(f"--grid {item!r}: {what} must be a finite number")
    return value


def _decimals(x: int | float) -> int:
    try:
        exponent = Decimal(repr(x)).normalize().as_tuple().exponent
    except InvalidOperation:  # pragma: no cover - finite numbers always convert
        return 12
    return max(0, -exponent) if isinstance(exponent, int) else 12


def _range(item: str, spec: ParamSpec, start_t: str, stop_t: str, step_t: str) -> Axis:
    start, stop, step = (_number(t, w, item) for t, w in ((start_t, "START"), (stop_t, "STOP"), (step_t, "STEP")))
    if not step > 0:
        raise ConfigError(f"--grid {item!r}: STEP must be positive; write START:STOP:STEP with START <= STOP")
    if stop < start:
        raise ConfigError(f"--grid {item!r}: STOP is below START; write START:STOP:STEP with START <= STOP")
    if spec.type not in (int, float, object):
        raise ConfigError(
            f"--grid {item!r}: {spec.name} is a {spec.type.__name__}, not a number; list its values: {spec.name}=a,b"
        )
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise ConfigError(f"--grid {item!r}: {count:,} values on one axis; use a larger STEP")
    as_int = all(isinstance(v, int) for v in (start, stop, step)) and spec.type is not float
    if spec.type is int and not as_int:
        raise ConfigError(
            f"--grid {item!r}: {spec.name} is an int; give integer START:STOP:STEP, e.g. {spec.name}=5:50:5"
        )
    if as_int:
        values: tuple[Any, ...] = tuple(range(int(start), int(start) + count * int(step), int(step)))
        return Axis(spec.name, values, int(step))
    digits = max(_decimals(start), _decimals(step))
    values = tuple(round(float(start) + i * float(step), digits) for i in range(count))
    return Axis(spec.name, values, float(step))


def parse_axis(item: str, parameters: Mapping[str, ParamSpec]) -> Axis:
    """Return the axis written as ``NAME=START:STOP:STEP`` or ``NAME=a,b,c``, typed by the strategy."""
    name, sep, body = item.partition("=")
    name, body = name.strip(), body.strip()
    if not sep or not name or not body:
        raise ConfigError(f"--grid {item!r}: write NAME=START:STOP:STEP or NAME=a,b,c, e.g. --grid fast=5:50:5")
    if name not in parameters:
        valid = ", ".join(f"{s.name}: {s.type.__name__} = {s.default!r}" for s in parameters.values()) or "none"
        raise ConfigError(f"--grid {item!r}: the strategy has no parameter {name!r}; it takes: {valid}")
    spec = parameters[name]
    if ":" in body:
        parts = body.split(":")
        if len(parts) != 3:
            raise ConfigError(f"--grid {item!r}: a range is START:STOP:STEP (three numbers), e.g. {name}=5:50:5")
        return _range(item, spec, *parts)
    raw = [v.strip() for v in body.split(",")]
    if any(not v for v in raw):
        raise ConfigError(f"--grid {item!r}: an empty value in the list; write {name}=a,b,c")
    try:
        values = tuple(coerce(spec, v) for v in raw)
    except ParameterError as exc:
        raise ConfigError(f"--grid {item!r}: {exc}") from None
    if len(set(values)) != len(values):
        raise ConfigError(f"--grid {item!r}: a value is listed twice; list each once")
    return Axis(name, values)


@dataclass(frozen=True)
class ParamSpace:
    """Axes and the constraints every combination must satisfy."""

    axes: tuple[Axis, ...]
    constraints: tuple[Constraint, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ConfigError(f"--grid {dup}=... is given twice; give each parameter one --grid")

    @property
    def names(self) -> tuple[str, ...]:
        """Return the swept parameters' names, in axis order."""
        return tuple(a.name for a in self.axes)

    @property
    def size(self) -> int:
        """Return the number of grid points before constraints."""
        return math.prod(len(a.values) for a in self.axes)

    def _decode(self, flat: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for axis in reversed(self.axes):
            flat, i = divmod(flat, len(axis.values))
            out[axis.name] = axis.values[i]
        return {a.name: out[a.name] for a in self.axes}

    def allows(self, params: Mapping[str, Any]) -> bool:
        """Return whether ``params`` satisfy every constraint."""
        return satisfies(params, self.constraints)

    def grid(self) -> Iterator[dict[str, Any]]:
        """Yield every combination that satisfies the constraints, lazily, in axis order (last axis fastest)."""
        if self.size > MAX_COMBINATIONS:
            raise ConfigError(
                f"the grid has {self.size:,} combinations (more than {MAX_COMBINATIONS:,}); "
                "use larger steps, or sample it with --random N or --optimize N"
            )
        names = self.names
        for values in itertools.product(*(a.values for a in self.axes)):
            params = dict(zip(names, values, strict=True))
            if self.allows(params):
                yield params

    def count(self) -> int:
        """Return the number of grid combinations that satisfy the constraints."""
        if not self.constraints:
            return self.size
        return sum(1 for _ in self.grid())

    def sample(self, n: int, *, seed: int) -> list[dict[str, Any]]:
        """Return up to ``n`` distinct combinations drawn at random (seeded) among those allowed by the constraints."""
        if n <= 0:
            raise ConfigError(f"--random {n}: draw at least one combination, e.g. --random 100")
        rng = np.random.default_rng(seed)
        size = self.size
        if size <= _ENUMERATE_BELOW:
            feasible = [i for i in range(size) if self.allows(self._decode(i))]
            if not feasible:
                raise ConfigError(self._empty_message())
            chosen = rng.choice(len(feasible), size=min(n, len(feasible)), replace=False)
            return [self._decode(feasible[int(k)]) for k in chosen]
        seen: set[int] = set()
        out: list[dict[str, Any]] = []
        for _ in range(max(1_000, 100 * n)):
            flat = int(rng.integers(size))
            if flat in seen:
                continue
            seen.add(flat)
            params = self._decode(flat)
            if self.allows(params):
                out.append(params)
                if len(out) == n:
                    break
        if not out:
            raise ConfigError(self._empty_message())
        return out

    def _empty_message(self) -> str:
        where = " and ".join(f"({c})" for c in self.constraints)
        return f"no combination of the grid satisfies --where {where}; widen the grid or loosen the constraint"

    def to_json(self) -> dict[str, Any]:
        """Return the space for sweep.json."""
        return {"axes": [a.to_json() for a in self.axes], "constraints": [c.text for c in self.constraints]}


def parse_space(grid: Sequence[str], where: Sequence[str], parameters: Mapping[str, ParamSpec]) -> ParamSpace:
    """Return the space of ``--grid`` items and ``--where`` constraints over a strategy's ``parameters``."""
    if not grid:
        valid = ", ".join(parameters) or "none"
        raise ConfigError(f"nothing to sweep: add --grid NAME=START:STOP:STEP for one of the parameters ({valid})")
    axes = tuple(parse_axis(item, parameters) for item in grid)
    names = [a.name for a in axes]
    constraints = tuple(parse_constraint(text, names) for text in where)
    return ParamSpace(axes, constraints)
