"""Read-only values that end at the current bar: the only way a strategy sees data.

An indicator is computed once over the whole series (vectorized), then shown
to the strategy bar by bar through a :class:`Line`: ``line[-1]`` is the value
at the current bar, ``line[-2]`` the one before, and any index past the
current bar raises ``IndexError``. The engine advances one shared cursor, so
the per-bar path allocates nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["Cursor", "Line", "readonly"]

Cursor = list[int]
"""A one-element list holding the current bar's index, shared by every line of a run."""


def readonly(values: np.ndarray) -> np.ndarray:
    """Return ``values`` as a read-only array (views taken from it are read-only too)."""
    out = np.array(values, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


class Line:
    """A series seen up to the current bar."""

    __slots__ = ("_array", "_cursor", "_values", "name")

    def __init__(self, values: np.ndarray, cursor: Cursor, name: str = "") -> None:
        self._array = readonly(values)
        # A list of Python floats: indexing it is the fastest read CPython has.
        self._values: list[float] = self._array.tolist()
        self._cursor = cursor
        self.name = name

    def __getitem__(self, k: int) -> float:
        n = self._cursor[0] + 1
        if k < 0:
            k += n
            if k < 0:
                raise IndexError(f"{self.name or 'line'}[{k - n}]: only {n} bar(s) so far")
        elif k >= n:
            raise IndexError(f"{self.name or 'line'}[{k}] is in the future: only {n} bar(s) so far")
        return self._values[k]

    def __len__(self) -> int:
        return self._cursor[0] + 1

    def __iter__(self) -> Iterator[float]:
        return iter(self._values[: self._cursor[0] + 1])

    def __float__(self) -> float:
        return self._values[self._cursor[0]]

    def last(self, n: int) -> np.ndarray:
        """Return the last ``n`` values up to the current bar as a read-only NumPy view."""
        i = self._cursor[0] + 1
        return self._array[max(0, i - n) : i]

    def __repr__(self) -> str:
        i = self._cursor[0]
        return f"Line({self.name!r}, bar {i}, value {self._values[i] if 0 <= i < len(self._values) else None})"
