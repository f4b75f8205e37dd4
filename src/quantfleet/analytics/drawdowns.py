"""Drawdowns: the underwater curve and its episodes, over an equity array.

An episode starts at a running peak, reaches its trough, and ends on the
first bar whose equity is back at or above the peak (its *recovery*); an
episode still under water at the end has no recovery. Depths are negative
fractions of the peak, as empyrical reports ``max_drawdown``. Equity at or
below zero is a depth of -1 (everything lost), never a division warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Drawdown", "drawdown_periods", "underwater", "worst_drawdowns"]


@dataclass(frozen=True, slots=True)
class Drawdown:
    """One drawdown episode, as bar indices into the equity array."""

    peak: int
    trough: int
    recovery: int | None
    depth: float

    @property
    def end(self) -> int | None:
        """Return the recovery bar, or None while still under water."""
        return self.recovery


def underwater(equity: np.ndarray) -> np.ndarray:
    """Return equity / running peak - 1 per bar: 0 at a new high, -1 once everything is lost."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) == 0:
        return np.empty(0)
    peak = np.fmax.accumulate(e)
    out = np.zeros_like(e)
    positive = peak > 0
    np.divide(e, peak, out=out, where=positive)
    out[positive] -= 1.0
    out[positive & (e <= 0)] = -1.0
    return np.where(np.isnan(e), np.nan, out)


def drawdown_periods(equity: np.ndarray) -> list[Drawdown]:
    """Return every drawdown episode in time order."""
    uw = underwater(equity)
    # A bar of unknown equity neither ends nor starts an episode: it carries the state before it.
    known = ~np.isnan(uw)
    carried = uw[np.maximum.accumulate(np.where(known, np.arange(len(uw)), 0))] if len(uw) else uw
    below = np.nan_to_num(carried, nan=0.0) < 0
    if not below.any():
        return []
    # Runs of consecutive bars under water: starts where below turns on, ends where it turns off.
    edges = np.diff(np.r_[0, below.astype(np.int8), 0])
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # first bar back at the peak (== len when never recovered)
    n = len(uw)
    last_high = np.maximum.accumulate(np.where(uw == 0, np.arange(n), 0))
    out = []
    for s, t in zip(starts.tolist(), stops.tolist(), strict=True):
        trough = s + int(np.nanargmin(uw[s:t]))
        recovery = t if t < n else None
        out.append(Drawdown(peak=int(last_high[s - 1]), trough=trough, recovery=recovery, depth=float(uw[trough])))
    return out


def worst_drawdowns(equity: np.ndarray, n: int = 5) -> list[Drawdown]:
    """Return the ``n`` deepest episodes, deepest first (ties: earliest first)."""
    periods = drawdown_periods(equity)
    return sorted(periods, key=lambda d: (d.depth, d.peak))[:n]
