"""Strategy archives unpack only when safe: zip bombs, path traversal and link members are refused whole."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest

from quantfleet.sandbox.archive import ArchiveRefused, unpack_strategy


def _zip(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_good_archive_unpacks_and_names_its_strategy_file(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "s.zip", {"strategy.py": b"def run(ctx): pass\n", "lib/helpers.py": b"X = 1\n"})
    entry = unpack_strategy(archive, tmp_path / "code")
    assert entry == tmp_path / "code" / "strategy.py"
    assert (tmp_path / "code" / "lib" / "helpers.py").read_bytes() == b"X = 1\n"


def test_a_zip_bomb_is_refused_from_its_declared_size_before_anything_is_written(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"strategy.py": b"", "zeros.bin": b"\0" * (8 * 1024 * 1024)})
    assert archive.stat().st_size < 64 * 1024  # a few KiB that would inflate to 8 MiB
    with pytest.raises(ArchiveRefused, match=r"unpacks to 8,388,608 bytes, above the limit of 1,048,576"):
        unpack_strategy(archive, tmp_path / "code", max_bytes=1024 * 1024)
    assert not (tmp_path / "code").exists()


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"" for i in range(30)})
    with pytest.raises(ArchiveRefused, match="30 members, above the limit of 20"):
        unpack_strategy(archive, tmp_path / "code", max_members=20)


def _forge_sizes(path: Path, name: bytes, size: int) -> None:
    """Rewrite the declared uncompressed size of member ``name`` (local header and central directory)."""
    data = bytearray(path.read_bytes())
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_at : at + name_at + len(name)] == name:
                struct.pack_into("<I", data, at + offset, size)
            at = data.find(signature, at + 1)
    path.write_bytes(bytes(data))


def test_a_member_that_inflates_past_its_forged_declared_size_is_stopped(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "forged.zip", {"strategy.py": b"", "zeros.bin": b"\0" * (4 * 1024 * 1024)})
    _forge_sizes(archive, b"zeros.bin", 100)  # declares 100 bytes: passes the size check
    with pytest.raises(ArchiveRefused, match=r"zeros\.bin"):
        unpack_strategy(archive, tmp_path / "code", max_bytes=1024 * 1024)
    written = tmp_path / "code" / "zeros.bin"
    assert not written.exists() or written.stat().st_size <= 1024 * 1024


@pytest.mark.parametrize("name", ["../escape.py", "/etc/cron.d/evil", "lib/../../escape.py", "a\\..\\b.py", "C:/x.py"])
def test_a_member_that_points_outside_is_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "evil.zip", {"strategy.py": b"", name: b"owned"})
    with pytest.raises(ArchiveRefused, match="refused: member"):
        unpack_strategy(archive, tmp_path / "inner" / "code")
    assert not (tmp_path / "escape.py").exists()
    assert not (tmp_path / "inner").exists()


def test_a_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("strategy.py", b"")
        link = zipfile.ZipInfo("metrics.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/shadow")
    with pytest.raises(ArchiveRefused, match=r"'metrics\.json' is a symbolic link"):
        unpack_strategy(archive, tmp_path / "code")
    assert not (tmp_path / "code").exists()


def test_an_archive_without_exactly_one_top_level_python_file_says_how_to_pack_it(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "two.zip", {"a.py": b"", "b.py": b""})
    with pytest.raises(ArchiveRefused, match=r"exactly one \.py file at its top level to run \(found: a\.py, b\.py\)"):
        unpack_strategy(archive, tmp_path / "code")


def test_a_file_that_is_not_a_zip_is_refused_naming_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ArchiveRefused, match="not a readable zip file"):
        unpack_strategy(bad, tmp_path / "code")
