"""Read-only values that end at the current bar: the only way a strategy sees data.

An indicator is computed once over the whole series (vectorized), then shown
to the strategy bar by bar through a :class:`Line`: a list that holds the
values of bars ``0..i`` while bar ``i`` is current. ``line[-1]`` is the value
at the current bar, ``line[-2]`` the one before; later values are not in it,
so no index can reach them. The engine appends one value per bar, and reading
is plain list indexing, the fastest read CPython has.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

__all__ = ["Cursor", "Line", "readonly"]

Cursor = list[int]
"""A one-element list holding the current bar's index, shared by every view of a run."""


def readonly(values: np.ndarray) -> np.ndarray:
    """Return ``values`` as a read-only float array (views taken from it are read-only too)."""
    out = np.array(values, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


def _owned_readonly(values: np.ndarray) -> np.ndarray:
    """Like :func:`readonly`, without a copy when ``values`` is a float array nothing else can write."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and values.base is None:
        values.flags.writeable = False
        return values
    return readonly(values)


class Line(list[float]):
    """An indicator seen up to the current bar (a list the strategy cannot change)."""

    __slots__ = ("_array", "_source", "name")

    def __init__(self, values: np.ndarray, name: str = "", *, shown: int = 0) -> None:
        super().__init__()
        self._array = _owned_readonly(values)
        self._source: list[float] = self._array.tolist()
        self.name = name
        list.extend(self, self._source[:shown])

    @property
    def source(self) -> list[float]:
        """Return every value; the engine feeds them in one bar at a time."""
        return self._source

    def last(self, n: int) -> np.ndarray:
        """Return the last ``n`` values up to the current bar as a read-only NumPy view."""
        i = list.__len__(self)
        return self._array[max(0, i - n) : i]

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{self.name or 'an indicator line'} is read-only")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __repr__(self) -> str:
        n = list.__len__(self)
        last = list.__getitem__(self, n - 1) if n else None
        return f"Line({self.name!r}, {n} bar(s), value {last})"

    def __reduce__(self) -> Any:  # pragma: no cover - lines are not pickled
        raise TypeError("indicator lines cannot be pickled")
