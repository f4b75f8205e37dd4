"""/v1/deployments: a user's own deployments, their books, and pause/resume/kill/stop with Idempotency-Key."""

from __future__ import annotations

import json
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


def post(client: Any, user: str, spec: dict[str, Any] | str, *, code: bytes = CODE, name: str = "buy.py",
         headers: dict[str, str] | None = None) -> Any:  # fmt: skip
    part = spec if isinstance(spec, str) else json.dumps(spec)
    return client(user).post(
        "/v1/deployments",
        files={"strategy": (name, code, "text/x-python"), "spec": (None, part, "application/json")},
        headers=headers or {},
    )


CRON = {"kind": "cron", "cron": "*/15 9-16 * * MON-FRI", "calendar": "XNYS"}


def test_create_over_http_stores_the_code_and_scopes_the_owner(client: Any, service: JobService) -> None:
    """A POSTed file becomes an active deployment of that exact code, owned by the caller, listed only for them."""
    spec = {"symbols": ["aaa"], "trigger": CRON, "params": {"size": 2}, "risk": {"max_order_value": 5000},
            "engine": {"cash": 50_000}}  # fmt: skip
    made = post(client, "alice", spec, headers={"Idempotency-Key": "d1"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/v1/deployments/{body['id']}"
    assert (body["owner"], body["name"], body["status"], body["universe"]) == ("alice", "buy", "active", ["AAA"])
    assert body["trigger"]["cron"] == "*/15 9-16 * * MON-FRI"
    deployments = DeploymentService(service)
    stored = deployments.get(body["id"])
    assert deployments.code(stored) == CODE
    assert stored.spec.params == {"size": 2}
    assert stored.spec.risk.max_order_value == 5000
    assert client("alice").get(f"/v1/deployments/{body['id']}").json()["cash"] == 50_000.0
    replay = post(client, "alice", spec, headers={"Idempotency-Key": "d1"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["id"] == body["id"]
    assert len(deployments.list()) == 1  # the replay made nothing new
    assert client("bob").get("/v1/deployments").json() == []
    assert client("bob").get(f"/v1/deployments/{body['id']}").status_code == 404
    assert client("bob").post(f"/v1/deployments/{body['id']}/stop").status_code == 404
    assert post(client, None, spec).status_code == 401  # type: ignore[arg-type]
    on_bars = post(client, "bob", {"symbols": ["BBB"], "trigger": {"kind": "bars"}, "name": "events"})
    assert on_bars.status_code == 201
    assert on_bars.json()["trigger"] == {"kind": "bars"}


def test_create_refusals_name_the_field(client: Any, service: JobService) -> None:
    """Bad input is a problem+json 422 naming the field (or 400 naming the file), and stores nothing."""

    def problem(spec: dict[str, Any] | str, **kw: Any) -> dict[str, Any]:
        answer = post(client, "alice", spec, **kw)
        assert answer.status_code in (400, 422), answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        found: dict[str, Any] = answer.json()
        return found

    def locs(found: dict[str, Any]) -> list[list[Any]]:
        return [e["loc"] for e in found.get("errors", [])]

    bad_cron = problem({"symbols": ["AAA"], "trigger": {**CRON, "cron": "often"}})
    assert ["body", "spec", "trigger", "cron"] in locs(bad_cron)
    assert "five fields" in bad_cron["detail"]
    bad_calendar = problem({"symbols": ["AAA"], "trigger": {**CRON, "calendar": "XNOPE"}})
    assert ["body", "spec", "trigger", "calendar"] in locs(bad_calendar)
    assert ["body", "spec", "trigger"] in locs(problem({"symbols": ["AAA"]}))
    assert ["body", "spec", "broker"] in locs(problem({"symbols": ["AAA"], "trigger": CRON, "broker": "ib"}))
    assert ["body", "spec", "symbols"] in locs(problem({"symbols": ["AAA", "AAA"], "trigger": CRON}))
    assert ["body", "spec", "engine", "cash"] in locs(problem({"symbols": ["AAA"], "trigger": CRON,
                                                               "engine": {"cash": -1}}))  # fmt: skip
    assert ["body", "spec", "surprise"] in locs(problem({"symbols": ["AAA"], "trigger": CRON, "surprise": 1}))
    assert ["body", "spec"] in locs(problem("{not json"))
    syntax = problem({"symbols": ["AAA"], "trigger": CRON}, code=b"def run(ctx):\n  pass(\n")
    assert "line 2" in syntax["detail"]
    assert DeploymentService(service).list() == []


def test_a_schedule_that_never_fires_is_refused(client: Any, service: JobService) -> None:
    """03:00 New York is never inside a session: refused, naming the cron, instead of a deployment that never runs."""
    answer = post(client, "alice", {"symbols": ["AAA"], "trigger": {**CRON, "cron": "0 3 * * *"}})
    assert answer.status_code == 422
    assert ["body", "spec", "trigger", "cron"] in [e["loc"] for e in answer.json()["errors"]]
    assert "never fires" in answer.json()["detail"]
    assert DeploymentService(service).list() == []


def test_accounts_are_the_callers_own_and_alpaca_is_for_admins(client: Any, service: JobService) -> None:
    """Two users naming the same paper account get one each; only an admin may deploy to the server's Alpaca."""
    spec = {"symbols": ["AAA"], "trigger": CRON, "account": "main"}
    alice = post(client, "alice", spec).json()
    bob = post(client, "bob", spec).json()
    assert (alice["account"], bob["account"]) == ("alice:main", "bob:main")
    assert post(client, "alice", spec).json()["account"] == "alice:main"  # her deployments share her account
    refused = post(client, "bob", {**spec, "account": "../alice"})
    assert refused.status_code == 422
    assert ["body", "spec", "account"] in [e["loc"] for e in refused.json()["errors"]]
    alpaca = post(client, "alice", {**spec, "broker": "alpaca"})
    assert alpaca.status_code == 403
    assert "only an admin" in alpaca.json()["detail"]
    assert post(client, "root", {**spec, "broker": "alpaca"}).status_code == 201
