"""Bad bars are refused with messages that name the problem and the fix."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from quantfleet.core.errors import InvalidBarsError
from quantfleet.core.types import Frequency
from quantfleet.data.validate import OffSession, check_bars, coerce_bars, validate_symbol


def _table(rows: list[tuple[str, datetime, float, float, float, float, float]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    return coerce_bars(
        pa.table(
            {
                "symbol": list(cols[0]),
                "ts": pa.array(cols[1], pa.timestamp("us", tz="UTC")),
                "open": list(cols[2]),
                "high": list(cols[3]),
                "low": list(cols[4]),
                "close": list(cols[5]),
                "volume": list(cols[6]),
            }
        )
    )


def d(day: int, month: int = 1, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def check(table: pa.Table, freq: str = "1d", off: OffSession = OffSession.ERROR) -> pa.Table:
    return check_bars(table, frequency=Frequency.parse(freq), calendar="XNYS", off_session=off)[0]


def test_good_bars_pass_sorted() -> None:
    table = _table([("B", d(3), 10, 11, 9, 10.5, 100), ("A", d(3), 1, 1, 1, 1, 0), ("A", d(2), 1, 2, 0.5, 1.5, 5)])
    out = check(table)
    assert out.column("symbol").to_pylist() == ["A", "A", "B"]
    assert [t.day for t in out.column("ts").to_pylist()] == [2, 3, 3]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("A", d(2), -1.0, 2.0, -2.0, 1.0, 5.0), "negative, zero or non-finite price"),
        (("A", d(2), 1.0, 2.0, 0.0, 1.0, 5.0), "negative, zero or non-finite price"),
        (("A", d(2), 1.0, 2.0, 0.5, float("nan"), 5.0), "non-finite price"),
        (("A", d(2), 1.0, 2.0, 0.5, 1.0, -5.0), "negative or non-finite volume"),
        (("A", d(2), 1.0, 1.0, 2.0, 1.5, 5.0), "high < low"),
        (("A", d(2), 3.0, 2.0, 0.5, 1.0, 5.0), "open or close outside the high-low range"),
        (("A", d(2, hour=15), 1.0, 2.0, 0.5, 1.0, 5.0), "not on the 1d grid"),
        (("a b", d(2), 1.0, 2.0, 0.5, 1.0, 5.0), "invalid symbol"),
    ],
)
def test_each_rule_names_the_bar(row: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidBarsError, match=message) as err:
        check(_table([row]))
    assert "nothing was written" in str(err.value)


def test_every_problem_is_listed_at_once() -> None:
    table = _table([("A", d(2), -1, 2, -2, 1, 5), ("A", d(3), 1, 1, 2, 1.5, 5), ("A", d(3), 1, 2, 0.5, 1, 5)])
    with pytest.raises(InvalidBarsError) as err:
        check(table)
    assert len(err.value.problems) == 3
    assert "duplicate timestamp" in str(err.value)
    assert "A 2024-01-03" in str(err.value)


def test_nulls_are_refused() -> None:
    table = pa.table(
        {
            "symbol": ["A"],
            "ts": pa.array([d(2)], pa.timestamp("us", tz="UTC")),
            "open": [1.0],
            "high": [None],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
        }
    )
    with pytest.raises(InvalidBarsError, match="no high"):
        check(coerce_bars(table))


def test_missing_columns_name_the_mapping_option() -> None:
    with pytest.raises(InvalidBarsError, match=r"missing column\(s\) volume.*--column"):
        coerce_bars(pa.table({"symbol": ["A"], "ts": [d(2)], "open": [1], "high": [1], "low": [1], "close": [1]}))


def test_naive_timestamps_ask_for_a_time_zone() -> None:
    table = pa.table(
        {
            "symbol": ["A"],
            "ts": pa.array([datetime(2024, 1, 2)]),
            "open": [1],
            "high": [1],
            "low": [1],
            "close": [1],
            "volume": [1],
        }
    )
    with pytest.raises(InvalidBarsError, match="--tz"):
        coerce_bars(table)


def test_holiday_bar_is_reported_not_silently_dropped() -> None:
    # 2024-01-15 is Martin Luther King Jr. Day: NYSE is closed.
    table = _table([("A", d(12), 1, 2, 0.5, 1, 5), ("A", d(15), 1, 2, 0.5, 1, 5), ("A", d(16), 1, 2, 0.5, 1, 5)])
    with pytest.raises(InvalidBarsError, match=r"1 bar\(s\) fall outside XNYS sessions.*A 2024-01-15.*--off-session"):
        check(table)
    kept, notes = check_bars(table, frequency=Frequency.DAILY, calendar="XNYS", off_session=OffSession.KEEP)
    assert kept.num_rows == 3
    assert notes.kept_off_session == 1
    dropped, notes = check_bars(table, frequency=Frequency.DAILY, calendar="XNYS", off_session=OffSession.DROP)
    assert [t.day for t in dropped.column("ts").to_pylist()] == [12, 16]
    assert notes.dropped_off_session == 1
    assert "2024-01-15" in notes.examples[0]


def test_intraday_bars_must_fall_in_trading_minutes() -> None:
    # 14:30 UTC is 09:30 New York (open); 21:00 UTC is 16:00 (closed); 13:00 UTC is pre-market.
    table = _table(
        [
            ("A", d(2, hour=14, minute=30), 1, 2, 0.5, 1, 5),
            ("A", d(2, hour=21), 1, 2, 0.5, 1, 5),
            ("A", d(2, hour=13), 1, 2, 0.5, 1, 5),
        ]
    )
    with pytest.raises(InvalidBarsError, match=r"2 bar\(s\) fall outside"):
        check(table, "1m")
    assert check(table, "1m", OffSession.DROP).num_rows == 1
    always = check_bars(table, frequency=Frequency.MINUTE_1, calendar="24/7", off_session=OffSession.ERROR)[0]
    assert always.num_rows == 3


def test_symbol_rules() -> None:
    assert validate_symbol(" brk.b ") == "BRK.B"
    assert validate_symbol("^GSPC") == "^GSPC"
    with pytest.raises(InvalidBarsError, match="invalid symbol"):
        validate_symbol("has space")
