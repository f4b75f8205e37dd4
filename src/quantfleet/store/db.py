"""The metadata database: one SQLAlchemy engine, transactions, and the schema's migrations.

SQLite (the default) is opened in WAL mode with a busy timeout and foreign
keys on; every write transaction starts with ``BEGIN IMMEDIATE``, so two
writers queue for the lock up front instead of failing halfway when one tries
to upgrade a read lock. PostgreSQL is reached through psycopg 3.

Connection failures, a lock held longer than the busy timeout, and
PostgreSQL serialization failures raise :class:`DatabaseUnavailable` (an
``InfrastructureError``): back off and retry. A transaction that fails is
rolled back whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from quantfleet.store.errors import DatabaseUnavailable

__all__ = ["MIGRATIONS", "Database", "alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant: upgrades from several processes at once take turns on PostgreSQL.
_UPGRADE_LOCK = 0x71F1EE7


class Database:
    """A SQL database for job metadata, at a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, connect_timeout_s: float = 5.0) -> None:
        self.url = sa.make_url(url)
        if self.url.drivername == "postgresql":
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.dialect = self.url.get_backend_name()
        self.busy_timeout_ms = busy_timeout_ms
        connect_args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = self.url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            connect_args["timeout"] = busy_timeout_ms / 1000
        elif self.dialect == "postgresql":
            connect_args["connect_timeout"] = max(1, round(connect_timeout_s))
        # A server connection can die idle in the pool (restart, failover): ping it at checkout. A SQLite
        # file cannot, and the ping is one more statement on every status call.
        ping = self.dialect != "sqlite"
        self.engine: Engine = sa.create_engine(self.url, connect_args=connect_args, pool_pre_ping=ping)
        if self.dialect == "sqlite":
            self._configure_sqlite()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def describe(self) -> str:
        """Return the URL with any password hidden, for messages."""
        return self.url.render_as_string(hide_password=True)

    def _configure_sqlite(self) -> None:
        busy = self.busy_timeout_ms

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred only).
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("quantfleet_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Re-raise connection and lock failures as :class:`DatabaseUnavailable`."""
        try:
            yield
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
            raise DatabaseUnavailable(
                f"the job database at {self.describe()} is unavailable: {detail}. "
                "Retry in a few seconds; if it persists, check that the server runs (or that no other "
                "process holds the SQLite file locked) and that QUANTFLEET_DATABASE_URL is right."
            ) from error

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """Yield a connection in a write transaction; commit at the end, roll back on error."""
        with self.errors(), self.engine.connect() as conn:
            conn.execution_options(quantfleet_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection in a read transaction."""
        with self.errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (default: the newest) with the shipped migrations."""
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def revision(self) -> str | None:
        """Return the schema's current Alembic revision (None: never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def alembic_config() -> Config:
    """Return an Alembic configuration for the migrations shipped in this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(url: str, revision: str = "head") -> Database:
    """Open the database at ``url``, migrate it to ``revision`` and return it."""
    db = Database(url)
    db.upgrade(revision)
    return db
