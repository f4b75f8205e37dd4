"""The market-data store on S3 (moto's real server on loopback), read through the local file cache."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake.exceptions import DeltaError

from quantfleet.core.errors import DataError, StorageUnavailable
from quantfleet.core.settings import Settings
from quantfleet.data import FileCache, MarketDataStore, StorageOptions
from quantfleet.data.ingest.base import VendorData
from quantfleet.data.ingest.synthetic import synthetic_bars

# Every test here gets dummy AWS credentials (and no other AWS settings) from the environment.
pytestmark = [pytest.mark.server, pytest.mark.usefixtures("aws_env")]

SYMBOLS = ["AAA", "BBB", "CCC"]
GIB = 1024**3


def _ipc(table: pa.Table) -> bytes:
    """Return ``table`` serialized as an Arrow IPC stream, to compare tables byte for byte."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _cached_files(root: Path) -> list[Path]:
    """Return the data files in a cache folder (not the snapshots' file lists and commit metadata)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and ".quantfleet-" not in p.name)


def _cached_snapshot_files(root: Path) -> list[str]:
    return sorted(p.name.split("-", 1)[1] for p in root.rglob("*.quantfleet-*"))


@pytest.fixture(scope="module")
def market() -> VendorData:
    """Return 2020-2021 daily bars of three symbols, with splits for all and dividends for CCC."""
    return synthetic_bars(SYMBOLS, start=date(2020, 1, 1), end=date(2021, 12, 31))


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    """Return the root of an empty store in a new bucket."""
    return f"s3://{s3_bucket}/research/prices"


@pytest.fixture
def s3_store(s3_url: str, s3_storage: StorageOptions, tmp_path: Path) -> MarketDataStore:
    """Return an empty store on S3, caching data files under ``tmp_path / "cache"``."""
    return MarketDataStore(s3_url, storage=s3_storage, cache=FileCache(tmp_path / "cache", capacity_bytes=GIB))


@pytest.fixture
def filled(s3_store: MarketDataStore, market: VendorData) -> MarketDataStore:
    """Return the S3 store holding the market's bars as snapshot 0 (nothing read yet)."""
    s3_store.ingest_bars([market.bars], frequency="1d", source="test")
    return s3_store


def _reopen(store: MarketDataStore, cache: FileCache | None = None) -> MarketDataStore:
    """Return a new store object on the same root: nothing kept in memory from earlier calls."""
    return MarketDataStore(store.url, storage=store.storage, cache=cache)


# -- the store on S3 ----------------------------------------------------------


def test_ingest_to_s3_reads_back_what_a_local_store_reads(
    s3_store: MarketDataStore, store: MarketDataStore, market: VendorData, s3_client: Any, s3_bucket: str
) -> None:
    remote = s3_store.ingest_bars([market.bars], frequency="1d", source="test")
    local = store.ingest_bars([market.bars], frequency="1d", source="test")

    assert (remote.snapshot, remote.rows, remote.symbols) == (local.snapshot, local.rows, local.symbols)
    log = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="research/prices/bars/_delta_log/")
    assert [o["Key"].rsplit("/", 1)[-1] for o in log["Contents"]] == ["00000000000000000000.json"]
    assert s3_store.catalog() == store.catalog()
    got = s3_store.read_bars(SYMBOLS, start="2020-03-01", end="2021-06-30")
    want = store.read_bars(SYMBOLS, start="2020-03-01", end="2021-06-30")
    assert [f.rsplit("/", 1)[0] for f in got.files_read] == [f.rsplit("/", 1)[0] for f in want.files_read]
    assert _ipc(got.table) == _ipc(want.table)


def test_snapshots_on_s3_keep_their_history_and_pinned_reads(s3_store: MarketDataStore, market: VendorData) -> None:
    ts = market.bars.column("ts")
    first_year = market.bars.filter(pc.less(ts, pa.scalar(1_609_459_200_000_000, pa.timestamp("us", tz="UTC"))))
    second_year = market.bars.filter(pc.invert(pc.is_in(ts, first_year.column("ts"))))
    s3_store.ingest_bars([first_year], frequency="1d", source="2020")
    pinned = s3_store.read_bars(SYMBOLS).table
    s3_store.ingest_bars([second_year], frequency="1d", source="2021")
    fix = s3_store.read_bars("BBB", start="2021-03-01", end="2021-03-31").table.drop_columns(["symbol"])
    fix = fix.add_column(0, "symbol", pa.array(["BBB"] * fix.num_rows))
    for name in ("open", "high", "low", "close"):
        fix = fix.set_column(fix.column_names.index(name), name, pc.multiply(fix.column(name), 2.0))
    s3_store.ingest_bars([fix], frequency="1d", mode="upsert", source="fix")

    history = _reopen(s3_store).snapshots()
    assert [(s.id, s.operation, s.source) for s in history] == [
        (2, "ingest", "fix"),
        (1, "ingest", "2021"),
        (0, "ingest", "2020"),
    ]
    assert history[-1].rows_added == first_year.num_rows
    assert _ipc(_reopen(s3_store).read_bars(SYMBOLS, snapshot=0).table) == _ipc(pinned)
    march = s3_store.read_bars("BBB", start="2021-03-01", end="2021-03-31")
    assert march.table.column("close").equals(fix.column("close"))
    before = s3_store.read_bars("BBB", start="2021-03-01", end="2021-03-31", snapshot=1)
    assert not before.table.column("close").equals(fix.column("close"))


def _keys(s3_client: Any, bucket: str, prefix: str) -> set[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_a_failed_ingest_on_s3_commits_nothing_and_deletes_its_uploads(
    filled: MarketDataStore, market: VendorData, s3_client: Any, s3_bucket: str
) -> None:
    before = _keys(s3_client, s3_bucket, "research/prices/")
    pinned = _ipc(filled.read_bars(SYMBOLS).table)
    minutes = synthetic_bars(["DDD"], start=date(2022, 1, 1), end=date(2022, 4, 30), frequency="1m").bars

    def batches() -> Iterator[pa.Table]:
        yield minutes  # four months: three uploaded before the next batch arrives
        raise OSError("the vendor hung up")

    with pytest.raises(OSError, match="hung up"):
        filled.ingest_bars(batches(), frequency="1m", source="halfway")
    assert _keys(s3_client, s3_bucket, "research/prices/") == before
    other = _reopen(filled)
    assert other.latest() == 0
    assert _ipc(other.read_bars(SYMBOLS).table) == pinned

    result = other.ingest_bars([minutes], frequency="1m", source="again")
    assert result.snapshot == 1
    assert [s.files for s in other.catalog() if s.symbol == "DDD"] == [4]
    april = other.read_bars("DDD", start="2022-04-01", end="2022-04-30", frequency="1m")
    assert len(april.files_read) == 1
    assert "/month=4/" in april.files_read[0]
    assert len(april) == pc.sum(pc.equal(pc.month(minutes.column("ts")), 4)).as_py()


def test_tags_live_in_tags_json_on_s3(
    filled: MarketDataStore, market: VendorData, s3_client: Any, s3_bucket: str
) -> None:
    filled.ingest_instruments(market.instruments)  # snapshot 1
    assert filled.tag("eod-2021-12-31", 0) == 0
    assert filled.tag("latest") == 1

    obj = s3_client.get_object(Bucket=s3_bucket, Key="research/prices/_quantfleet/tags.json")
    assert json.loads(obj["Body"].read()) == {"eod-2021-12-31": {"snapshot": 0}, "latest": {"snapshot": 1}}
    other = _reopen(filled)  # as another process would see them
    assert other.tags() == {"eod-2021-12-31": 0, "latest": 1}
    assert [s.tags for s in other.snapshots()] == [("latest",), ("eod-2021-12-31",)]
    assert _ipc(other.read_bars("AAA", snapshot="eod-2021-12-31").table) == _ipc(
        other.read_bars("AAA", snapshot=0).table
    )
    with pytest.raises(DataError, match="--force"):
        other.tag("latest", 0)
    other.tag("latest", 0, force=True)
    assert filled.tags()["latest"] == 0


def test_corporate_actions_and_adjusted_reads_on_s3_match_local(
    filled: MarketDataStore, store: MarketDataStore, market: VendorData
) -> None:
    store.ingest_bars([market.bars], frequency="1d", source="test")
    assert filled.ingest_corporate_actions(market.actions) == store.ingest_corporate_actions(market.actions) == 1

    assert filled.corporate_actions().equals(store.corporate_actions())
    assert filled.corporate_actions(0).num_rows == 0
    for adjustment in ("raw", "splits", "all"):
        got = filled.read_bars(SYMBOLS, adjustment=adjustment)
        want = store.read_bars(SYMBOLS, adjustment=adjustment)
        assert _ipc(got.table) == _ipc(want.table), adjustment
    raw = filled.read_bars("AAA").table.column("close")
    assert not filled.read_bars("AAA", adjustment="splits").table.column("close").equals(raw)
    before_actions = filled.read_bars("AAA", adjustment="splits", snapshot=0).table.column("close")
    assert before_actions.equals(raw)


def test_store_from_settings_reads_s3_through_the_cache(
    s3_url: str, s3_endpoint: str, tmp_path: Path, market: VendorData
) -> None:
    settings = Settings(data_url=s3_url, s3_endpoint_url=s3_endpoint, cache_dir=tmp_path / "cache")
    store = MarketDataStore.from_settings(settings)
    store.ingest_bars([market.bars], frequency="1d", source="test")

    bars = store.read_bars("CCC")
    assert len(bars) == market.bars.filter(pc.equal(market.bars.column("symbol"), "CCC")).num_rows
    assert len(_cached_files(tmp_path / "cache")) == len(bars.files_read)
    assert _cached_snapshot_files(tmp_path / "cache") == ["00000000000000000000.quantfleet-files-v1.parquet"]


# -- the local cache ----------------------------------------------------------


def test_first_read_downloads_into_the_cache_and_the_second_hits_it(filled: MarketDataStore, tmp_path: Path) -> None:
    cache = filled.cache
    assert cache is not None
    first = filled.read_bars(SYMBOLS)
    n = len(first.files_read)
    assert n == 6  # one file per symbol-year
    assert (cache.misses, cache.hits) == (n, 0)
    files = _cached_files(tmp_path / "cache")
    assert len(files) == n
    assert not [f for f in files if f.name.endswith(".part")]
    assert cache.size_bytes() == sum(f.stat().st_size for f in (tmp_path / "cache").rglob("*") if f.is_file())

    second = filled.read_bars(SYMBOLS)
    assert (cache.misses, cache.hits) == (n, n)
    assert _ipc(second.table) == _ipc(first.table)
    direct = _reopen(filled).read_bars(SYMBOLS)  # no cache: straight from S3
    assert _ipc(direct.table) == _ipc(first.table)


def test_a_job_on_a_warm_worker_reads_no_delta_log(
    filled: MarketDataStore, market: VendorData, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """Prove it by breaking the log after the first read: a fresh store on the same cache still reads."""
    filled.ingest_corporate_actions(market.actions)  # snapshot 1 points at a corporate-actions version
    cache = FileCache(tmp_path / "worker-cache", capacity_bytes=GIB)
    first = _reopen(filled, cache)
    want = first.read_bars("AAA", snapshot=1, adjustment="splits")
    assert first.corporate_actions(1).num_rows > 0
    assert _cached_snapshot_files(tmp_path / "worker-cache") == [
        "00000000000000000001.quantfleet-commit-v1.json",
        "00000000000000000001.quantfleet-files-v1.parquet",
    ]
    log = "research/prices/bars/_delta_log/"
    for key in _keys(s3_client, s3_bucket, log):
        if key.endswith(".json"):  # still there (a pinned snapshot's commit is checked), but unreadable
            s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"not a delta log")
    job = _reopen(filled, cache)  # a new child process on the same worker
    got = job.read_bars("AAA", snapshot=1, adjustment="splits")
    assert _ipc(got.table) == _ipc(want.table)
    assert [s.symbol for s in job.catalog(1)] == SYMBOLS
    with pytest.raises(DeltaError, match="Json error"):
        _reopen(filled).read_bars("AAA", snapshot=1)  # without the cache the log is read, and broken


def _root_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "cache").write_text("not a folder")
    return tmp_path / "cache"


def _root_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "blocker").write_text("not a folder")
    return tmp_path / "blocker" / "cache"


def _root_under_a_read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder / "cache"
    pytest.skip("this user writes into read-only folders (root); the file-in-the-way cases cover the fallback")


@pytest.mark.parametrize(
    "unusable",
    [_root_is_a_file, _root_under_a_file, _root_under_a_read_only_folder],
    ids=["root-is-a-file", "root-under-a-file", "root-under-read-only-folder"],
)
def test_unusable_cache_folder_falls_back_to_direct_reads(
    filled: MarketDataStore, tmp_path: Path, unusable: Callable[[Path], Path]
) -> None:
    expected = _reopen(filled).read_bars(SYMBOLS, start="2021-01-01")
    cache = FileCache(unusable(tmp_path), capacity_bytes=GIB)
    store = _reopen(filled, cache)

    with pytest.warns(RuntimeWarning, match="QUANTFLEET_CACHE_DIR") as caught:
        got = store.read_bars(SYMBOLS, start="2021-01-01")
    assert len(caught) == 1  # one warning, not one per file
    assert _ipc(got.table) == _ipc(expected.table)
    assert (cache.hits, cache.misses) == (0, 0)
    again = store.read_bars(SYMBOLS, start="2021-01-01")  # no second warning (warnings are errors here)
    assert _ipc(again.table) == _ipc(expected.table)


# -- failures -----------------------------------------------------------------

ENDPOINT_FAILURES: dict[str, Callable[[MarketDataStore], object]] = {
    "latest": lambda s: s.latest(),
    "read": lambda s: s.read_bars("AAA"),
    "snapshots": lambda s: s.snapshots(),
    "tags": lambda s: s.tags(),
    "ingest": lambda s: s.ingest_bars(
        [synthetic_bars(["AAA"], start=date(2024, 1, 1), end=date(2024, 1, 31)).bars], frequency="1d"
    ),
}


@pytest.mark.parametrize("operation", list(ENDPOINT_FAILURES))
def test_unreachable_endpoint_raises_storage_unavailable_quickly(
    operation: str, closed_endpoint: str, tmp_path: Path
) -> None:
    endpoint = closed_endpoint
    store = MarketDataStore(
        "s3://market/prices",
        storage=StorageOptions(endpoint_url=endpoint),  # the default timeouts and retries
        cache=FileCache(tmp_path / "cache", capacity_bytes=GIB),
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as info:
        ENDPOINT_FAILURES[operation](store)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert endpoint in message
    assert "QUANTFLEET_S3_ENDPOINT_URL" in message
    assert "\x1b[" not in message  # no terminal colour codes from delta-rs


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Return the URL of a server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # the kernel completes handshakes; nobody reads the requests
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("operation", ["latest", "tags"])
def test_silent_endpoint_times_out_as_configured(operation: str, silent_endpoint: str) -> None:
    storage = StorageOptions(endpoint_url=silent_endpoint, timeout_s=0.5, max_retries=1)
    store = MarketDataStore("s3://market/prices", storage=storage)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="QUANTFLEET_S3_ENDPOINT_URL") as info:
        ENDPOINT_FAILURES[operation](store)
    assert time.monotonic() - started < 10
    assert silent_endpoint in str(info.value)


@pytest.mark.parametrize("operation", ["latest", "read", "snapshots", "ingest"])
def test_missing_bucket_names_the_bucket_and_how_to_create_it(
    operation: str, s3_storage: StorageOptions, s3_endpoint: str, s3_client: Any
) -> None:
    store = MarketDataStore("s3://no-such-bucket/prices", storage=s3_storage)
    with pytest.raises(StorageUnavailable) as info:
        ENDPOINT_FAILURES[operation](store)
    message = str(info.value)
    assert "bucket 'no-such-bucket'" in message
    assert "does not exist" in message
    assert f"aws s3 mb s3://no-such-bucket --endpoint-url {s3_endpoint}" in message
    assert "no-such-bucket" not in [b["Name"] for b in s3_client.list_buckets()["Buckets"]]
