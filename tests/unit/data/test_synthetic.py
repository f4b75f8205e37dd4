"""The synthetic market is deterministic, realistic in shape, and follows the calendar."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow.compute as pc

from quantfleet.data.ingest.synthetic import synthetic_bars


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    a = synthetic_bars(["AAA", "BBB"], start=date(2020, 1, 1), end=date(2020, 12, 31), seed=7)
    b = synthetic_bars(["AAA", "BBB"], start=date(2020, 1, 1), end=date(2020, 12, 31), seed=7)
    c = synthetic_bars(["AAA", "BBB"], start=date(2020, 1, 1), end=date(2020, 12, 31), seed=8)
    assert a.bars.equals(b.bars)
    assert a.actions.equals(b.actions)
    assert not a.bars.column("close").equals(c.bars.column("close"))


def test_a_symbol_does_not_depend_on_its_neighbours() -> None:
    alone = synthetic_bars(["BBB"], start=date(2020, 1, 1), end=date(2020, 6, 30)).bars
    among = synthetic_bars(["AAA", "BBB"], start=date(2020, 1, 1), end=date(2020, 6, 30)).bars
    assert among.filter(pc.equal(among.column("symbol"), "BBB")).equals(alone)


def test_ohlc_relations_hold() -> None:
    bars = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2015, 1, 1), end=date(2024, 12, 31)).bars
    o, h, low, c = (bars.column(n).to_numpy() for n in ("open", "high", "low", "close"))
    assert np.all(low > 0)
    assert np.all(h >= np.maximum(o, c))
    assert np.all(low <= np.minimum(o, c))
    assert np.all(bars.column("volume").to_numpy() >= 0)


def test_holidays_are_gaps() -> None:
    bars = synthetic_bars(["AAA"], start=date(2024, 7, 1), end=date(2024, 7, 10)).bars
    days = [t.date() for t in bars.column("ts").to_pylist()]
    assert date(2024, 7, 4) not in days  # Independence Day
    assert date(2024, 7, 6) not in days  # a Saturday
    assert len(days) == 7


def test_intraday_follows_sessions_including_early_closes() -> None:
    bars = synthetic_bars(["AAA"], start=date(2024, 11, 29), end=date(2024, 12, 2), frequency="1m").bars
    per_day = pc.value_counts(pc.strftime(bars.column("ts"), "%Y-%m-%d")).to_pylist()
    counts = {row["values"]: row["counts"] for row in per_day}
    assert counts == {"2024-11-29": 210, "2024-12-02": 390}  # the day after Thanksgiving closes at 13:00


def test_splits_scale_raw_prices() -> None:
    data = synthetic_bars(["AAA", "BBB", "CCC", "DDD", "EEE"], start=date(2015, 1, 1), end=date(2024, 12, 31))
    splits = data.actions.filter(pc.equal(data.actions.column("kind"), "split"))
    assert splits.num_rows >= 1
    split = splits.to_pylist()[0]
    bars = data.bars.filter(pc.equal(data.bars.column("symbol"), split["symbol"]))
    days = [t.date() for t in bars.column("ts").to_pylist()]
    k = days.index(split["ex_date"])
    close = bars.column("close").to_numpy()
    # The raw price drops by about the split ratio across the ex-date.
    assert 0.6 * split["value"] < close[k - 1] / close[k] < 1.6 * split["value"]
