"""CSV and Parquet ingest: layouts, column mapping, time zones, and bad rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quantfleet.core.errors import InvalidBarsError
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.files import FileLayout, read_bar_files

YAHOO_STYLE = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
2024-01-04,182.15,183.09,180.88,181.91,181.22,71983600
"""

LONG_INTRADAY = """ticker;time;o;h;l;c;vol
msft;2024-07-01 09:30:00;450.0;451.0;449.5;450.5;1000
msft;2024-07-01 09:31:00;450.5;452.0;450.0;451.5;1200
aapl;2024-07-01 09:30:00;215.0;216.0;214.5;215.5;3000
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_one_file_per_symbol_takes_the_symbol_from_the_name(tmp_path: Path) -> None:
    [table] = read_bar_files(
        [write(tmp_path / "aapl.csv", YAHOO_STYLE)], frequency="1d", layout=FileLayout(tz="America/New_York")
    )
    assert table.column("symbol").to_pylist() == ["AAPL"] * 3
    # Daily bars keep their local date, stamped at midnight UTC; Close (not Adj Close) is used.
    assert table.column("ts").to_pylist()[0] == datetime(2024, 1, 2, tzinfo=UTC)
    assert table.column("close").to_pylist() == [185.64, 184.25, 181.91]


def test_long_file_with_aliases_delimiter_and_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path / "bars.csv", LONG_INTRADAY)
    [table] = read_bar_files([path], frequency="1m", layout=FileLayout(tz="America/New_York", delimiter=";"))
    assert table.column("symbol").to_pylist() == ["MSFT", "MSFT", "AAPL"]
    # 09:30 in New York during daylight saving time is 13:30 UTC.
    assert table.column("ts").to_pylist()[0] == datetime(2024, 7, 1, 13, 30, tzinfo=UTC)
    assert table.column("volume").to_pylist() == [1000.0, 1200.0, 3000.0]


def test_explicit_column_mapping(tmp_path: Path) -> None:
    text = "When,A,B,C,D,Qty\n2024-01-02,1,2,0.5,1.5,10\n"
    layout = FileLayout(
        columns={"ts": "When", "open": "A", "high": "B", "low": "C", "close": "D", "volume": "Qty"}, symbol="XYZ"
    )
    [table] = read_bar_files([write(tmp_path / "x.csv", text)], frequency="1d", layout=layout)
    assert table.to_pylist()[0]["high"] == 2.0
    assert table.column("symbol").to_pylist() == ["XYZ"]


def test_parquet_files_with_epoch_seconds(tmp_path: Path) -> None:
    path = tmp_path / "SPY.parquet"
    pq.write_table(
        pa.table(
            {
                "timestamp": [1704205800, 1704205860],
                "open": [1.0, 1.1],
                "high": [1.2, 1.2],
                "low": [0.9, 1.0],
                "close": [1.1, 1.15],
                "volume": [5, 6],
            }
        ),
        path,
    )
    [table] = read_bar_files([path], frequency="1m")
    assert table.column("ts").to_pylist() == [
        datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
        datetime(2024, 1, 2, 14, 31, tzinfo=UTC),
    ]


def test_malformed_rows_are_listed_with_line_numbers(tmp_path: Path) -> None:
    text = YAHOO_STYLE + "2024-01-05,1,2\n2024-01-08,1,2,0.5,1,1,1,99\n"
    with pytest.raises(InvalidBarsError, match=r"2 malformed row\(s\).*line 5: expected 7 fields, found 3.*line 6"):
        list(read_bar_files([write(tmp_path / "AAPL.csv", text)], frequency="1d"))


def test_text_in_a_number_column_is_named(tmp_path: Path) -> None:
    text = YAHOO_STYLE.replace("185.64", "n/a!")
    with pytest.raises(InvalidBarsError, match=r"'Close' \(close\) holds text.*'n/a!'"):
        list(read_bar_files([write(tmp_path / "AAPL.csv", text)], frequency="1d"))


def test_missing_column_names_the_option(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close\n2024-01-02,1,2,0.5,1.5\n"
    with pytest.raises(InvalidBarsError, match=r"no column for volume.*--column volume=YourName"):
        list(read_bar_files([write(tmp_path / "AAPL.csv", text)], frequency="1d"))


def test_unknown_file_type_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidBarsError, match="unknown file type"):
        list(read_bar_files([write(tmp_path / "a.xlsx", "x")], frequency="1d"))
    with pytest.raises(InvalidBarsError, match="no such file"):
        list(read_bar_files([tmp_path / "nope.csv"], frequency="1d"))


def test_a_bad_file_among_good_ones_writes_nothing(tmp_path: Path, store: MarketDataStore) -> None:
    good = write(tmp_path / "AAPL.csv", YAHOO_STYLE)
    bad = write(tmp_path / "MSFT.csv", YAHOO_STYLE.replace("183.89", "-1"))
    store.ingest_bars(read_bar_files([good], frequency="1d"), frequency="1d")
    with pytest.raises(InvalidBarsError, match=r"MSFT\.csv"):
        store.ingest_bars(
            read_bar_files([write(tmp_path / "IBM.csv", YAHOO_STYLE), bad], frequency="1d"), frequency="1d"
        )
    assert store.latest() == 0
    assert [s.symbol for s in store.catalog()] == ["AAPL"]
