"""Appends write partitions as they complete and commit once: bounded memory, delta-rs's stats, no orphans."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from quantfleet.core.errors import InvalidBarsError
from quantfleet.core.types import Frequency
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.data.schema import PARTITION_COLUMNS
from quantfleet.data.store import TABLE_CONFIG, _to_stored
from quantfleet.data.validate import OffSession, check_bars, coerce_bars


def _bars(symbols: list[str], start: date, end: date, freq: str = "1d", seed: int = 1) -> pa.Table:
    return synthetic_bars(symbols, start=start, end=end, frequency=freq, seed=seed, actions=False).bars


def _parquet_files(root: Path) -> set[Path]:
    return set(root.rglob("*.parquet"))


def _by_partition(actions: pa.Table) -> pa.Table:
    keys = [("partition.symbol", "ascending"), ("partition.year", "ascending"), ("partition.month", "ascending")]
    return actions.sort_by(keys)


def test_add_actions_carry_the_statistics_delta_rs_writes(store: MarketDataStore, tmp_path: Path) -> None:
    bars = _bars(["AAA", "^IDX"], date(2023, 11, 1), date(2024, 2, 29), "1m")
    store.ingest_bars([bars], frequency="1m")
    ours = _by_partition(pa.table(store.bars_table(store.resolve()).get_add_actions(flatten=True)))
    minute = Frequency.MINUTE_1
    checked, _ = check_bars(coerce_bars(bars), frequency=minute, calendar="XNYS", off_session=OffSession.ERROR)
    write_deltalake(
        str(tmp_path / "theirs"),
        _to_stored(checked, minute),
        partition_by=list(PARTITION_COLUMNS),
        configuration=TABLE_CONFIG,
    )
    theirs = _by_partition(pa.table(DeltaTable(str(tmp_path / "theirs")).get_add_actions(flatten=True)))
    assert ours.num_rows == theirs.num_rows == 2 * 4  # one file per symbol-month
    assert ours.schema == theirs.schema
    for name in ours.column_names:
        if name in ("path", "size_bytes", "modification_time"):
            continue  # a new uuid per file; pyarrow and delta-rs encode pages slightly differently
        assert ours.column(name).equals(theirs.column(name)), name
    folders = [p.rsplit("/", 1)[0] for p in ours.column("path").to_pylist()]
    assert folders == [p.rsplit("/", 1)[0] for p in theirs.column("path").to_pylist()]
    assert DeltaTable(store.table_url("bars")).schema() == DeltaTable(str(tmp_path / "theirs")).schema()


def test_a_symbol_whose_folder_name_is_escaped_reads_back(store: MarketDataStore) -> None:
    bars = _bars(["^IDX"], date(2024, 1, 1), date(2024, 3, 31))
    store.ingest_bars([bars], frequency="1d")
    data = store.read_bars("^IDX")
    assert len(data) == bars.num_rows
    assert data.files_read == tuple(p for p in data.files_read if "symbol=%5EIDX/" in p)


def test_a_partition_split_across_batches_is_one_file(store: MarketDataStore) -> None:
    bars = _bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 3, 31), "1m")
    aaa = bars.filter(pc.equal(bars.column("symbol"), "AAA"))
    bbb = bars.filter(pc.equal(bars.column("symbol"), "BBB"))
    half = aaa.num_rows // 2 + 17  # mid-February
    store.ingest_bars([aaa.slice(0, half), aaa.slice(half), bbb], frequency="1m")
    assert [s.files for s in store.catalog()] == [3, 3]
    assert len(store.read_bars("AAA", frequency="1m")) == aaa.num_rows
    assert store.snapshots()[0].rows_added == bars.num_rows


def test_failure_halfway_commits_nothing_and_deletes_what_it_wrote(store: MarketDataStore, tmp_path: Path) -> None:
    store.ingest_bars([_bars(["AAA"], date(2024, 1, 1), date(2024, 3, 31), "1m")], frequency="1m")
    before = _parquet_files(tmp_path / "data")
    log_before = sorted((tmp_path / "data" / "bars" / "_delta_log").iterdir())
    bad = _bars(["CCC"], date(2024, 1, 1), date(2024, 1, 31), "1m")
    bad = bad.set_column(bad.column_names.index("low"), "low", pc.multiply(bad.column("high"), 1.5))

    def batches() -> Iterator[pa.Table]:
        yield _bars(["BBB"], date(2024, 1, 1), date(2024, 6, 30), "1m")  # five months written at once
        yield bad

    with pytest.raises(InvalidBarsError):
        store.ingest_bars(batches(), frequency="1m")
    assert store.latest() == 0
    assert sorted((tmp_path / "data" / "bars" / "_delta_log").iterdir()) == log_before
    assert _parquet_files(tmp_path / "data") == before
    assert [s.symbol for s in MarketDataStore(store.url).catalog()] == ["AAA"]


_PEAK = textwrap.dedent(
    """
    import json, sys, tempfile
    from datetime import date
    from pathlib import Path
    from quantfleet.data import MarketDataStore
    from quantfleet.data.ingest.synthetic import synthetic_bars

    def peak():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    def batches(names):  # one symbol-year of minute bars at a time
        for i, name in enumerate(names):
            yield synthetic_bars([name], start=date(2024, 1, 1), end=date(2024, 12, 31), frequency="1m",
                                 seed=i, actions=False).bars

    with tempfile.TemporaryDirectory() as root:
        store = MarketDataStore(root)
        store.ingest_bars(batches(["W0", "W1"]), frequency="1m")  # imports, pools, the table
        base = peak()
        result = store.ingest_bars(batches([f"S{i:02d}" for i in range(int(sys.argv[1]))]), frequency="1m")
        print(json.dumps({"rows": result.rows, "growth": peak() - base}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_peak_memory_of_an_ingest_does_not_grow_with_its_size() -> None:
    """Twelve symbol-years in one snapshot peak no higher than two (delta-rs's writer held ~170 B per bar)."""
    runs = []
    for symbols in (2, 12):
        out = subprocess.run([sys.executable, "-c", _PEAK, str(symbols)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    extra_rows = runs[1]["rows"] - runs[0]["rows"]
    assert extra_rows > 900_000
    per_bar = (runs[1]["growth"] - runs[0]["growth"]) / extra_rows
    assert per_bar < 40, f"peak memory grew {per_bar:.0f} bytes per extra bar ({runs})"


def test_an_append_of_many_files_writes_a_checkpoint(
    store: MarketDataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("quantfleet.data.store.CHECKPOINT_FILES", 4)
    log = tmp_path / "data" / "bars" / "_delta_log"
    store.ingest_bars([_bars(["AAA"], date(2020, 1, 1), date(2020, 12, 31))], frequency="1d")  # one file: no checkpoint
    store.ingest_bars([_bars(["BBB"], date(2021, 1, 1), date(2021, 12, 31))], frequency="1d")  # one file: none
    files_before = store.files(store.resolve(1))
    store.ingest_bars([_bars(["CCC", "DDD"], date(2021, 1, 1), date(2022, 12, 31))], frequency="1d")  # four files
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == ["00000000000000000002.checkpoint.parquet"]
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == 2
    fresh = MarketDataStore(store.url)
    assert fresh.files(fresh.resolve(2)).num_rows == 1 + 1 + 4
    assert fresh.files(fresh.resolve(1)).sort_by("path").equals(files_before.sort_by("path"))
    assert [s.symbol for s in fresh.catalog()] == ["AAA", "BBB", "CCC", "DDD"]
