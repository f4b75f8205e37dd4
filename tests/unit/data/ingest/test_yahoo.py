"""The Yahoo adapter runs yfinance's real code against recorded HTTP responses (no network).

The chart responses under tests/fixtures/vendors follow the shape of Yahoo's
``/v8/finance/chart`` API: four AAPL sessions in February 2024 with the real
0.24 dividend (ex-date Feb 9) and, to exercise splits, an invented 2-for-1
split on Feb 12. ``responses`` serves them to yfinance's own requests session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests
import responses
import yfinance as yf

from quantfleet.core.errors import DataError, VendorError
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.yahoo import fetch_yahoo

COOKIE = "A3=d=AQABBFAKE; Expires=Tue, 23 Nov 2027 00:00:00 GMT; Max-Age=31557600; Domain=.yahoo.com; Path=/"
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "vendors"


def load(name: str) -> dict[str, object]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _tz_cache(tmp_path: Path) -> None:
    yf.set_tz_cache_location(str(tmp_path / "yf-tz"))


@pytest.fixture
def yahoo() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            "https://fc.yahoo.com/",
            status=404,
            headers={"Set-Cookie": COOKIE},
        )
        rsps.get("https://query1.finance.yahoo.com/v1/test/getcrumb", body="FakeCrumb1")
        rsps.get(
            "https://query2.finance.yahoo.com/v8/finance/chart/AAPL?range=1d&interval=1d&crumb=FakeCrumb1",
            json=load("yahoo_chart_AAPL_range1d.json"),
        )
        rsps.get(
            re.compile(r"https://query2\.finance\.yahoo\.com/v8/finance/chart/AAPL\?period1=.*"),
            json=load("yahoo_chart_AAPL_1d.json"),
        )
        rsps.get(
            re.compile(r"https://query2\.finance\.yahoo\.com/v8/finance/chart/NOSUCH.*"),
            status=404,
            json=load("yahoo_chart_not_found.json"),
        )
        rsps.get(re.compile(r"https://query2\.finance\.yahoo\.com/v10/finance/quoteSummary/.*"), status=404, json={})
        yield rsps


def test_daily_bars_splits_and_dividends(yahoo: responses.RequestsMock) -> None:
    data = fetch_yahoo(
        ["aapl"], start=date(2024, 2, 7), end=date(2024, 2, 12), frequency="1d", session=requests.Session()
    )
    rows = data.bars.to_pylist()
    assert [r["ts"] for r in rows] == [datetime(2024, 2, d, tzinfo=UTC) for d in (7, 8, 9, 12)]
    assert rows[0] == {
        "symbol": "AAPL",
        "ts": datetime(2024, 2, 7, tzinfo=UTC),
        "open": 190.0,
        "high": 191.05,
        "low": 188.61,
        "close": 189.41,
        "volume": 53439000.0,
    }
    assert rows[-1]["close"] == pytest.approx(93.84)  # raw, not adjusted
    actions = data.actions.to_pylist()
    assert {"symbol": "AAPL", "ex_date": date(2024, 2, 9), "kind": "dividend", "value": 0.24} in actions
    assert {"symbol": "AAPL", "ex_date": date(2024, 2, 12), "kind": "split", "value": 2.0} in actions
    assert data.instruments is not None
    assert data.instruments.to_pylist()[0]["currency"] == "USD"


def test_the_store_adjusts_what_yahoo_delivered(yahoo: responses.RequestsMock, tmp_path: Path) -> None:
    data = fetch_yahoo(["AAPL"], start=date(2024, 2, 7), end=date(2024, 2, 12), session=requests.Session())
    store = MarketDataStore(str(tmp_path / "data"))
    store.ingest_bars([data.bars], frequency="1d", source="yahoo")
    store.ingest_corporate_actions(data.actions, source="yahoo")
    adjusted = store.read_bars("AAPL", adjustment="splits").table.column("close").to_pylist()
    assert adjusted == pytest.approx([189.41 / 2, 188.32 / 2, 188.85 / 2, 93.84])


def test_unknown_symbol_is_a_data_error(yahoo: responses.RequestsMock) -> None:
    with pytest.raises(DataError, match="NOSUCH"):
        fetch_yahoo(["NOSUCH"], start=date(2024, 2, 7), end=date(2024, 2, 12), session=requests.Session())


def test_network_failure_is_a_vendor_error() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(re.compile(r".*"), body=requests.ConnectionError("connection refused"))
        # Another symbol: yfinance caches responses it has seen in this process.
        with pytest.raises(VendorError, match=r"cannot reach Yahoo Finance for MSFT.*check the network"):
            fetch_yahoo(["MSFT"], start=date(2024, 2, 7), end=date(2024, 2, 12), session=requests.Session())
