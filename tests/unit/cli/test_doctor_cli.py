"""``quantfleet doctor`` and ``quantfleet db``: run as a user runs them, on real databases and stores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from quantfleet.cli.app import app
from quantfleet.cli.common import state
from quantfleet.core.settings import load_settings
from quantfleet.store import Database
from quantfleet.testing.databases import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START, head_revision, postgres_schema
from quantfleet.testing.jobs import tiny_market
from quantfleet.testing.servers import require_server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("QUANTFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QUANTFLEET_SANDBOX", "trusted")  # as the suite's workers; the sandbox tests unset it
    monkeypatch.setenv("COLUMNS", "1000")  # one line per row: nothing wraps
    state._store = None
    yield tmp_path / "home"
    state._store = None


def qf(*args: str) -> tuple[int, str]:
    state._store = None  # each invocation is a new process for a user
    done = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return done.exit_code, done.output


def row(output: str, check: str) -> str:
    """Return the table rows of one check (its first line and its wrapped continuation lines)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"│ {check} "):
            block = [line]
            for more in lines[i + 1 :]:
                if more.startswith(("├", "└")):
                    break
                block.append(more)
            return " ".join(" ".join(part.split()) for part in block)
    raise AssertionError(f"no row {check!r} in:\n{output}")


def test_fresh_install_fails_on_the_schema_and_the_data_and_names_both_fixes(home: Path) -> None:
    code, out = qf("doctor")
    assert code == 1
    assert "FAIL" in row(out, "database")
    assert "quantfleet db upgrade" in row(out, "database")
    assert "FAIL" in row(out, "data")
    assert "quantfleet data ingest synthetic" in row(out, "data")
    assert "ok" in row(out, "python")
    assert "ok" in row(out, "object store")
    assert "skip" in row(out, "broker")
    assert "2 check(s) failed: database, data" in " ".join(out.split())


def test_after_upgrade_and_ingest_every_check_passes(home: Path) -> None:
    code, out = qf("db", "upgrade")
    assert code == 0, out
    assert f"migrated (empty) -> {head_revision()}" in out
    code, out = qf("db", "upgrade")
    assert code == 0
    assert f"already at revision {head_revision()}" in out
    tiny_market(load_settings())
    code, out = qf("doctor")
    assert code == 0, out
    assert "all checks passed" in out
    assert f"at revision {head_revision()}" in row(out, "database")
    assert "snapshot" in row(out, "data")


def _stamp(url: str, revision: str) -> None:
    db = Database(url)
    with db.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    db.dispose()


def test_a_schema_from_a_newer_quantfleet_is_refused_with_the_fix(home: Path) -> None:
    assert qf("db", "upgrade")[0] == 0
    url = load_settings().resolved_database_url
    _stamp(url, "9999_from_the_future")
    code, out = qf("db", "current")
    assert code == 1
    assert "9999_from_the_future" in out
    assert "a newer quantfleet migrated it" in " ".join(out.split())
    done = subprocess.run(  # never "downgrade" by accident: refused (a user error, exit 2), nothing changed
        [sys.executable, "-m", "quantfleet.cli.app", "db", "upgrade"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "pip install -U quantfleet" in " ".join(done.stderr.split())
    assert Database(url).revision() == "9999_from_the_future"
    code, out = qf("doctor")
    assert code == 1
    assert "newer quantfleet" in row(out, "database")


def test_an_older_schema_says_to_migrate(home: Path) -> None:
    url = load_settings().resolved_database_url
    Database(url).upgrade("0001")
    code, out = qf("db", "current")
    assert code == 1
    assert "behind" in out
    assert "quantfleet db upgrade" in out
    assert qf("db", "upgrade")[0] == 0
    assert qf("db", "current")[0] == 0


def test_unreachable_broker_and_unwritable_object_store_fail_with_their_fixes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QUANTFLEET_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("QUANTFLEET_OBJECTS_URL", str(blocker / "objects"))
    code, out = qf("doctor")
    assert code == 1
    assert "FAIL" in row(out, "broker")
    assert f"127.0.0.1:{port}" in row(out, "broker")
    assert "start the broker" in row(out, "broker")
    assert "FAIL" in row(out, "object store")
    assert "QUANTFLEET_OBJECTS_URL" in row(out, "object store")
    assert "ok" in row(out, "packages [celery]")  # the broker's extra is checked because it is configured


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None, reason="the sandbox needs root and bwrap")
def test_sandbox_self_test_runs_when_workers_sandbox(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_WORKER_LAUNCHER", "bubblewrap")
    _code, out = qf("doctor")
    assert "sandbox self-test passed" in row(out, "sandbox")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None, reason="the sandbox needs root and bwrap")
def test_the_default_sandbox_is_self_tested(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTFLEET_SANDBOX")  # on by default: workers sandbox, so doctor checks it
    _code, out = qf("doctor")
    assert "sandbox self-test passed" in row(out, "sandbox")


def test_a_sandbox_that_cannot_reach_market_data_on_s3_fails_with_the_fixes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.delenv("QUANTFLEET_SANDBOX")
    monkeypatch.setenv("QUANTFLEET_DATA_URL", "s3://market/prices")
    monkeypatch.setenv("QUANTFLEET_S3_ENDPOINT_URL", endpoint)  # nothing listens: the data check fails fast
    code, out = qf("doctor")
    assert code == 1
    sandbox = row(out, "sandbox")
    assert "FAIL" in sandbox
    assert "s3://market/prices" in sandbox
    assert "no network" in sandbox
    assert "QUANTFLEET_DATA_URL=/path" in sandbox
    assert "QUANTFLEET_SANDBOX=trusted" in sandbox


def test_sandbox_is_a_warning_when_workers_do_not_sandbox(home: Path) -> None:
    _code, out = qf("doctor")
    assert "warn" in row(out, "sandbox")
    assert "QUANTFLEET_WORKER_LAUNCHER=bubblewrap" in row(out, "sandbox")


@pytest.mark.server
def test_postgres_schema_is_checked_and_migrated(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_server("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START)
    with postgres_schema() as url:
        monkeypatch.setenv("QUANTFLEET_DATABASE_URL", url)
        code, out = qf("doctor")
        assert code == 1
        assert "has no schema yet" in row(out, "database")
        assert "ok" in row(out, "packages [postgres]")
        assert qf("db", "upgrade")[0] == 0
        tiny_market(load_settings())
        code, out = qf("doctor")
        assert code == 0, out
        assert "postgresql+psycopg://postgres@127.0.0.1:5432/test" in row(out, "database")
