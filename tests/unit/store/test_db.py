"""The metadata database: migrations match the models; SQLite settings; unavailability is an InfrastructureError."""

from __future__ import annotations

import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from quantfleet.core.errors import InfrastructureError
from quantfleet.store import Database, DatabaseUnavailable, upgrade
from quantfleet.store.models import jobs, metadata
from quantfleet.testing.databases import head_revision


def test_migrations_and_models_agree(db_url: str) -> None:
    db = upgrade(db_url)
    try:
        assert db.revision() == head_revision()
        with db.read() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        db.upgrade()  # running it again is a no-op
        with db.read() as conn:
            names = set(sa.inspect(conn).get_table_names())
        tables = {"jobs", "attempts", "job_events", "artifacts", "idempotency_keys", "users", "api_tokens"}
        assert tables | {"alembic_version"} <= names
    finally:
        db.dispose()


def test_a_difference_would_be_caught(db_url: str) -> None:
    db = upgrade(db_url)
    try:
        changed = sa.MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(changed)
        sa.Table("jobs", changed, sa.Column("extra", sa.Integer), extend_existing=True)
        with db.read() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), changed)
        assert [d[0] for d in diff] == ["add_column"]
    finally:
        db.dispose()


def test_documents_are_jsonb_on_postgres(db_url: str) -> None:
    expected = "JSONB" if db_url.startswith("postgresql") else "JSON"
    db = upgrade(db_url)
    try:
        with db.read() as conn:
            types = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("jobs")}
        assert types["spec"] == expected
        assert types["metrics"] == expected
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = upgrade(f"sqlite:///{tmp_path / 'sub' / 'q.db'}")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), db.write() as conn:
            conn.exec_driver_sql(
                "INSERT INTO attempts (job_id, number, worker, state, started_at, heartbeat_at, lease_expires_at) "
                "VALUES ('nope', 1, 'w', 'running', '2026-01-01', '2026-01-01', '2026-01-01')"
            )
    finally:
        db.dispose()


def test_times_come_back_aware_utc(db_url: str) -> None:
    db = upgrade(db_url)
    when = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    try:
        with db.write() as conn:
            conn.execute(
                sa.insert(jobs).values(
                    id="a" * 32,
                    kind="backtest",
                    state="queued",
                    owner="o",
                    priority=0,
                    spec={"k": [1]},
                    spec_hash="0" * 64,
                    attempt=0,
                    submitted_at=when,
                    updated_at=when,
                )
            )
        with db.read() as conn:
            row = conn.execute(sa.select(jobs.c.submitted_at, jobs.c.spec)).one()
        assert row.submitted_at == when
        assert row.submitted_at.tzinfo is not None
        assert row.spec == {"k": [1]}
        with pytest.raises(sa.exc.StatementError, match="naive datetime"), db.write() as conn:
            conn.execute(sa.update(jobs).values(updated_at=datetime(2026, 1, 1)))
    finally:
        db.dispose()


def test_a_write_transaction_is_all_or_nothing(db_url: str) -> None:
    db = upgrade(db_url)
    when = datetime(2026, 3, 1, tzinfo=UTC)

    def insert_then_crash() -> None:
        with db.write() as conn:
            conn.execute(
                sa.insert(jobs).values(
                    id="b" * 32,
                    kind="backtest",
                    state="queued",
                    owner="o",
                    priority=0,
                    spec={},
                    spec_hash="0" * 64,
                    attempt=0,
                    submitted_at=when,
                    updated_at=when,
                )
            )
            raise RuntimeError("crash between two writes")

    try:
        with pytest.raises(RuntimeError):
            insert_then_crash()
        with db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 0
    finally:
        db.dispose()


def test_a_locked_sqlite_file_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    upgrade(f"sqlite:///{path}").dispose()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    db = Database(f"sqlite:///{path}", busy_timeout_ms=100)
    try:
        with pytest.raises(DatabaseUnavailable, match=r"(?i)locked") as caught, db.write() as conn:
            conn.execute(sa.select(1))
        assert isinstance(caught.value, InfrastructureError)
        assert "QUANTFLEET_DATABASE_URL" in str(caught.value)
        holder.execute("ROLLBACK")
        with db.write() as conn:  # once the lock is gone, the same object works again
            assert conn.execute(sa.select(1)).scalar() == 1
    finally:
        holder.close()
        db.dispose()


def test_an_unreachable_postgres_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = Database(f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/test", connect_timeout_s=1)
    try:
        with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}") as caught:
            db.upgrade()
        assert "secret" not in str(caught.value)
    finally:
        db.dispose()
