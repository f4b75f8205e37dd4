"""Shared fixtures: a fresh store per test, and the rule for tests that need a server.

A test that needs a server (PostgreSQL, Redis, RabbitMQ, MQTT, S3) calls
:func:`require_server`. Under ``CI=true`` a missing server fails the test;
elsewhere it skips with the command that starts the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.store import Database
from quantfleet.testing import FrozenClock
from quantfleet.testing.databases import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START, postgres_schema
from quantfleet.testing.servers import in_ci, require_server

IN_CI = in_ci()
# Workers built by tests run their jobs' children unsandboxed (fast, no root needed), which the sandbox
# policy allows only when asked for; tests/sandbox/ asks for the real sandbox explicitly.
os.environ.setdefault("QUANTFLEET_SANDBOX", "trusted")
__all__ = ["IN_CI", "require_server"]


@pytest.fixture
def store(tmp_path: Path) -> MarketDataStore:
    """Return an empty local market-data store."""
    return MarketDataStore(str(tmp_path / "data"))


@pytest.fixture
def daily_store(store: MarketDataStore) -> MarketDataStore:
    """Return a store holding 3 symbols of synthetic daily bars, 2020-2022 (snapshot 0)."""
    data = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2020, 1, 1), end=date(2022, 12, 31), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="test")
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Return the URL of an empty database: a new SQLite file, or a new PostgreSQL schema (dropped after)."""
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
