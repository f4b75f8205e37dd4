"""The security master: stored with the data, versioned with the snapshot, dates from the bars."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from quantfleet.core.errors import DataError
from quantfleet.data import MarketDataStore


def test_instruments_are_versioned_and_dated_by_their_bars(daily_store: MarketDataStore) -> None:
    first = daily_store.ingest_instruments(
        pa.table(
            {
                "symbol": ["aaa", "BBB"],
                "name": ["Alpha Corp", "Beta Inc"],
                "exchange": ["XNYS", "XNAS"],
                "asset_class": ["equity", "equity"],
                "currency": ["USD", "USD"],
            }
        )
    )
    daily_store.ingest_instruments(pa.table({"symbol": ["AAA"], "name": ["Alpha Holdings"]}))
    rows = {r["symbol"]: r for r in daily_store.instruments().to_pylist()}
    assert rows["AAA"]["name"] == "Alpha Holdings"
    assert rows["BBB"]["exchange"] == "XNAS"
    assert rows["AAA"]["first_date"] == date(2020, 1, 2)
    assert rows["AAA"]["last_date"] == date(2022, 12, 30)
    assert rows["CCC"]["name"] is None  # has bars, not yet described
    at_first = {r["symbol"]: r for r in daily_store.instruments(first).to_pylist()}
    assert at_first["AAA"]["name"] == "Alpha Corp"
    assert daily_store.instruments(0).column("name").null_count == 3


def test_instruments_need_unique_symbols(daily_store: MarketDataStore) -> None:
    with pytest.raises(DataError, match="one row with a non-empty symbol"):
        daily_store.ingest_instruments(pa.table({"symbol": ["AAA", "AAA"]}))
    assert daily_store.latest() == 0
