"""A deterministic synthetic market: seeded random-walk bars on real exchange sessions.

The same symbols, dates, frequency, calendar and seed give the same bars on
every machine (each symbol's generator is seeded from the seed and a CRC of
its name, never Python's salted ``hash``). Bars follow the calendar, so
holidays and weekends are gaps, and keep realistic OHLC relations
(low <= open, close <= high). Optional corporate actions: quarterly cash
dividends and, for some symbols, one split; raw prices before a split are
scaled up by its ratio, so split-adjusted prices are a continuous walk.
Synthetic dividends do not move prices.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from quantfleet.core.errors import NoDataError
from quantfleet.core.types import US_PER_DAY, Frequency
from quantfleet.data.calendars import ALWAYS_OPEN, session_bounds, sessions
from quantfleet.data.ingest.base import VendorData
from quantfleet.data.schema import BARS_SCHEMA, CORPORATE_ACTIONS_SCHEMA, INSTRUMENTS_SCHEMA

__all__ = ["DEMO_SYMBOLS", "synthetic_bars"]

DEMO_SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
_TRADING_DAYS = 252


def _rng(seed: int, symbol: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(symbol.encode())])


def _bar_times(start: date, end: date, frequency: Frequency, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """Return bar open times (UTC, us) and each bar's session index."""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    days = pd.date_range(first, last, freq="D") if calendar == ALWAYS_OPEN else sessions(calendar, first, last)
    if len(days) == 0:
        raise NoDataError(f"no {calendar} sessions between {start} and {end}; widen the range")
    if not frequency.is_intraday:
        return np.asarray(days.as_unit("us").asi8, dtype=np.int64), np.arange(len(days))
    step = int(frequency.step.total_seconds() * 1_000_000)
    if calendar == ALWAYS_OPEN:
        opens = days.as_unit("us").asi8
        closes = opens + US_PER_DAY
    else:
        opens, closes = session_bounds(calendar, days)
    counts = (closes - opens) // step
    session = np.repeat(np.arange(len(days)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(opens, counts) + offsets * step, session


def synthetic_bars(
    symbols: Sequence[str] = DEMO_SYMBOLS,
    *,
    start: date,
    end: date,
    frequency: Frequency | str = Frequency.DAILY,
    calendar: str = "XNYS",
    seed: int = 42,
    actions: bool = True,
) -> VendorData:
    """Return seeded random-walk bars (and corporate actions) for ``symbols``."""
    freq = Frequency.parse(frequency)
    ts, session = _bar_times(start, end, freq, calendar)
    n = len(ts)
    bars_per_day = max(1, n // (session[-1] + 1))
    tables, action_rows = [], []
    for raw_symbol in symbols:
        symbol = raw_symbol.strip().upper()
        rng = _rng(seed, symbol)
        annual_vol = rng.uniform(0.15, 0.45)
        drift = rng.uniform(-0.02, 0.12)
        sigma = annual_vol / np.sqrt(_TRADING_DAYS * bars_per_day)
        mu = drift / (_TRADING_DAYS * bars_per_day) - 0.5 * sigma**2
        close = rng.uniform(20, 400) * np.exp(np.cumsum(rng.normal(mu, sigma, n)))
        prev = np.r_[close[0], close[:-1]]
        # Overnight gaps are larger than the gaps between intraday bars.
        new_session = np.r_[True, session[1:] != session[:-1]]
        gap = np.where(new_session, 0.4, 0.05) * sigma * rng.standard_normal(n)
        open_ = prev * np.exp(gap)
        span = np.abs(rng.normal(0, 0.6 * sigma, (2, n)))
        high = np.maximum(open_, close) * np.exp(span[0])
        low = np.minimum(open_, close) * np.exp(-span[1])
        volume = np.round(rng.lognormal(np.log(1e6 / bars_per_day), 0.5, n))
        scale = np.ones(n)
        if actions:
            scale, rows = _actions(rng, symbol, ts, close)
            action_rows.extend(rows)
        prices = [np.maximum(np.round(p * scale, 2), 0.01) for p in (open_, high, low, close)]
        tables.append(
            pa.table(
                {
                    "symbol": pa.array([symbol] * n, pa.string()),
                    "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                    "open": prices[0],
                    "high": prices[1],
                    "low": prices[2],
                    "close": prices[3],
                    "volume": np.round(volume / scale),
                },
                schema=BARS_SCHEMA,
            )
        )
    instruments = pa.Table.from_pylist(
        [
            {
                "symbol": s.strip().upper(),
                "name": f"Synthetic {s.strip().upper()}",
                "exchange": calendar,
                "asset_class": "equity",
                "currency": "USD",
            }
            for s in symbols
        ],
        schema=INSTRUMENTS_SCHEMA,
    )
    return VendorData(
        bars=pa.concat_tables(tables),
        actions=pa.Table.from_pylist(action_rows, schema=CORPORATE_ACTIONS_SCHEMA),
        instruments=instruments,
    )


def _actions(
    rng: np.random.Generator, symbol: str, ts: np.ndarray, close: np.ndarray
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Return the raw-price scale (splits) and the action rows of one symbol."""
    days = ts // US_PER_DAY
    unique_days, first_bar = np.unique(days, return_index=True)
    rows: list[dict[str, object]] = []
    scale = np.ones(len(ts))
    if len(unique_days) < 130:
        return scale, rows
    if rng.random() < 0.6:  # a quarterly payer
        for k in range(63, len(unique_days), 63):
            amount = round(float(close[first_bar[k]]) * rng.uniform(0.002, 0.006), 2)
            if amount > 0:
                rows.append({"symbol": symbol, "ex_date": _date(unique_days[k]), "kind": "dividend", "value": amount})
    if rng.random() < 0.5:  # one split, somewhere in the middle
        k = int(rng.integers(len(unique_days) // 4, 3 * len(unique_days) // 4))
        ratio = float(rng.choice([2.0, 3.0, 4.0]))
        scale[: first_bar[k]] = ratio
        rows.append({"symbol": symbol, "ex_date": _date(unique_days[k]), "kind": "split", "value": ratio})
    return scale, rows


def _date(day: int) -> date:
    return (pd.Timestamp(0) + pd.Timedelta(days=int(day))).date()
