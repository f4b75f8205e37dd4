"""The local file cache on its own: local folders stand in for the object store."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pytest

from quantfleet.data import FileCache

LOCAL = fsspec.filesystem("file")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Return an empty folder playing the object store."""
    folder = tmp_path / "remote"
    folder.mkdir()
    return folder


def _put(source: Path, name: str, size: int) -> str:
    """Write ``size`` bytes named ``name`` into the source; return its URL."""
    path = source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode().ljust(size, b"."))
    return str(path)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


def _set_mtime(path: str, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def test_first_fetch_copies_the_file_and_later_fetches_hit(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=10_000)
    url = _put(source, "a.parquet", 100)

    first = cache.fetch(url, LOCAL)
    assert first is not None
    assert Path(first).read_bytes() == Path(url).read_bytes()
    assert Path(first).is_relative_to(tmp_path / "cache")
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.fetch(url, LOCAL) == first
    assert cache.fetch(url, LOCAL) == first
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.size_bytes() == 100
    assert _leftovers(tmp_path / "cache") == []


def test_a_built_entry_is_built_once_and_evicted_like_a_file(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=1_000, threshold=0.5)
    builds: list[str] = []

    def build() -> bytes:
        builds.append("built")
        return b"x" * 300

    key = "s3://bucket/bars/_delta_log/00000000000000000007.quantfleet-files-v1.parquet"
    first = cache.fetch_built(key, build)
    assert first is not None
    assert Path(first).read_bytes() == b"x" * 300
    assert cache.fetch_built(key, build) == first
    assert builds == ["built"]
    assert (cache.hits, cache.misses) == (0, 0)  # the counters count data files only
    _set_mtime(first, 1)
    cache.fetch(_put(source, "b.parquet", 300), LOCAL)  # past the 500-byte threshold: the older entry goes
    assert not Path(first).exists()
    assert cache.fetch_built(key, build) == first
    assert builds == ["built", "built"]


def test_files_with_the_same_name_under_different_urls_are_kept_apart(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=10_000)
    one = _put(source, "symbol=AAA/part-0.parquet", 10)
    two = _put(source, "symbol=BBB/part-0.parquet", 20)

    got_one, got_two = cache.fetch(one, LOCAL), cache.fetch(two, LOCAL)
    assert got_one is not None
    assert got_two is not None
    assert got_one != got_two
    assert Path(got_one).read_bytes() == Path(one).read_bytes()
    assert Path(got_two).read_bytes() == Path(two).read_bytes()


def test_eviction_starts_past_the_threshold_and_removes_least_recently_used_first(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=1_000, threshold=0.5)  # evict past 500 bytes
    urls = [_put(source, f"f{i}", 100) for i in range(1, 6)]
    paths = [cache.fetch(url, LOCAL) for url in urls]
    for age, path in enumerate(paths, start=1):  # f1 oldest ... f5 newest
        assert path is not None
        _set_mtime(path, 1_000_000 + age)
    assert cache.size_bytes() == 500  # at the threshold, not past it: nothing goes
    assert all(Path(p).exists() for p in paths if p)

    assert cache.fetch(urls[0], LOCAL) == paths[0]  # f1 read again: now the most recent
    f6 = cache.fetch(_put(source, "f6", 100), LOCAL)
    survivors = {p for p in (*paths, f6) if p and Path(p).exists()}
    assert survivors == {paths[0], paths[2], paths[3], paths[4], f6}  # only f2 went
    assert cache.size_bytes() == 500

    f7 = cache.fetch(_put(source, "f7", 250), LOCAL)  # 750 bytes: f3, f4, f5 go, oldest first
    survivors = {p for p in (*paths, f6, f7) if p and Path(p).exists()}
    assert survivors == {paths[0], f6, f7}
    assert cache.size_bytes() == 450
    assert (cache.hits, cache.misses) == (1, 7)


def test_a_file_bigger_than_the_threshold_is_still_served(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=1_000, threshold=0.5)
    small = cache.fetch(_put(source, "small", 100), LOCAL)
    url = _put(source, "big", 800)

    big = cache.fetch(url, LOCAL)
    assert big is not None
    assert Path(big).read_bytes() == Path(url).read_bytes()
    assert small is not None
    assert not Path(small).exists()  # evicted to make room


def test_concurrent_fetches_of_one_file_agree_and_leave_no_partial_files(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=100_000_000)
    url = _put(source, "shared.parquet", 5_000_000)

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda _: cache.fetch(url, LOCAL), range(16)))
    assert len(set(paths)) == 1
    assert paths[0] is not None
    assert Path(paths[0]).read_bytes() == Path(url).read_bytes()
    assert cache.hits + cache.misses == 16
    assert _leftovers(tmp_path / "cache") == []


def test_a_missing_source_file_raises_and_leaves_nothing_in_the_cache(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=10_000)
    with pytest.raises(FileNotFoundError):
        cache.fetch(str(source / "gone.parquet"), LOCAL)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def _root_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "cache").write_text("not a folder")
    return tmp_path / "cache"


def _root_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "blocker").write_text("not a folder")
    return tmp_path / "blocker" / "cache"


@pytest.mark.parametrize("unusable", [_root_is_a_file, _root_under_a_file], ids=["root-is-a-file", "under-a-file"])
def test_an_unusable_folder_warns_once_naming_the_setting_and_disables_the_cache(
    source: Path, tmp_path: Path, unusable: Callable[[Path], Path]
) -> None:
    cache = FileCache(unusable(tmp_path), capacity_bytes=10_000)
    url = _put(source, "a.parquet", 100)

    with pytest.warns(RuntimeWarning, match="QUANTFLEET_CACHE_DIR") as caught:
        assert cache.fetch(url, LOCAL) is None
    assert str(cache.root) in str(caught[0].message)
    assert cache.fetch(url, LOCAL) is None  # no second warning: warnings are errors in this suite
    assert (cache.hits, cache.misses) == (0, 0)


def test_a_file_that_cannot_be_placed_is_skipped_with_a_warning(source: Path, tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", capacity_bytes=10_000)
    blocked, fine = _put(source, "blocked.parquet", 100), _put(source, "fine.parquet", 100)
    shard = cache.path_for(blocked).parent
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_text("a file where the folder should be")

    with pytest.warns(RuntimeWarning, match="QUANTFLEET_CACHE_DIR"):
        assert cache.fetch(blocked, LOCAL) is None
    assert _leftovers(tmp_path / "cache") == []
    if cache.path_for(fine).parent != shard:  # the other file still gets cached
        assert cache.fetch(fine, LOCAL) is not None


@pytest.mark.parametrize(("capacity", "threshold"), [(0, 0.8), (100, 0.0), (100, 1.5)])
def test_nonsense_sizes_are_refused(tmp_path: Path, capacity: int, threshold: float) -> None:
    with pytest.raises(ValueError, match="capacity"):
        FileCache(tmp_path, capacity_bytes=capacity, threshold=threshold)
