"""Shared fixtures: a fresh store per test, and the rule for tests that need a server.

A test that needs a server (PostgreSQL, Redis, RabbitMQ, MQTT, S3) calls
:func:`require_server`. Under ``CI=true`` a missing server fails the test;
elsewhere it skips with the command that starts the server.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.testing.servers import in_ci, require_server

IN_CI = in_ci()
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
