"""Alpaca market-data bars through ``alpaca-py``.

Raw (unadjusted) bars from the IEX feed by default (``feed="sip"`` needs a paid
plan). The SDK follows ``next_page_token`` pages itself. Daily bars, which
Alpaca stamps at midnight New York time, are stamped at midnight UTC of that
session date like every daily bar in quantfleet; intraday bars stay in UTC.
Corporate actions are not fetched here (Alpaca serves them from a separate
API); ingest them with ``quantfleet data ingest actions``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from quantfleet.core.errors import ConfigError, DataError, VendorError
from quantfleet.core.types import Frequency
from quantfleet.data.ingest.base import VendorData
from quantfleet.data.schema import BARS_SCHEMA

__all__ = ["fetch_alpaca"]

_EXCHANGE_TZ = "America/New_York"


def _sdk() -> Any:
    with warnings.catch_warnings():
        # alpaca-py imports websockets.legacy, deprecated upstream; bars do not use it.
        warnings.simplefilter("ignore", DeprecationWarning)
        import alpaca.common.exceptions
        import alpaca.data.enums
        import alpaca.data.historical
        import alpaca.data.requests
        import alpaca.data.timeframe

    return alpaca


def _timeframe(sdk: Any, frequency: Frequency) -> Any:
    tf = sdk.data.timeframe
    minutes = int(frequency.step.total_seconds() // 60)
    if frequency is Frequency.DAILY:
        return tf.TimeFrame(1, tf.TimeFrameUnit.Day)
    if frequency is Frequency.HOUR_1:
        return tf.TimeFrame(1, tf.TimeFrameUnit.Hour)
    return tf.TimeFrame(minutes, tf.TimeFrameUnit.Minute)


def fetch_alpaca(
    symbols: Sequence[str],
    *,
    start: date,
    end: date,
    frequency: Frequency | str = Frequency.DAILY,
    api_key: str | None = None,
    secret_key: str | None = None,
    feed: str = "iex",
    client: Any | None = None,
) -> VendorData:
    """Return raw bars of ``symbols`` from ``start`` to ``end`` (inclusive); corporate actions come separately."""
    freq = Frequency.parse(frequency)
    sdk = _sdk()
    if client is None:
        if not api_key or not secret_key:
            raise ConfigError("Alpaca needs API keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment")
        client = sdk.data.historical.StockHistoricalDataClient(api_key, secret_key)
    names = [s.strip().upper() for s in symbols]
    request = sdk.data.requests.StockBarsRequest(
        symbol_or_symbols=names,
        timeframe=_timeframe(sdk, freq),
        start=datetime(start.year, start.month, start.day, tzinfo=UTC),
        end=datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1),
        adjustment=sdk.data.enums.Adjustment.RAW,
        feed=sdk.data.enums.DataFeed(feed),
    )
    try:
        barset = client.get_stock_bars(request)
    except sdk.common.exceptions.APIError as exc:
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            raise ConfigError(
                f"Alpaca refused the API keys (HTTP {status}); check APCA_API_KEY_ID and APCA_API_SECRET_KEY"
            ) from None
        if status in (400, 404, 422):
            raise DataError(f"Alpaca rejected the request for {', '.join(names)} (HTTP {status}: {exc})") from None
        raise VendorError(f"Alpaca failed (HTTP {status}: {exc}); try again later") from None
    except OSError as exc:  # requests' connection errors derive from OSError
        raise VendorError(f"cannot reach Alpaca ({type(exc).__name__}: {exc}); check the network and retry") from None
    tables = []
    for name in names:
        bars = barset.data.get(name, [])
        if not bars:
            raise DataError(f"Alpaca returned no {freq.value} bars for {name} from {start} to {end} ({feed} feed)")
        stamps = pd.DatetimeIndex([b.timestamp for b in bars]).tz_convert("UTC")
        if not freq.is_intraday:
            local = stamps.tz_convert(_EXCHANGE_TZ).tz_localize(None).normalize()
            stamps = pd.DatetimeIndex(local).tz_localize("UTC")
        tables.append(
            pa.table(
                {
                    "symbol": pa.array([name] * len(bars), pa.string()),
                    "ts": pa.array(stamps.as_unit("us"), pa.timestamp("us", tz="UTC")),
                    "open": [float(b.open) for b in bars],
                    "high": [float(b.high) for b in bars],
                    "low": [float(b.low) for b in bars],
                    "close": [float(b.close) for b in bars],
                    "volume": [float(b.volume) for b in bars],
                },
                schema=BARS_SCHEMA,
            )
        )
    return VendorData(bars=pa.concat_tables(tables))
