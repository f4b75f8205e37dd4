"""The Python client's deployment calls against the real API served by uvicorn."""

from __future__ import annotations

import pytest

from quantfleet.client import Client, ClientError
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentSpec


def test_list_read_pause_resume_kill_stop(url: str, tokens: dict[str, str], service: JobService) -> None:
    deployments = DeploymentService(service)
    sha = deployments.put_code(b"def run(ctx):\n    pass\n", "idle.py")
    dep = deployments.create(
        DeploymentSpec(
            name="idle",
            owner="alice",
            code_sha256=sha,
            code_name="idle.py",
            universe=("AAA",),
            trigger={"kind": "bars"},
        )
    )
    with Client(url, tokens["alice"]) as qf:
        assert [d["id"] for d in qf.deployments()] == [dep.id]
        assert qf.deployment(dep.id)["equity"] == 100_000.0
        assert qf.pause_deployment(dep.id)["status"] == "paused"
        assert qf.resume_deployment(dep.id)["status"] == "active"
        assert qf.kill_deployment(dep.id, flatten=True)["status"] == "paused"
        assert qf.stop_deployment(dep.id)["status"] == "stopped"
    with Client(url, tokens["bob"]) as qf, pytest.raises(ClientError):
        qf.deployment(dep.id)
