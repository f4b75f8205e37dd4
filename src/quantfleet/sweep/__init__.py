"""Parameter sweeps and walk-forward analysis: search a strategy's parameter space, rank, report.

A sweep varies the parameters of one backtest over a space (a grid of
ranges and lists, a seeded random draw, or Optuna's TPE optimizer) under
constraints such as ``fast < slow``, evaluates each combination in-process
through an :class:`Evaluator` (no run folder per combination), and ranks them
by a metric. A walk-forward repeats the search window by window and trades
each window's winner on the bars that follow it.
"""

from quantfleet.sweep.constraints import Constraint, parse_constraint
from quantfleet.sweep.evaluator import EvalResult, Evaluator, EvaluatorFactory, EventEvaluator, EventTarget, StoreRef
from quantfleet.sweep.pool import LocalPool
from quantfleet.sweep.search import Entry, Leaderboard, Method, Search, run_search
from quantfleet.sweep.service import SweepJob, SweepOutcome, WalkForwardSpec, run_sweep, sweep_dir_name
from quantfleet.sweep.space import Axis, ParamSpace, parse_axis, parse_space
from quantfleet.sweep.walkforward import WalkForward, Window, make_windows, parse_period, run_walkforward

__all__ = [
    "Axis",
    "Constraint",
    "Entry",
    "EvalResult",
    "Evaluator",
    "EvaluatorFactory",
    "EventEvaluator",
    "EventTarget",
    "Leaderboard",
    "LocalPool",
    "Method",
    "ParamSpace",
    "Search",
    "StoreRef",
    "SweepJob",
    "SweepOutcome",
    "WalkForward",
    "WalkForwardSpec",
    "Window",
    "make_windows",
    "parse_axis",
    "parse_constraint",
    "parse_period",
    "parse_space",
    "run_search",
    "run_sweep",
    "run_walkforward",
    "sweep_dir_name",
]
