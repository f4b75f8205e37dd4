"""The data CLI as a user runs it: a real process, real files, exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CSV = """Date,Open,High,Low,Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,82488700
2024-01-03,184.22,185.88,183.43,184.25,58414500
2024-01-04,182.15,183.09,180.88,181.91,71983600
"""


def qf(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTFLEET_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.app", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "AAPL.csv"
    path.write_text(CSV)
    return path


def test_ingest_ls_tag_snapshots_show(tmp_path: Path, csv_file: Path) -> None:
    done = qf(tmp_path, "data", "ingest", "files", str(csv_file), "--tz", "America/New_York")
    assert done.returncode == 0, done.stderr
    assert "snapshot 0" in done.stdout
    assert "3 bars" in done.stdout
    assert "files" in done.stderr  # the progress bar
    ls = qf(tmp_path, "data", "ls")
    assert ls.returncode == 0
    assert "AAPL" in ls.stdout
    assert "2024-01-02" in ls.stdout
    assert "2024-01-04" in ls.stdout
    tag = qf(tmp_path, "data", "tag", "first-load", "0")
    assert tag.returncode == 0
    snaps = qf(tmp_path, "data", "snapshots")
    assert "first-load" in snaps.stdout
    show = qf(tmp_path, "data", "show", "aapl", "--snapshot", "first-load")
    assert show.returncode == 0
    assert "185.6400" in show.stdout


def test_bad_input_exits_2_with_the_fix(tmp_path: Path, csv_file: Path) -> None:
    bad = tmp_path / "MSFT.csv"
    bad.write_text(CSV.replace("183.89", "190.00"))  # low above high
    done = qf(tmp_path, "data", "ingest", "files", str(bad))
    assert done.returncode == 2
    assert "high < low" in done.stderr or "outside the high-low range" in done.stderr
    assert "Traceback" not in done.stderr
    missing = qf(tmp_path, "data", "ls")
    assert missing.returncode == 2
    assert "quantfleet data ingest" in missing.stderr


def test_unknown_snapshot_and_symbol(tmp_path: Path, csv_file: Path) -> None:
    qf(tmp_path, "data", "ingest", "files", str(csv_file))
    done = qf(tmp_path, "data", "ls", "--snapshot", "5")
    assert done.returncode == 2
    assert "snapshot 5 does not exist" in done.stderr
    done = qf(tmp_path, "data", "show", "AAPX")
    assert done.returncode == 2
    assert "did you mean AAPL" in done.stderr


def test_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "QUANTFLEET_CACHE_THRESHOLD": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.app", "data", "ls"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2
    assert "QUANTFLEET_CACHE_THRESHOLD" in done.stderr
