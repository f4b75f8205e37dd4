"""Fixtures of the live tests: a job service and a deployment service on ``db`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import Deployment, DeploymentSpec
from quantfleet.store import Database, ObjectStore
from quantfleet.testing import FrozenClock


@pytest.fixture
def jobs(db: Database, tmp_path: Path, clock: FrozenClock) -> JobService:
    """Return a job service on ``db`` and a local object folder."""
    return JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock)


@pytest.fixture
def deployments(jobs: JobService, clock: FrozenClock) -> DeploymentService:
    """Return the deployment service over ``jobs``."""
    return DeploymentService(jobs, clock=clock)


DeployFactory = Callable[..., Deployment]


@pytest.fixture
def deploy(deployments: DeploymentService) -> DeployFactory:
    """Return a factory: deploy(code, **spec fields) stores the code and creates an active deployment."""

    def make(code: str, **fields: Any) -> Deployment:
        sha = deployments.put_code(code.encode(), fields.pop("code_name", "strategy.py"))
        body: dict[str, Any] = {
            "name": "test",
            "owner": "alice",
            "code_sha256": sha,
            "code_name": "strategy.py",
            "universe": ("X",),
            "trigger": {"kind": "bars"},
            "engine": {"cash": 10_000.0},
        }
        body.update(fields)
        return deployments.create(DeploymentSpec.model_validate(body))

    return make
