"""The Python client's deployment calls against the real API served by uvicorn."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet.client import BadRequest, Client, ClientError
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


def test_create_a_deployment_over_http(url: str, tokens: dict[str, str], service: JobService, strategy: Path) -> None:
    """The client uploads the file and its settings; the server stores that code under the token's user."""
    with Client(url, tokens["alice"]) as qf:
        fields = {"name": "hold", "risk": {"max_position": 100}, "engine": {"cash": 20_000}, "idempotency_key": "k1"}
        made = qf.create_deployment(strategy, symbols="aaa,bbb", schedule="*/15 9-16 * * MON-FRI", **fields)
        again = qf.create_deployment(strategy, symbols="aaa,bbb", schedule="*/15 9-16 * * MON-FRI", **fields)
        assert again["id"] == made["id"]  # a retried create is the same deployment
        assert (made["owner"], made["universe"], made["trigger"]["cron"]) == ("alice", ["AAA", "BBB"],
                                                                              "*/15 9-16 * * MON-FRI")  # fmt: skip
        events = qf.create_deployment(strategy, symbols=["AAA"], on_bars=True)
        assert events["trigger"] == {"kind": "bars"}
        with pytest.raises(BadRequest) as refused:
            qf.create_deployment(strategy, symbols=["AAA"], schedule="often")
        assert "five fields" in str(refused.value)
        with pytest.raises(ValueError, match="either"):
            qf.create_deployment(strategy, symbols=["AAA"])
    deployments = DeploymentService(service)
    stored = deployments.get(made["id"])
    assert deployments.code(stored) == strategy.read_bytes()
    assert stored.spec.risk.max_position == 100
    assert len(deployments.list()) == 2
