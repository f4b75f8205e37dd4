"""Fixtures of the job tests: ``db_url`` over SQLite and PostgreSQL, a frozen clock, a service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# Reuse the session's moto S3 server fixtures of the integration tests (tests/ is on sys.path).
from integration.conftest import aws_env, s3_bucket, s3_client, s3_endpoint, s3_storage  # noqa: F401
from quantfleet.jobs import CodeRef, JobId, JobService, JobSpec
from quantfleet.store import Database, ObjectStore
from quantfleet.testing import FrozenClock

CODE = b"from quantfleet import Strategy\n\nclass Hold(Strategy):\n    def on_bar(self, ctx, bars):\n        pass\n"


@pytest.fixture
def notified() -> list[JobId]:
    """Return the list the service's dispatcher port appends job ids to."""
    return []


@pytest.fixture
def service(db: Database, tmp_path: Path, clock: FrozenClock, notified: list[JobId]) -> JobService:
    """Return a job service on ``db`` and a local object folder, with 3 attempts and a 30 s lease."""
    return JobService(
        db,
        ObjectStore(str(tmp_path / "objects")),
        clock=clock,
        max_attempts=3,
        lease_seconds=30,
        notify=notified.append,
    )


@pytest.fixture
def code_bytes() -> bytes:
    """Return a small strategy file."""
    return CODE


@pytest.fixture
def code(service: JobService) -> CodeRef:
    """Return the reference of a small strategy file stored in the service."""
    return service.put_code(CODE, "hold.py")


SpecFactory = Callable[..., JobSpec]


@pytest.fixture
def new_spec(code: CodeRef) -> SpecFactory:
    """Return a factory of backtest specs of ``code``; keywords change fields."""

    def make(**changes: object) -> JobSpec:
        fields: dict[str, object] = {
            "code": code,
            "universe": ("AAA", "BBB"),
            "snapshot": 3,
            "params": {"fast": 10, "slow": 30},
            "owner": "ana",
        }
        fields.update(changes)
        return JobSpec.model_validate(fields)

    return make
