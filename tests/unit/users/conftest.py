"""Fixtures of the user tests: ``db_url`` over SQLite and PostgreSQL, a frozen clock, a user service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quantfleet.store import Database
from quantfleet.testing import FrozenClock
from quantfleet.testing.databases import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START, postgres_schema
from quantfleet.testing.servers import require_server
from quantfleet.users import UserService


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Return the URL of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quantfleet.db'}"
        return
    require_server("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START)
    with postgres_schema() as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """Return the database at ``db_url``, migrated."""
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    """Return a clock frozen at 2026-01-05 09:30 UTC."""
    return FrozenClock()


@pytest.fixture
def users(db: Database, clock: FrozenClock) -> UserService:
    """Return a user service on ``db``."""
    return UserService(db, clock=clock)
