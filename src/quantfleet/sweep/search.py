"""Search a parameter space: the whole grid, a seeded random draw, or Optuna's TPE sampler; rank the results.

Determinism: combinations are numbered in a fixed order (grid order, draw
order, or the optimizer's ask order) and evaluated independently, so their
metrics do not depend on how many workers ran them. The optimizer asks for
trials in batches of a fixed size (not the worker count) and learns from
them in ask order, so a seeded optimization proposes the same trials with
1 worker or 16. The leaderboard sorts by the metric (best first, undefined
last) and breaks ties by the combination's number.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from quantfleet.core.errors import ConfigError
from quantfleet.sweep.evaluator import Metrics
from quantfleet.sweep.pool import Combo, LocalPool
from quantfleet.sweep.space import Axis, ParamSpace

__all__ = ["Entry", "Leaderboard", "Method", "Search", "check_metric", "run_search"]

ProgressFn = Callable[[int, int], None]


class Method(StrEnum):
    """How a space is searched."""

    GRID = "grid"
    RANDOM = "random"
    OPTIMIZE = "optimize"


@dataclass(frozen=True, kw_only=True)
class Search:
    """A search: the space, the metric to rank by, the method and its budget."""

    space: ParamSpace
    metric: str = "sharpe"
    method: Method = Method.GRID
    trials: int | None = None  # random: draws; optimize: trials
    seed: int = 0
    minimize: bool = False
    batch: int = 8  # optimize: trials asked before learning from them (fixed, so results ignore the worker count)

    def __post_init__(self) -> None:
        if self.method is not Method.GRID and not (self.trials and self.trials > 0):
            raise ConfigError(f"--{self.method.value} N: give a positive number of trials, e.g. --{self.method} 100")
        if self.batch < 1:
            raise ConfigError("the optimizer's batch must be at least 1")

    def to_json(self) -> dict[str, Any]:
        """Return the search for sweep.json."""
        return {
            **self.space.to_json(),
            "metric": self.metric,
            "direction": "minimize" if self.minimize else "maximize",
            "method": self.method.value,
            "trials": self.trials,
            "seed": self.seed,
            "batch": self.batch if self.method is Method.OPTIMIZE else None,
        }


def check_metric(metric: str, metrics: Mapping[str, Any]) -> None:
    """Raise ConfigError unless ``metric`` is one of ``metrics``' keys (listing the valid ones)."""
    if metric not in metrics:
        valid = ", ".join(sorted(metrics))
        raise ConfigError(f"--metric {metric!r} is not a metric of a run; choose one of: {valid}")


@dataclass(frozen=True)
class Entry:
    """One evaluated combination."""

    index: int
    params: dict[str, Any]
    metrics: Metrics


@dataclass(frozen=True)
class Leaderboard:
    """Evaluated combinations, best first."""

    names: tuple[str, ...]
    metric: str
    minimize: bool
    entries: tuple[Entry, ...] = field(default=())

    @classmethod
    def build(
        cls, names: tuple[str, ...], metric: str, results: Mapping[int, Entry], *, minimize: bool = False
    ) -> Leaderboard:
        """Return the leaderboard of ``results`` sorted by ``metric`` (undefined last), ties by index."""
        sign = 1.0 if minimize else -1.0

        def key(e: Entry) -> tuple[bool, float, int]:
            value = e.metrics.get(metric)
            undefined = value is None or not math.isfinite(value)
            return (undefined, 0.0 if undefined else sign * float(value), e.index)  # type: ignore[arg-type]

        return cls(names, metric, minimize, tuple(sorted(results.values(), key=key)))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def best(self) -> Entry:
        """Return the best combination; raise if none has a defined metric."""
        if not self.entries or self.entries[0].metrics.get(self.metric) is None:
            raise ConfigError(
                f"no combination has a defined {self.metric} (e.g. no trades, or too few bars); "
                "widen the date range or choose another --metric"
            )
        return self.entries[0]

    def metric_names(self) -> list[str]:
        """Return every metric that some entry has, sorted."""
        return sorted({k for e in self.entries for k in e.metrics})

    def to_arrow(self) -> pa.Table:
        """Return one row per combination: rank, combo (its number), the parameters, then every metric."""
        metric_cols = self.metric_names()
        columns: dict[str, pa.Array] = {
            "rank": pa.array(range(1, len(self.entries) + 1), pa.int64()),
            "combo": pa.array([e.index for e in self.entries], pa.int64()),
        }
        for name in self.names:
            column = name if name not in metric_cols and name not in columns else f"param_{name}"
            columns[column] = pa.array([e.params[name] for e in self.entries])
        for key in metric_cols:
            columns[key] = pa.array([e.metrics.get(key) for e in self.entries], pa.float64())
        return pa.table(columns)


def _optuna_distribution(axis: Axis) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if axis.step is None:
        return CategoricalDistribution(list(axis.values))
    if isinstance(axis.step, int):
        return IntDistribution(int(axis.values[0]), int(axis.values[-1]), step=axis.step)
    return FloatDistribution(float(axis.values[0]), float(axis.values[-1]), step=axis.step)


def _snap(axis: Axis, value: Any) -> Any:
    """Return the axis value the optimizer meant (floats it computed may differ in the last bits)."""
    if axis.step is None or isinstance(axis.step, int):
        return value
    i = round((float(value) - float(axis.values[0])) / float(axis.step))
    return axis.values[min(max(i, 0), len(axis.values) - 1)]


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per trial
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


class _Runner:
    """Evaluate combinations on a pool, check the metric on the first result, count progress."""

    def __init__(
        self,
        search: Search,
        pool: LocalPool,
        window: tuple[int | None, int | None, int],
        progress: ProgressFn | None,
    ) -> None:
        self.search, self.pool, self._progress = search, pool, progress
        self.start, self.end, self.lookback = window
        self.results: dict[int, Entry] = {}
        self.done = 0
        self.total = 0
        self._checked = False

    def tick(self, n: int) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, self.total)

    def run(self, combos: list[Combo] | Iterator[Combo]) -> list[Entry]:
        it = iter(combos)
        out: list[Entry] = []
        if not self._checked:
            # Evaluate one combination here first: a bad --metric or a broken strategy fails before any pool starts.
            first = next(it, None)
            if first is None:
                return out
            metrics = self.pool.evaluator.evaluate_chunk(
                [first[1]], start=self.start, end=self.end, lookback=self.lookback
            )[0]
            check_metric(self.search.metric, metrics)
            self._checked = True
            out.append(self._keep(first, metrics))
            self.tick(1)
        results = self.pool.evaluate(it, start=self.start, end=self.end, lookback=self.lookback, progress=self.tick)
        for combo, metrics in results:
            out.append(self._keep(combo, metrics))
        return sorted(out, key=lambda e: e.index)

    def _keep(self, combo: Combo, metrics: Metrics) -> Entry:
        entry = Entry(combo[0], combo[1], metrics)
        self.results[combo[0]] = entry
        return entry


def run_search(
    search: Search,
    pool: LocalPool,
    *,
    start: int | None = None,
    end: int | None = None,
    lookback: int = 0,
    progress: ProgressFn | None = None,
) -> Leaderboard:
    """Evaluate the search's combinations over ``[start, end)`` on ``pool`` and return the leaderboard.

    Each run sees at least ``lookback`` bars before ``start`` (untraded), as well as the engine's warm-up.
    """
    runner = _Runner(search, pool, (start, end, lookback), progress)
    space = search.space
    if search.method is Method.GRID:
        runner.total = space.count()
        if runner.total == 0:
            raise ConfigError(space._empty_message())
        runner.run(enumerate(space.grid()))
    elif search.method is Method.RANDOM:
        draws = space.sample(search.trials or 0, seed=search.seed)
        runner.total = len(draws)
        runner.run(list(enumerate(draws)))
    else:
        _optimize(search, runner)
    return Leaderboard.build(space.names, search.metric, runner.results, minimize=search.minimize)


def _optimize(search: Search, runner: _Runner) -> None:
    import optuna
    from optuna.trial import TrialState

    space = search.space
    axes = {a.name: a for a in space.axes}
    distributions = {a.name: _optuna_distribution(a) for a in space.axes}
    budget = search.trials or 0
    runner.total = budget
    by_key: dict[tuple[Any, ...], int] = {}
    with _quiet_optuna():
        sampler = optuna.samplers.TPESampler(seed=search.seed)
        study = optuna.create_study(direction="minimize" if search.minimize else "maximize", sampler=sampler)
        asked = rejected = 0
        while asked < budget:
            batch: list[tuple[Any, Combo]] = []  # (trial, combination)
            repeats: list[tuple[Any, int]] = []  # trials that proposed a combination already evaluated
            while len(batch) + len(repeats) < search.batch and asked < budget:
                trial = study.ask(distributions)
                params = {name: _snap(axes[name], trial.params[name]) for name in space.names}
                if not space.allows(params):
                    study.tell(trial, state=TrialState.FAIL)
                    rejected += 1
                    if rejected > 100 * budget + 1_000:
                        raise ConfigError(space._empty_message().replace("no combination", "almost no combination"))
                    continue
                asked += 1
                key = tuple(params[n] for n in space.names)
                if key in by_key:  # TPE may propose a combination again: learn from it without re-running it
                    repeats.append((trial, by_key[key]))
                    continue
                index = len(by_key)
                by_key[key] = index
                batch.append((trial, (index, params)))
            runner.run([c for _, c in batch])
            for trial, (index, _) in batch:
                _tell(study, trial, runner.results[index].metrics.get(search.metric))
            for trial, index in repeats:
                runner.tick(1)
                _tell(study, trial, runner.results[index].metrics.get(search.metric))


def _tell(study: Any, trial: Any, value: float | None) -> None:
    from optuna.trial import TrialState

    if value is None or not math.isfinite(value):
        study.tell(trial, state=TrialState.FAIL)  # an undefined metric teaches the sampler nothing
    else:
        study.tell(trial, value)
