"""The versioned store: snapshots, corrections, tags, failed ingests, pruning, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quantfleet.core.errors import (
    DataError,
    InvalidBarsError,
    NoDataError,
    OverlappingBarsError,
    SnapshotNotFound,
    UnknownSymbolError,
)
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars


def _bars(symbols: list[str], start: date, end: date, freq: str = "1d", seed: int = 1) -> pa.Table:
    return synthetic_bars(symbols, start=start, end=end, frequency=freq, seed=seed, actions=False).bars


def _read_all(store: MarketDataStore, snapshot: int | str | None = None, **kw: object) -> pa.Table:
    return store.read_bars(["AAA", "BBB", "CCC"], snapshot=snapshot, **kw).table  # type: ignore[arg-type]


def test_ingest_then_read_returns_exactly_the_bars(store: MarketDataStore) -> None:
    bars = _bars(["AAA", "BBB"], date(2021, 1, 1), date(2021, 6, 30))
    result = store.ingest_bars([bars], frequency="1d", source="test")
    assert result.snapshot == 0
    assert result.rows == bars.num_rows
    assert result.symbols == ("AAA", "BBB")
    got = store.read_bars(["AAA", "BBB"]).table
    expected = bars.sort_by([("symbol", "ascending"), ("ts", "ascending")])
    assert got.column("symbol").cast(pa.string()).equals(expected.column("symbol"))
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert got.column(name).equals(expected.column(name)), name


def test_catalog_reports_ranges_and_row_counts(daily_store: MarketDataStore) -> None:
    catalog = daily_store.catalog()
    assert [s.symbol for s in catalog] == ["AAA", "BBB", "CCC"]
    aaa = catalog[0]
    assert aaa.first.date() == date(2020, 1, 2)
    assert aaa.last.date() == date(2022, 12, 30)
    assert aaa.rows == len(daily_store.read_bars("AAA"))
    assert aaa.files == 3  # one file per symbol-year of daily bars


def test_pinned_snapshot_survives_corrections_and_deletions(daily_store: MarketDataStore) -> None:
    before = _read_all(daily_store, 0)
    # A correction: the same bars with prices doubled, upserted.
    fix = daily_store.read_bars("BBB", start="2021-03-01", end="2021-03-31").table.drop_columns(["symbol"])
    fix = fix.add_column(0, "symbol", pa.array(["BBB"] * fix.num_rows))
    for name in ("open", "high", "low", "close"):
        fix = fix.set_column(fix.column_names.index(name), name, pc.multiply(fix.column(name), 2.0))
    corrected = daily_store.ingest_bars([fix], frequency="1d", mode="upsert", source="fix")
    deleted = daily_store.delete_bars(["CCC"], frequency="1d")
    assert (corrected.snapshot, deleted) == (1, 2)

    assert _read_all(daily_store, 0).equals(before)  # the pinned snapshot reads the same bytes
    march = daily_store.read_bars("BBB", start="2021-03-01", end="2021-03-31", snapshot=1).table
    assert pc.all(pc.equal(march.column("close"), fix.column("close"))).as_py()
    assert len(daily_store.read_bars("BBB", snapshot=1)) == len(daily_store.read_bars("BBB", snapshot=0))
    with pytest.raises(UnknownSymbolError, match="CCC"):
        daily_store.read_bars("CCC", snapshot=2)
    assert len(daily_store.read_bars("CCC", snapshot=1)) > 0


def test_failed_ingest_halfway_leaves_previous_snapshot_intact(daily_store: MarketDataStore) -> None:
    before = _read_all(daily_store)
    good = _bars(["DDD"], date(2023, 1, 1), date(2023, 3, 31))
    bad = _bars(["EEE"], date(2023, 1, 1), date(2023, 3, 31))
    bad = bad.set_column(bad.column_names.index("low"), "low", pc.multiply(bad.column("high"), 1.5))
    batches_read = []

    def batches() -> Iterator[pa.Table]:
        for table in (good, bad, good):
            batches_read.append(table)
            yield table

    with pytest.raises(InvalidBarsError, match="high < low"):
        daily_store.ingest_bars(batches(), frequency="1d", source="halfway")
    assert len(batches_read) == 2  # the first batch had been streamed to the writer
    assert daily_store.latest() == 0
    assert _read_all(daily_store).equals(before)
    with pytest.raises(UnknownSymbolError):
        daily_store.read_bars("DDD")


def test_source_failing_halfway_commits_nothing(daily_store: MarketDataStore) -> None:
    def batches() -> Iterator[pa.Table]:
        yield _bars(["DDD"], date(2023, 1, 1), date(2023, 3, 31))
        raise OSError("network dropped")

    with pytest.raises(OSError, match="network dropped"):
        daily_store.ingest_bars(batches(), frequency="1d")
    assert daily_store.latest() == 0
    assert [s.symbol for s in daily_store.catalog()] == ["AAA", "BBB", "CCC"]


def test_append_refuses_overlap_and_names_the_fix(daily_store: MarketDataStore) -> None:
    again = _bars(["AAA"], date(2022, 12, 1), date(2023, 1, 31))
    with pytest.raises(OverlappingBarsError, match="--mode upsert") as err:
        daily_store.ingest_bars([again], frequency="1d")
    assert "AAA" in str(err.value)
    assert daily_store.latest() == 0


def test_append_after_stored_range_adds_a_snapshot(daily_store: MarketDataStore) -> None:
    later = _bars(["AAA"], date(2023, 1, 1), date(2023, 1, 31))
    result = daily_store.ingest_bars([later], frequency="1d")
    assert result.snapshot == 1
    assert daily_store.catalog()[0].last.date() == date(2023, 1, 31)
    assert daily_store.catalog(0)[0].last.date() == date(2022, 12, 30)


def test_duplicates_across_batches_are_refused(store: MarketDataStore) -> None:
    bars = _bars(["AAA"], date(2021, 1, 1), date(2021, 1, 31))
    with pytest.raises(InvalidBarsError, match="duplicate"):
        store.ingest_bars([bars, bars.slice(3, 2)], frequency="1d")
    assert store.latest() is None


def test_empty_input_is_refused(store: MarketDataStore) -> None:
    empty = _bars(["AAA"], date(2021, 1, 1), date(2021, 1, 31)).slice(0, 0)
    with pytest.raises(NoDataError, match="no bars"):
        store.ingest_bars([empty], frequency="1d")


def test_tags_name_snapshots(daily_store: MarketDataStore) -> None:
    daily_store.tag("eod-2022-12-30")
    daily_store.ingest_bars([_bars(["AAA"], date(2023, 1, 1), date(2023, 1, 31))], frequency="1d")
    assert daily_store.resolve("eod-2022-12-30") == 0
    assert daily_store.read_bars("AAA", snapshot="eod-2022-12-30").table.equals(
        daily_store.read_bars("AAA", snapshot=0).table
    )
    with pytest.raises(DataError, match="--force"):
        daily_store.tag("eod-2022-12-30", 1)
    assert daily_store.tag("eod-2022-12-30", 1, force=True) == 1
    listed = {s.id: s.tags for s in daily_store.snapshots()}
    assert listed[1] == ("eod-2022-12-30",)
    with pytest.raises(SnapshotNotFound, match="quantfleet data tag"):
        daily_store.resolve("nope")
    with pytest.raises(DataError, match="invalid tag name"):
        daily_store.tag("1 bad")


def test_unknown_snapshot_names_the_range_and_the_command(daily_store: MarketDataStore) -> None:
    with pytest.raises(SnapshotNotFound, match=r"snapshot 7 does not exist .*0 to 0.*quantfleet data snapshots"):
        daily_store.read_bars("AAA", snapshot=7)


def test_empty_store_says_how_to_ingest(store: MarketDataStore) -> None:
    with pytest.raises(NoDataError, match="quantfleet data ingest"):
        store.read_bars("AAA")


def test_unknown_symbol_suggests_close_matches(daily_store: MarketDataStore) -> None:
    with pytest.raises(UnknownSymbolError, match=r"AAB \(did you mean AAA"):
        daily_store.read_bars("AAB")


def test_range_without_data_names_what_is_held(daily_store: MarketDataStore) -> None:
    with pytest.raises(NoDataError, match=r"AAA 2020-01-02\.\.2022-12-30"):
        daily_store.read_bars("AAA", start="2024-01-01", end="2024-02-01")
    with pytest.raises(DataError, match="swap"):
        daily_store.read_bars("AAA", start="2022-01-01", end="2021-01-01")
    with pytest.raises(DataError, match="unknown field"):
        daily_store.read_bars("AAA", fields=["vwap"])


def test_dates_are_inclusive_and_fields_selectable(daily_store: MarketDataStore) -> None:
    data = daily_store.read_bars("AAA", start="2021-01-04", end="2021-01-08", fields=["close"])
    assert data.table.column_names == ["symbol", "ts", "close"]
    days = [t.date() for t in data.table.column("ts").to_pylist()]
    assert days == [date(2021, 1, d) for d in (4, 5, 6, 7, 8)]


def _data_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "bars").rglob("*.parquet"))


def test_read_touches_only_the_needed_partitions(store: MarketDataStore, tmp_path: Path) -> None:
    """Prove pruning by deleting every file the read must not touch: it still succeeds."""
    store.ingest_bars([_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 6, 30), "1m")], frequency="1m")
    store.ingest_bars([_bars(["AAA", "BBB"], date(2023, 1, 1), date(2024, 12, 31))], frequency="1d")
    all_files = _data_files(tmp_path / "data")
    assert len(all_files) == 2 * 6 + 2 * 2
    data = store.read_bars("AAA", start="2024-03-05", end="2024-03-05", frequency="1m")
    assert len(data.files_read) == 1
    assert "frequency=1m/symbol=AAA/year=2024/month=3/" in data.files_read[0]
    needed = (tmp_path / "data" / "bars" / data.files_read[0]).resolve()
    for path in all_files:
        if path.resolve() != needed:
            path.unlink()
    fresh = MarketDataStore(store.url)  # nothing cached in memory
    again = fresh.read_bars("AAA", start="2024-03-05", end="2024-03-05", frequency="1m")
    assert again.table.equals(data.table)
    assert len(again) == 390  # one regular session of minutes
    with pytest.raises(FileNotFoundError):
        fresh.read_bars("AAA", start="2024-04-01", end="2024-04-01", frequency="1m")


def test_stats_prune_files_of_a_partition_written_by_several_ingests(store: MarketDataStore) -> None:
    bars = _bars(["AAA"], date(2024, 1, 1), date(2024, 3, 31))
    months = pc.month(bars.column("ts"))
    for month in (1, 2, 3):
        store.ingest_bars([bars.filter(pc.equal(months, month))], frequency="1d")
    assert store.catalog()[0].files == 3  # three appends to the same daily partition
    data = store.read_bars("AAA", start="2024-02-05", end="2024-02-09")
    assert len(data.files_read) == 1
    assert len(data) == 5


def test_rows_come_back_sorted_after_out_of_order_ingests(store: MarketDataStore) -> None:
    bars = _bars(["AAA"], date(2024, 1, 1), date(2024, 3, 31))
    late, early = bars.slice(30), bars.slice(0, 30)
    store.ingest_bars([late], frequency="1d")
    store.ingest_bars([early], frequency="1d")
    ts = store.read_bars("AAA").table.column("ts").cast(pa.int64()).to_numpy()
    assert np.all(np.diff(ts) > 0)
    assert len(ts) == bars.num_rows


def test_a_store_sees_snapshots_written_by_another_process(daily_store: MarketDataStore) -> None:
    reader = MarketDataStore(daily_store.url)
    assert reader.latest() == 0
    writer = MarketDataStore(daily_store.url)
    writer.ingest_bars([_bars(["AAA"], date(2023, 1, 1), date(2023, 1, 31))], frequency="1d")
    assert reader.latest() == 1
    assert reader.catalog()[0].last.date() == date(2023, 1, 31)
