"""/v1/deployments: a user's own deployments, their books, and pause/resume/kill/stop with Idempotency-Key."""

from __future__ import annotations

from typing import Any

from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentSpec

CODE = b"def run(ctx):\n    ctx.order('AAA', 1)\n"


def make(service: JobService, owner: str) -> str:
    deployments = DeploymentService(service)
    sha = deployments.put_code(CODE, "buy.py")
    spec = DeploymentSpec(
        name="buy",
        owner=owner,
        code_sha256=sha,
        code_name="buy.py",
        universe=("AAA",),
        trigger={"kind": "cron", "cron": "*/15 9-16 * * MON-FRI"},
        engine={"cash": 25_000.0},
    )
    return deployments.create(spec).id


def test_list_read_and_change(client: Any, service: JobService) -> None:
    """Alice sees her deployment with its books; Bob does not; pause, resume, kill and stop change its status."""
    mine = make(service, "alice")
    make(service, "bob")
    alice = client("alice")
    listed = alice.get("/v1/deployments").json()
    assert [d["id"] for d in listed] == [mine]
    detail = alice.get(f"/v1/deployments/{mine}").json()
    assert detail["status"] == "active"
    assert detail["cash"] == 25_000.0
    assert detail["positions"] == []
    assert detail["orders"] == []
    assert detail["trigger"]["cron"] == "*/15 9-16 * * MON-FRI"
    gone = client("bob").get(f"/v1/deployments/{mine}")
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("application/problem+json")
    first = alice.post(f"/v1/deployments/{mine}/pause", headers={"Idempotency-Key": "p1"})
    assert first.json()["status"] == "paused"
    assert alice.post(f"/v1/deployments/{mine}/resume").json()["status"] == "active"
    replay = alice.post(f"/v1/deployments/{mine}/pause", headers={"Idempotency-Key": "p1"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert alice.post(f"/v1/deployments/{mine}/kill?flatten=true").json()["status"] == "paused"
    assert alice.post(f"/v1/deployments/{mine}/stop").json()["status"] == "stopped"
    refused = alice.post(f"/v1/deployments/{mine}/resume")
    assert refused.status_code == 400
    assert "stays stopped" in refused.json()["detail"]
    assert client(None).get("/v1/deployments").status_code == 401
