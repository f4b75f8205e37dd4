"""Trade-based metrics: round trips, exposure, turnover and costs.

See :mod:`quantfleet.analytics.metrics` for the keys and conventions. Only
closed round trips (``open == False``) count; an open one has no P&L yet.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from quantfleet.analytics._common import US_PER_DAY, Notes, Values, clean

__all__ = ["TRADE_KEYS", "trade_metrics"]

TRADE_KEYS = (
    "trades",
    "win_rate",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "expectancy",
    "avg_holding_days",
    "exposure",
    "turnover",
    "commission",
    "slippage",
)


def trade_metrics(
    trades: pa.Table | None,
    *,
    equity: np.ndarray,
    periods_per_year: float,
    gross_exposure: np.ndarray | None = None,
    traded_value: float | None = None,
    commission: float = 0.0,
    slippage: float = 0.0,
) -> tuple[Values, Notes]:
    """Return the trade-based metrics of a run and a reason for each None."""
    notes: Notes = {}
    out: dict[str, float | str | None] = _round_trips(trades, notes)
    out["exposure"] = _exposure(gross_exposure, notes)
    out["turnover"] = _turnover(traded_value, np.asarray(equity, dtype=np.float64), periods_per_year, notes)
    out["commission"] = float(commission)
    out["slippage"] = float(slippage)
    return clean(out, notes)


def _round_trips(trades: pa.Table | None, notes: Notes) -> dict[str, float | str | None]:
    """Return the count, win rate, average win and loss, profit factor, expectancy and holding time."""
    keys = TRADE_KEYS[1:7]
    if trades is None:
        notes.update(dict.fromkeys(TRADE_KEYS[:7], "no trades table given"))
        return dict.fromkeys(TRADE_KEYS[:7], None)
    closed = ~np.asarray(trades.column("open").to_numpy(zero_copy_only=False), dtype=bool)
    pnl = np.asarray(trades.column("pnl").to_numpy(zero_copy_only=False), dtype=np.float64)[closed]
    out: dict[str, float | str | None] = {"trades": int(closed.sum())}
    if not len(pnl):
        notes.update(dict.fromkeys(keys, "no closed trades"))
        out.update(dict.fromkeys(keys, None))
        return out
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    out["win_rate"] = len(wins) / len(pnl)
    out["avg_win"] = _mean_or_note(wins, "avg_win", "no winning trades", notes)
    out["avg_loss"] = _mean_or_note(losses, "avg_loss", "no losing trades", notes)
    if len(losses):
        out["profit_factor"] = float(wins.sum()) / -float(losses.sum())
    else:
        out["profit_factor"] = None
        notes["profit_factor"] = "no losing trades: gross loss is zero"
    out["expectancy"] = _mean_or_note(pnl, "expectancy", "no closed trade has a P&L", notes)
    out["avg_holding_days"] = _holding_days(trades, closed, notes)
    return out


def _mean_or_note(x: np.ndarray, key: str, reason: str, notes: Notes) -> float | None:
    """Return the mean of the non-NaN values of ``x``, or None with ``reason`` when there are none."""
    x = x[~np.isnan(x)]
    if not len(x):
        notes[key] = reason
        return None
    return float(np.mean(x))


def _holding_days(trades: pa.Table, closed: np.ndarray, notes: Notes) -> float | None:
    """Return the mean calendar days from entry to exit of the closed trades."""
    entry = _micros(trades.column("entry_time"))[closed]
    exit_ = _micros(trades.column("exit_time"))[closed]
    held = (exit_ - entry) / US_PER_DAY
    return _mean_or_note(held, "avg_holding_days", "no closed trade has both an entry and an exit time", notes)


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """Return a timestamp column as float microseconds, null as NaN."""
    values = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _exposure(gross: np.ndarray | None, notes: Notes) -> float | None:
    """Return the fraction of bars holding any position (gross exposure above zero)."""
    if gross is None or not len(gross):
        notes["exposure"] = "no gross exposure given"
        return None
    return float(np.mean(np.asarray(gross, dtype=np.float64) > 0))


def _turnover(traded: float | None, equity: np.ndarray, ppy: float, notes: Notes) -> float | None:
    """Return traded value per year as a multiple of mean equity (buys and sells both count)."""
    if traded is None:
        notes["turnover"] = "no traded value given"
        return None
    if len(equity) < 2:
        notes["turnover"] = "fewer than two bars"
        return None
    mean_equity = float(np.nanmean(equity)) if not np.isnan(equity).all() else math.nan
    if not mean_equity > 0:
        notes["turnover"] = "mean equity is not positive"
        return None
    years = (len(equity) - 1) / ppy
    return float(traded) / mean_equity / years
