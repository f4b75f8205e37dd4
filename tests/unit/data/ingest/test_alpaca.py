"""The Alpaca adapter runs alpaca-py's real client against recorded HTTP responses (no network).

The responses under tests/fixtures/vendors follow the shape of Alpaca's
``/v2/stocks/bars`` API; the daily response comes in two pages to exercise
``next_page_token``.
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

from quantfleet.core.errors import ConfigError, DataError, VendorError
from quantfleet.data.ingest.alpaca import fetch_alpaca

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "vendors"
BARS = "https://data.alpaca.markets/v2/stocks/bars"
KEYS = {"api_key": "PKTEST", "secret_key": "secret"}


def load(name: str) -> dict[str, object]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def alpaca() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_daily_bars_across_pages(alpaca: responses.RequestsMock) -> None:
    def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert request.headers["APCA-API-KEY-ID"] == "PKTEST"
        assert "adjustment=raw" in (request.url or "")
        second = "page_token=" in (request.url or "")
        return 200, {}, json.dumps(load(f"alpaca_bars_AAPL_1d_page{2 if second else 1}.json"))

    alpaca.add_callback(responses.GET, re.compile(re.escape(BARS) + r".*"), callback=page)
    data = fetch_alpaca(["aapl"], start=date(2024, 2, 7), end=date(2024, 2, 12), frequency="1d", **KEYS)
    rows = data.bars.to_pylist()
    # Alpaca stamps daily bars at midnight New York (05:00 UTC); quantfleet at midnight UTC of the session date.
    assert [r["ts"] for r in rows] == [datetime(2024, 2, d, tzinfo=UTC) for d in (7, 8, 9, 12)]
    assert rows[2] == {
        "symbol": "AAPL",
        "ts": datetime(2024, 2, 9, tzinfo=UTC),
        "open": 188.65,
        "high": 189.99,
        "low": 188.0,
        "close": 188.85,
        "volume": 1044210.0,
    }
    assert len(alpaca.calls) == 2
    assert data.actions.num_rows == 0


def test_minute_bars_stay_in_utc(alpaca: responses.RequestsMock) -> None:
    alpaca.get(re.compile(re.escape(BARS) + r".*timeframe=1Min.*"), json=load("alpaca_bars_AAPL_1m.json"))
    data = fetch_alpaca(["AAPL"], start=date(2024, 2, 7), end=date(2024, 2, 7), frequency="1m", **KEYS)
    assert data.bars.column("ts").to_pylist() == [
        datetime(2024, 2, 7, 14, 30, tzinfo=UTC),
        datetime(2024, 2, 7, 14, 31, tzinfo=UTC),
    ]


def test_errors_name_the_fix(alpaca: responses.RequestsMock) -> None:
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID"):
        fetch_alpaca(["AAPL"], start=date(2024, 2, 7), end=date(2024, 2, 12))
    alpaca.get(re.compile(re.escape(BARS) + r".*symbols=NOSUCH.*"), status=422, json=load("alpaca_invalid_symbol.json"))
    with pytest.raises(DataError, match="HTTP 422"):
        fetch_alpaca(["NOSUCH"], start=date(2024, 2, 7), end=date(2024, 2, 12), **KEYS)
    alpaca.get(re.compile(re.escape(BARS) + r".*symbols=FORBID.*"), status=403, json={"message": "forbidden"})
    with pytest.raises(ConfigError, match="refused the API keys"):
        fetch_alpaca(["FORBID"], start=date(2024, 2, 7), end=date(2024, 2, 12), **KEYS)
    alpaca.get(re.compile(re.escape(BARS) + r".*symbols=EMPTY.*"), json={"bars": {}, "next_page_token": None})
    with pytest.raises(DataError, match="no 1d bars for EMPTY"):
        fetch_alpaca(["EMPTY"], start=date(2024, 2, 7), end=date(2024, 2, 12), **KEYS)
    alpaca.get(re.compile(re.escape(BARS) + r".*symbols=BROKEN.*"), status=500, json={"message": "internal error"})
    with pytest.raises(VendorError, match="HTTP 500"):
        fetch_alpaca(["BROKEN"], start=date(2024, 2, 7), end=date(2024, 2, 12), **KEYS)
    alpaca.get(re.compile(re.escape(BARS) + r".*symbols=DOWN.*"), body=requests.ConnectionError("refused"))
    with pytest.raises(VendorError, match="cannot reach Alpaca"):
        fetch_alpaca(["DOWN"], start=date(2024, 2, 7), end=date(2024, 2, 12), **KEYS)
