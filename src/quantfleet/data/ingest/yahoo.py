"""Yahoo Finance bars, splits and dividends through ``yfinance``.

Prices are raw (``auto_adjust=False``): quantfleet adjusts at read time from
the corporate actions stored beside the bars. Daily bars keep the exchange's
session date (stamped at midnight UTC); intraday bars are converted to UTC.
Yahoo serves 1-minute bars for the last 30 days only, and intraday bars for the
last 60 days; older requests come back empty.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from quantfleet.core.errors import DataError, VendorError
from quantfleet.core.types import Frequency
from quantfleet.data.ingest.base import VendorData
from quantfleet.data.schema import BARS_SCHEMA, CORPORATE_ACTIONS_SCHEMA, INSTRUMENTS_SCHEMA

__all__ = ["YAHOO_INTERVALS", "fetch_yahoo"]

YAHOO_INTERVALS = {
    Frequency.MINUTE_1: "1m",
    Frequency.MINUTE_5: "5m",
    Frequency.MINUTE_15: "15m",
    Frequency.MINUTE_30: "30m",
    Frequency.HOUR_1: "60m",
    Frequency.DAILY: "1d",
}


def _network_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types of the HTTP clients yfinance may use."""
    import requests

    errors: list[type[BaseException]] = [requests.RequestException, OSError]
    try:
        from curl_cffi import requests as curl_requests

        errors.append(curl_requests.exceptions.RequestException)
    except ImportError:  # pragma: no cover - curl_cffi is optional for yfinance
        pass
    return tuple(errors)


def _history(ticker: Any, symbol: str, start: date, end: date, interval: str) -> pd.DataFrame:
    import yfinance as yf

    debug = yf.config.debug
    hidden = debug.hide_exceptions
    debug.hide_exceptions = False  # raise instead of logging and returning an empty frame
    try:
        with warnings.catch_warnings():
            # yfinance still uses pandas APIs that pandas 3.1 deprecates; its results are right.
            warnings.simplefilter("ignore", DeprecationWarning)
            frame: pd.DataFrame = ticker.history(
                start=start.isoformat(),
                end=(end + timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
                interval=interval,
                auto_adjust=False,
                actions=True,
            )
    except yf.exceptions.YFPricesMissingError as exc:
        raise DataError(
            f"Yahoo Finance has no {interval} bars for {symbol} from {start} to {end} ({exc}); check the symbol "
            "(Yahoo spells some differently, e.g. BRK-B, ^GSPC) and the dates (intraday history is short)"
        ) from None
    except yf.exceptions.YFException as exc:
        text = str(exc)
        if "delisted" in text or "not found" in text.lower() or "no data" in text.lower():
            raise DataError(f"Yahoo Finance knows no symbol {symbol} ({text}); check the spelling") from None
        raise VendorError(f"Yahoo Finance failed for {symbol}: {text}; try again later") from None
    except _network_errors() as exc:
        if getattr(getattr(exc, "response", None), "status_code", None) == 404:
            raise DataError(f"Yahoo Finance knows no symbol {symbol} (HTTP 404); check the spelling") from None
        raise VendorError(
            f"cannot reach Yahoo Finance for {symbol} ({type(exc).__name__}: {exc}); check the network and retry"
        ) from None
    finally:
        debug.hide_exceptions = hidden
    if frame.empty:
        raise DataError(f"Yahoo Finance returned no {interval} bars for {symbol} from {start} to {end}")
    return frame


def _bars(frame: pd.DataFrame, symbol: str, frequency: Frequency) -> pa.Table:
    index = pd.DatetimeIndex(frame.index)
    if frequency.is_intraday:
        stamps = index.tz_convert("UTC")
    else:
        stamps = pd.DatetimeIndex(index.tz_localize(None).normalize()).tz_localize("UTC")
    return pa.table(
        {
            "symbol": pa.array([symbol] * len(frame), pa.string()),
            "ts": pa.array(stamps.as_unit("us"), pa.timestamp("us", tz="UTC")),
            "open": frame["Open"].to_numpy(dtype="float64"),
            "high": frame["High"].to_numpy(dtype="float64"),
            "low": frame["Low"].to_numpy(dtype="float64"),
            "close": frame["Close"].to_numpy(dtype="float64"),
            "volume": frame["Volume"].to_numpy(dtype="float64"),
        },
        schema=BARS_SCHEMA,
    )


def _actions(frame: pd.DataFrame, symbol: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    local_dates = pd.DatetimeIndex(frame.index).tz_localize(None).normalize().date
    for column, kind in (("Dividends", "dividend"), ("Stock Splits", "split")):
        if column not in frame.columns:
            continue
        for day, value in zip(local_dates, frame[column].to_numpy(), strict=True):
            if value and value > 0:
                rows.append({"symbol": symbol, "ex_date": day, "kind": kind, "value": float(value)})
    return rows


def fetch_yahoo(
    symbols: Sequence[str],
    *,
    start: date,
    end: date,
    frequency: Frequency | str = Frequency.DAILY,
    session: Any | None = None,
) -> VendorData:
    """Return raw bars, splits and cash dividends of ``symbols`` from ``start`` to ``end`` (inclusive).

    ``session`` is passed to yfinance (a ``requests`` or ``curl_cffi`` session), e.g. for a proxy.
    """
    import yfinance as yf

    freq = Frequency.parse(frequency)
    interval = YAHOO_INTERVALS[freq]
    tables, actions, instruments = [], [], []
    for raw in symbols:
        symbol = raw.strip().upper()
        ticker = yf.Ticker(symbol, session=session)
        frame = _history(ticker, symbol, start, end, interval)
        tables.append(_bars(frame, symbol, freq))
        actions.extend(_actions(frame, symbol))
        meta = getattr(ticker, "history_metadata", None) or {}
        instruments.append(
            {
                "symbol": symbol,
                "name": meta.get("longName") or meta.get("shortName"),
                "exchange": meta.get("fullExchangeName") or meta.get("exchangeName"),
                "asset_class": str(meta.get("instrumentType", "")).lower() or None,
                "currency": meta.get("currency"),
            }
        )
    return VendorData(
        bars=pa.concat_tables(tables),
        actions=pa.Table.from_pylist(actions, schema=CORPORATE_ACTIONS_SCHEMA),
        instruments=pa.Table.from_pylist(instruments, schema=INSTRUMENTS_SCHEMA),
    )
