"""Entry and exit signals as positions: what a ``signals()`` function may return.

A ``signals()`` function returns either a target position per bar (1 long,
0 flat, -1 short, fractions allowed; NaN is flat), or a pair ``(entries,
exits)`` of boolean arrays, which :func:`as_positions` turns into positions
with :func:`hold`. Both engines read the output through :func:`as_positions`,
so both see the same positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from quantfleet.core.errors import UserError

__all__ = ["as_positions", "hold", "hold_nb"]


@njit(cache=True, nogil=True)
def hold_nb(entries: np.ndarray, exits: np.ndarray, out: np.ndarray) -> None:
    """Write 1.0 from each entry bar until the next exit bar (flat from then), 0.0 before the first entry.

    A bar that is both an entry and an exit keeps the position it had.
    """
    held = 0.0
    for i in range(len(entries)):
        enter, leave = entries[i], exits[i]
        if enter and not leave:
            held = 1.0
        elif leave and not enter:
            held = 0.0
        out[i] = held


def hold(entries: Any, exits: Any) -> np.ndarray:
    """Return the long position (1.0 or 0.0) per bar that ``entries`` open and ``exits`` close."""
    enter = np.asarray(entries, dtype=np.bool_)
    leave = np.asarray(exits, dtype=np.bool_)
    if enter.shape != leave.shape or enter.ndim != 1:
        raise UserError(f"entries {enter.shape} and exits {leave.shape} must be 1-D arrays of the same length")
    out = np.empty(len(enter))
    hold_nb(np.ascontiguousarray(enter), np.ascontiguousarray(leave), out)
    return out


def as_positions(output: Any) -> np.ndarray:
    """Return a ``signals()`` output as float positions: a pair (entries, exits) is held, NaN is flat."""
    if isinstance(output, tuple):
        if len(output) != 2:
            raise UserError(
                f"signals() returned a tuple of {len(output)}; return positions, or a pair (entries, exits)"
            )
        output = hold(*output)
    positions = np.asarray(output, dtype=np.float64)
    missing = np.isnan(positions)
    return np.where(missing, 0.0, positions) if missing.any() else positions
