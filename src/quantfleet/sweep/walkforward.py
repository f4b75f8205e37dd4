"""Walk-forward analysis: optimize in-sample, trade the winner out-of-sample, window after window.

Windows are laid on calendar time from the first tradable bar: window ``k``
trains on ``[train_start_k, train_end_k)`` and tests on ``[train_end_k,
train_end_k + test)``; the next window moves forward by ``test``, so the test
windows tile the range without overlap. Rolling windows keep the training
length; anchored ones keep the first start and grow. The last test window is
cut at the last bar.

The winner of a window is chosen from its training bars alone: the
evaluator never shows the strategy a bar past the window it evaluates. Every
run, in-sample and out-of-sample, warms its indicators up on up to one
training window's worth of bars before its window, untraded: those are the
past, not the future, and a test run's indicators are as warm as the
training runs' were. Each test run
starts flat with the starting cash; the stitched out-of-sample equity chains
the test runs' returns, each starting where the previous ended, so the curve
is one account that is re-optimized at every window boundary (positions
are not carried across a boundary).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantfleet.analytics.metrics import performance
from quantfleet.analytics.relative import RELATIVE_KEYS
from quantfleet.core.errors import ConfigError
from quantfleet.sweep.evaluator import Metrics
from quantfleet.sweep.pool import LocalPool
from quantfleet.sweep.search import Leaderboard, Search, run_search

__all__ = ["WalkForward", "Window", "WindowResult", "make_windows", "parse_period", "run_walkforward"]

_PERIOD = re.compile(r"\s*(\d+)\s*(y|m|w|d)\s*", re.IGNORECASE)
ProgressFn = Callable[[int, int], None]


def parse_period(text: str, *, option: str = "--train") -> pd.DateOffset:
    """Return a calendar period written as ``2y``, ``6m``, ``4w`` or ``90d``."""
    m = _PERIOD.fullmatch(text or "")
    if not m or int(m[1]) <= 0:
        raise ConfigError(
            f"{option} {text!r}: write a positive length in years, months, weeks or days: 2y, 6m, 4w, 90d"
        )
    n, unit = int(m[1]), m[2].lower()
    if unit == "y":
        return pd.DateOffset(years=n)
    if unit == "m":
        return pd.DateOffset(months=n)
    return pd.DateOffset(weeks=n) if unit == "w" else pd.DateOffset(days=n)


@dataclass(frozen=True)
class Window:
    """One window's bounds, UTC microseconds, half-open: train ``[train_start, train_end)``, test after it."""

    index: int
    train_start: int
    train_end: int
    test_end: int

    @property
    def test_start(self) -> int:
        """Return the first instant of the test window (the end of the training window)."""
        return self.train_end

    def to_json(self) -> dict[str, Any]:
        """Return the window's bounds as ISO times."""
        iso = [str(pd.Timestamp(t, unit="us", tz="UTC")) for t in (self.train_start, self.train_end, self.test_end)]
        return {
            "index": self.index,
            "train_start": iso[0],
            "train_end": iso[1],
            "test_start": iso[1],
            "test_end": iso[2],
        }


def make_windows(ts: np.ndarray, *, train: pd.DateOffset, test: pd.DateOffset, anchored: bool = False) -> list[Window]:
    """Return the walk-forward windows over bars at ``ts`` (each training and test window holds bars)."""
    if len(ts) < 2:
        raise ConfigError("walk-forward needs more bars; widen --start/--end")
    t0 = pd.Timestamp(int(ts[0]), unit="us")
    past_end = int(ts[-1]) + 1
    windows: list[Window] = []
    k = 0
    while True:
        # Offsets from the first bar (not from the previous window), so month ends never drift.
        train_start = t0 if anchored else t0 + test * k
        train_end = t0 + train + test * k
        test_end = train_end + test
        lo, mid = (int(x.value // 1000) for x in (train_start, train_end))
        if mid >= past_end:
            break
        hi = min(int(test_end.value // 1000), past_end)
        n_train = int(np.searchsorted(ts, mid) - np.searchsorted(ts, lo))
        n_test = int(np.searchsorted(ts, hi) - np.searchsorted(ts, mid))
        if n_train >= 2 and n_test >= 1:
            windows.append(Window(len(windows), lo, mid, hi))
        k += 1
    if not windows:
        first, last = (pd.Timestamp(int(t), unit="us").date() for t in (ts[0], ts[-1]))
        raise ConfigError(
            f"the bars from {first} to {last} do not fit one training window plus one test window; "
            "shorten --train or --test, or widen --start/--end"
        )
    return windows


@dataclass(frozen=True)
class WindowResult:
    """A window's winner, its in-sample and out-of-sample metrics."""

    window: Window
    params: dict[str, Any]
    in_sample: Metrics
    out_of_sample: Metrics
    combos: int


@dataclass(frozen=True)
class WalkForward:
    """The windows' results and the stitched out-of-sample equity."""

    windows: tuple[WindowResult, ...]
    ts: np.ndarray
    equity: np.ndarray
    out_of_sample: dict[str, Any]
    anchored: bool
    train: str
    test: str
    boards: tuple[Leaderboard, ...]  # each window's in-sample leaderboard

    def to_json(self) -> dict[str, Any]:
        """Return the windows and the stitched metrics for sweep.json."""
        return {
            "train": self.train,
            "test": self.test,
            "anchored": self.anchored,
            "windows": [
                {
                    **w.window.to_json(),
                    "params": w.params,
                    "combinations": w.combos,
                    "in_sample": w.in_sample,
                    "out_of_sample": w.out_of_sample,
                }
                for w in self.windows
            ],
            "out_of_sample": self.out_of_sample,
        }


def stitch(segments: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Return one equity curve chaining the segments' returns (each starts where the previous one ended)."""
    ts_parts, eq_parts = [], []
    level = None
    for ts, equity in segments:
        e = np.asarray(equity, dtype=np.float64)
        if len(e) == 0:
            continue
        scale = 1.0 if level is None or not e[0] > 0 else level / e[0]
        scaled = e * scale
        ts_parts.append(np.asarray(ts, dtype=np.int64))
        eq_parts.append(scaled)
        level = scaled[-1]
    if not ts_parts:
        return np.empty(0, np.int64), np.empty(0)
    ts_all = np.concatenate(ts_parts)
    if np.any(np.diff(ts_all) <= 0):
        raise AssertionError("out-of-sample segments overlap")  # pragma: no cover - windows tile the range
    return ts_all, np.concatenate(eq_parts)


def run_walkforward(
    search: Search,
    pool: LocalPool,
    *,
    train: str,
    test: str,
    anchored: bool = False,
    progress: ProgressFn | None = None,
) -> WalkForward:
    """Run the walk-forward of ``search`` with ``train``/``test`` periods (e.g. ``2y``, ``6m``)."""
    evaluator = pool.evaluator
    windows = make_windows(
        evaluator.ts,
        train=parse_period(train, option="--train"),
        test=parse_period(test, option="--test"),
        anchored=anchored,
    )
    ts = evaluator.ts
    # Every run warms its indicators up on one training window's worth of bars before it (those that exist):
    # the test run's indicators are then as warm as the training runs' were, and see only the past.
    lookback = max(int(np.searchsorted(ts, w.train_end) - np.searchsorted(ts, w.train_start)) for w in windows)
    results: list[WindowResult] = []
    segments: list[tuple[np.ndarray, np.ndarray]] = []
    boards: list[Leaderboard] = []
    done_before = 0
    for w in windows:

        def tick(done: int, total: int, base: int = done_before, left: int = len(windows) - w.index) -> None:
            if progress is not None:  # the windows left are assumed to hold as many combinations as this one
                progress(base + done, base + total * left)

        board = run_search(search, pool, start=w.train_start, end=w.train_end, lookback=lookback, progress=tick)
        boards.append(board)
        done_before += len(board)
        best = board.best
        oos = evaluator.evaluate(best.params, start=w.test_start, end=w.test_end, equity=True, lookback=lookback)
        assert oos.ts is not None
        assert oos.equity is not None
        segments.append((oos.ts, oos.equity))
        results.append(WindowResult(w, dict(best.params), dict(best.metrics), dict(oos.metrics), len(board)))
    ts, equity = stitch(segments)
    perf = performance(equity, ts, periods_per_year=evaluator.periods_per_year)
    stitched = {
        k: (float(v) if v is not None and math.isfinite(v) else None)
        for k, v in perf.values.items()
        if k not in RELATIVE_KEYS and (v is None or (isinstance(v, int | float) and not isinstance(v, bool)))
    }
    return WalkForward(tuple(results), ts, equity, stitched, anchored, train, test, tuple(boards))
