"""Fixtures of the storage tests: ``db_url`` over SQLite and PostgreSQL, and moto's S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Reuse the session's moto S3 server fixtures of the integration tests (tests/ is on sys.path).
from integration.conftest import aws_env, s3_bucket, s3_client, s3_endpoint, s3_storage  # noqa: F401
from quantfleet.testing.databases import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START, postgres_schema
from quantfleet.testing.servers import require_server


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Return the URL of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quantfleet.db'}"
        return
    require_server("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START)
    with postgres_schema() as url:
        yield url
