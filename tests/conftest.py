"""Shared fixtures: a fresh store per test, and the rule for tests that need a server.

A test that needs a server (PostgreSQL, Redis, RabbitMQ, MQTT, S3) calls
:func:`require_server`. Under ``CI=true`` a missing server fails the test;
elsewhere it skips with the command that starts the server.
"""

from __future__ import annotations

import os
import socket
from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int, how_to_start: str) -> None:
    """Fail (in CI) or skip (elsewhere) unless ``name`` listens at ``host:port``."""
    if server_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}; start it with: {how_to_start}"
    if IN_CI:
        pytest.fail(message + " (CI=true: server tests may not be skipped)")
    pytest.skip(message)


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
