"""Helpers the metric modules share: the result shape, NaN bookkeeping and guarded annualization."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from quantfleet.core.types import US_PER_DAY

__all__ = [
    "MAX_RETURN",
    "MINUTES_PER_DAY",
    "US_PER_DAY",
    "Notes",
    "Value",
    "Values",
    "annualize_growth",
    "clean",
    "days_between",
    "iso_utc",
    "per_period_rate",
    "usable_returns",
    "zero_dispersion",
]

MINUTES_PER_DAY = 1440.0

Value = float | str | None
Values = dict[str, Value]
Notes = dict[str, str]

MAX_RETURN = 1e50
"""Returns beyond +/- this are unknown (NaN): only equity within rounding of zero gives them, and their
fourth powers (kurtosis) would overflow a float64."""

# exp() of anything above this overflows a float64; annualizing a huge short-run gain gets there.
_MAX_LOG = 709.0


def clean(values: dict[str, float | str | None], notes: Notes) -> tuple[Values, Notes]:
    """Return values with NaN and infinities as None, each None explained in the notes.

    A value that turned non-finite without a recorded reason gets a generic
    one, so a None in the output is never unexplained.
    """
    out: Values = {}
    for key, value in values.items():
        if isinstance(value, np.generic):
            value = value.item()  # JSON-safe Python numbers
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
            notes.setdefault(key, "infinite" if math.isinf(value) else "undefined for this series")
        else:
            out[key] = value
            if value is not None:
                notes.pop(key, None)
            else:
                notes.setdefault(key, "undefined for this series")
    return out, {k: notes[k] for k in out if k in notes}


def usable_returns(returns: np.ndarray) -> np.ndarray:
    """Return ``returns`` as float64 with infinities and magnitudes beyond MAX_RETURN as NaN."""
    r = np.array(returns, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        r[~(np.abs(r) <= MAX_RETURN)] = np.nan
    return r


def per_period_rate(annual: float, periods_per_year: float) -> float:
    """Return the per-period rate that compounds to ``annual`` over a year.

    This is how empyrical's ``omega_ratio`` turns an annual required return
    into a per-period threshold; quantfleet converts the risk-free rate the
    same way before handing it to Sharpe, Sortino, Omega and alpha.
    """
    if not annual > -1.0:
        raise ValueError(f"an annual rate must be above -100%, got {annual!r}; pass e.g. 0.02 for 2%")
    return float((1.0 + annual) ** (1.0 / periods_per_year) - 1.0)


def annualize_growth(growth: float, periods: float, periods_per_year: float) -> float:
    """Return ``growth ** (periods_per_year / periods) - 1`` (CAGR), inf instead of an overflow.

    ``growth`` is the ending value of one unit; at or below zero everything
    was lost and the annual rate is -1.
    """
    if not periods > 0 or math.isnan(growth):
        return math.nan
    if growth <= 0:
        return -1.0
    years = periods / periods_per_year
    if math.log(growth) / years > _MAX_LOG:
        return math.inf
    return float(growth ** (1.0 / years) - 1.0)  # the same operations as empyrical.annual_return


def zero_dispersion(x: np.ndarray) -> bool:
    """Return whether every value of a non-empty array is the same.

    The sample deviation of identical values is zero, but floating-point
    residue of the mean can leave ~1e-19 behind; dividing by it turns an
    undefined ratio into a meaningless 1e15 (empyrical guards the same way).
    """
    return bool(len(x) > 0 and x.max() == x.min())


def iso_utc(ts_us: int) -> str:
    """Return an int64 UTC-microseconds timestamp as ISO-8601 (``2024-01-02T00:00:00+00:00``)."""
    seconds, micros = divmod(int(ts_us), 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros).isoformat()


def days_between(ts: np.ndarray, start: int, end: int) -> float:
    """Return calendar days from bar ``start`` to bar ``end``."""
    return float(int(ts[end]) - int(ts[start])) / US_PER_DAY
