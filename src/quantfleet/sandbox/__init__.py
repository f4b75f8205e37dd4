"""Execution: run one job's user code (the isolated child process arrives with the sandbox issue)."""

from quantfleet.sandbox.runner import BacktestSpec, RunOutcome, run_spec

__all__ = ["BacktestSpec", "RunOutcome", "run_spec"]
