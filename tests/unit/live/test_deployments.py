"""Deployments: stored with their code's hash, listed, paused, resumed and stopped; runs numbered once per due time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from quantfleet.core.errors import UserError
from quantfleet.live.deployments import DeploymentNotFound, DeploymentService, IllegalDeploymentChange
from quantfleet.live.models import DeploymentSpec, DeploymentStatus

CODE = "def run(ctx):\n    pass\n"


def test_lifecycle(deploy: Any, deployments: DeploymentService) -> None:
    """A new deployment is active; pause and resume toggle it; a stopped one cannot be resumed."""
    dep = deploy(CODE, name="first")
    assert dep.status is DeploymentStatus.ACTIVE
    assert deployments.code(dep) == CODE.encode()
    assert deployments.pause(dep.id[:8], reason="lunch").status is DeploymentStatus.PAUSED
    assert deployments.get(dep.id).reason == "lunch"
    assert deployments.resume(dep.id).status is DeploymentStatus.ACTIVE
    assert deployments.stop(dep.id).status is DeploymentStatus.STOPPED
    with pytest.raises(IllegalDeploymentChange, match="stays stopped"):
        deployments.resume(dep.id)
    second = deploy(CODE, name="second")
    assert {d.spec.name for d in deployments.list()} == {"second", "first"}
    assert [d.id for d in deployments.list(status=DeploymentStatus.ACTIVE)] == [second.id]
    with pytest.raises(DeploymentNotFound, match="quantfleet deployments ls"):
        deployments.get("0" * 32)


def test_code_must_be_stored_first(deployments: DeploymentService) -> None:
    """A spec naming code that was never uploaded is refused with the fix."""
    spec = DeploymentSpec(
        name="x", owner="a", code_sha256="a" * 64, code_name="s.py", universe=("X",), trigger={"kind": "bars"}
    )
    with pytest.raises(UserError, match="put_code first"):
        deployments.create(spec)


def test_bad_specs_name_the_problem() -> None:
    """Unknown fields, bad names and repeated symbols are refused."""
    base: dict[str, Any] = {
        "name": "x",
        "owner": "a",
        "code_sha256": "a" * 64,
        "code_name": "s.py",
        "universe": ("X",),
        "trigger": {"kind": "cron", "cron": "0 10 * * *"},
    }
    DeploymentSpec.model_validate(base)
    with pytest.raises(ValidationError, match="extra"):
        DeploymentSpec.model_validate({**base, "colour": "red"})
    with pytest.raises(ValidationError, match="name a deployment"):
        DeploymentSpec.model_validate({**base, "name": "a b"})
    with pytest.raises(ValidationError, match="listed once"):
        DeploymentSpec.model_validate({**base, "universe": ("X", "X")})


def test_a_due_time_makes_one_run(deploy: Any, deployments: DeploymentService) -> None:
    """start_run numbers runs 1, 2, ... and refuses a second run for the same due time."""
    dep = deploy(CODE)
    due = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    first = deployments.start_run(dep.id, due_at=due)
    assert first is not None
    assert first.number == 1
    assert deployments.start_run(dep.id, due_at=due) is None
    later = deployments.start_run(dep.id, due_at=due.replace(minute=15))
    assert later is not None
    assert later.number == 2
    assert [r.number for r in deployments.runs(dep.id)] == [2, 1]


def test_state_must_be_plain_json(deploy: Any, deployments: DeploymentService) -> None:
    """ctx.state holding an object is refused with what to keep instead; the stored state is unchanged."""
    dep = deploy(CODE)
    deployments.save_state(dep.id, {"n": 1})
    with pytest.raises(UserError, match="not plain JSON"):
        deployments.save_state(dep.id, {"model": object()})
    assert deployments.get(dep.id).state == {"n": 1}
