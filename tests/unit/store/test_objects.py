"""The object store on a local folder and on S3 (moto's real server): atomic writes, listings, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.errors import StorageUnavailable
from quantfleet.data import StorageOptions
from quantfleet.store import ObjectNotFound, ObjectStore


def _exercise(store: ObjectStore) -> None:
    assert not store.exists("code/abc")
    url = store.put("code/abc", b"print(1)\n")
    assert url == f"{store.root}/code/abc"
    assert store.exists("code/abc")
    assert store.get("code/abc") == b"print(1)\n"
    assert store.get_range("code/abc", 6) == b"1)\n"
    store.put("code/abc", b"v2")  # replaced whole
    assert store.get("code/abc") == b"v2"
    store.put("logs/j/1/00002.txt", b"bb")
    store.put("logs/j/1/00001.txt", b"a")
    assert [(o.key, o.size) for o in store.list("logs/j/1")] == [("logs/j/1/00001.txt", 1), ("logs/j/1/00002.txt", 2)]
    assert store.list("logs/none") == []
    store.delete_prefix("logs/j")
    assert store.list("logs/j") == []
    store.delete_prefix("logs/j")  # again: nothing to do
    with pytest.raises(ObjectNotFound, match="code/missing"):
        store.get("code/missing")
    for bad in ("", "/abs", "a/../b", "a//b"):
        with pytest.raises(ValueError, match="bad object key"):
            store.put(bad, b"x")


def test_local_folder(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "objects"))
    _exercise(store)
    assert ObjectStore(f"file://{tmp_path / 'objects'}").get("code/abc") == b"v2"


def test_local_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ObjectStore(str(tmp_path))
    store.put("a/b.txt", b"old")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageUnavailable, match="disk full"):
        store.put("a/b.txt", b"new")
    monkeypatch.undo()
    assert store.get("a/b.txt") == b"old"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt"]  # no temporary file left


def test_put_file(tmp_path: Path) -> None:
    source = tmp_path / "equity.parquet"
    source.write_bytes(b"PAR1" * 1000)
    store = ObjectStore(str(tmp_path / "objects"))
    store.put_file("artifacts/j/1/equity.parquet", source)
    assert store.get("artifacts/j/1/equity.parquet") == source.read_bytes()


@pytest.mark.server
@pytest.mark.usefixtures("aws_env")
def test_s3(s3_bucket: str, s3_storage: StorageOptions, s3_client: Any, tmp_path: Path) -> None:
    url = f"s3://{s3_bucket}/prefix"
    store = ObjectStore(url, fs=s3_storage.filesystem(url))
    _exercise(store)
    source = tmp_path / "x.bin"
    source.write_bytes(b"x" * 10)
    store.put_file("artifacts/x.bin", source)
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["prefix/artifacts/x.bin", "prefix/code/abc"]


@pytest.mark.usefixtures("aws_env")
def test_unreachable_s3_is_storage_unavailable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = "s3://nowhere/prefix"
    options = StorageOptions(endpoint_url=f"http://127.0.0.1:{port}", timeout_s=1, max_retries=0)
    store = ObjectStore(url, fs=options.filesystem(url))
    with pytest.raises(StorageUnavailable, match="QUANTFLEET_OBJECTS_URL"):
        store.put("code/abc", b"x")
