"""Auth, ownership, the job routes of each kind, data and health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient

from quantfleet.jobs import JobService, JobState

Client = Callable[[str | None], TestClient]
Submit = Callable[..., httpx.Response]

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    return body


def test_health_needs_no_token(client: Client) -> None:
    anonymous = client(None)
    assert anonymous.get("/healthz").json() == {"status": "alive"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "object_store": "ok"}


def test_every_v1_route_needs_a_valid_token(client: Client, submit: Submit) -> None:
    body = _problem(client(None).get("/v1/backtests"), 401)
    assert "Bearer" in body["detail"]
    assert _problem(submit(None), 401)["instance"] == "/v1/backtests"
    bad = client(None)
    bad.headers["Authorization"] = "Bearer qf_not-a-token"
    _problem(bad.get("/v1/data/snapshots"), 401)


def test_submit_show_and_list_a_backtest(client: Client, submit: Submit, service: JobService) -> None:
    created = submit("alice", params={"x": 1}, priority=5)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["owner"] == "alice"
    assert job["state"] == "queued"
    assert job["kind"] == "backtest"
    assert created.headers["location"] == f"/v1/backtests/{job['id']}"
    shown = client("alice").get(f"/v1/backtests/{job['id']}").json()
    assert shown["spec"]["params"] == {"x": 1}
    assert shown["spec"]["snapshot"] == 0  # the newest, pinned at submission
    assert shown["spec"]["owner"] == "alice"
    assert shown["attempts"] == []
    assert shown["children"] is None
    listed = client("alice").get("/v1/backtests").json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert listed["next_cursor"] is None
    stored = service.get(job["id"])
    assert stored.spec.code.name == "hold.py"


def test_another_users_job_is_not_found_and_admins_see_all(client: Client, submit: Submit) -> None:
    job = submit("alice").json()
    bob = client("bob")
    base = f"/v1/backtests/{job['id']}"
    for path in (base, base + "/logs", base + "/artifacts", base + "/artifacts/metrics.json"):
        _problem(bob.get(path), 404)
    _problem(bob.post(base + "/cancel"), 404)
    _problem(bob.post(base + "/rerun"), 404)
    assert bob.get("/v1/backtests").json()["items"] == []
    _problem(bob.get("/v1/backtests", params={"owner": "alice"}), 403)
    root = client("root")
    assert root.get(base).status_code == 200
    assert [j["id"] for j in root.get("/v1/backtests", params={"owner": "alice"}).json()["items"]] == [job["id"]]
    assert root.get("/v1/backtests", params={"owner": "bob"}).json()["items"] == []
    assert client("alice").get(base).status_code == 200


def test_a_job_of_another_kind_is_not_found_under_this_kind(client: Client, submit: Submit) -> None:
    job = submit("alice").json()
    _problem(client("alice").get(f"/v1/sweeps/{job['id']}"), 404)
    _problem(client("alice").get("/v1/backtests/not-an-id"), 404)


def test_list_filters_and_pages(client: Client, submit: Submit) -> None:
    ids = [submit("alice", params={"i": i}).json()["id"] for i in range(5)]
    alice = client("alice")
    alice.post(f"/v1/backtests/{ids[0]}/cancel")
    first = alice.get("/v1/backtests", params={"limit": 2}).json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:2]
    second = alice.get("/v1/backtests", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = alice.get("/v1/backtests", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [j["id"] for j in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    cancelled = alice.get("/v1/backtests", params={"state": "cancelled"}).json()
    assert [j["id"] for j in cancelled["items"]] == [ids[0]]
    both = alice.get("/v1/backtests", params=[("state", "cancelled"), ("state", "queued")]).json()
    assert len(both["items"]) == 5
    assert alice.get("/v1/backtests", params={"submitted_after": "2999-01-01T00:00:00Z"}).json()["items"] == []
    assert alice.get("/v1/backtests", params={"submitted_before": "2000-01-01T00:00:00Z"}).json()["items"] == []
    assert len(alice.get("/v1/backtests", params={"submitted_after": "2000-01-01T00:00:00Z"}).json()["items"]) == 5
    _problem(alice.get("/v1/backtests", params={"state": "sleeping"}), 422)
    _problem(alice.get("/v1/backtests", params={"cursor": "abc"}), 400)


def test_cancel_and_rerun(client: Client, submit: Submit) -> None:
    job = submit("alice").json()
    alice = client("alice")
    cancelled = alice.post(f"/v1/backtests/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == JobState.CANCELLED
    again = alice.post(f"/v1/backtests/{job['id']}/rerun")
    assert again.status_code == 201
    assert again.json()["id"] != job["id"]
    assert again.json()["state"] == "queued"
    spec_a = alice.get(f"/v1/backtests/{job['id']}").json()["spec"]
    spec_b = alice.get(f"/v1/backtests/{again.json()['id']}").json()["spec"]
    assert spec_a == spec_b


def test_sweeps_and_walkforwards_share_the_routes(client: Client, submit: Submit) -> None:
    sweep = submit("alice", kind="sweeps", grid=["fast=5:20:5"], where=[], metric="sharpe")
    assert sweep.status_code == 201, sweep.text
    assert sweep.json()["kind"] == "sweep"
    detail = client("alice").get(f"/v1/sweeps/{sweep.json()['id']}").json()
    assert detail["children"] == []
    assert detail["spec"]["sweep"]["grid"] == ["fast=5:20:5"]
    walk = submit("alice", kind="walkforwards", grid=["fast=5,10"], train="1m", test="1m", anchored=True)
    assert walk.status_code == 201, walk.text
    shown = client("alice").get(f"/v1/walkforwards/{walk.json()['id']}").json()
    assert shown["kind"] == "walk-forward"
    assert shown["spec"]["sweep"]["train"] == "1m"
    assert shown["spec"]["sweep"]["anchored"] is True
    assert [j["kind"] for j in client("alice").get("/v1/sweeps").json()["items"]] == ["sweep"]
    _problem(submit("alice", kind="walkforwards", grid=["fast=5,10"], train="forever", test="1m"), 422)
    _problem(submit("alice", kind="sweeps"), 422)  # no grid


def test_logs_of_a_queued_job_are_empty(client: Client, submit: Submit) -> None:
    job = submit("alice").json()
    chunk = client("alice").get(f"/v1/backtests/{job['id']}/logs").json()
    assert chunk == {"text": "", "next_offset": 0, "attempt": 0, "complete": False}
    assert client("alice").get(f"/v1/backtests/{job['id']}/artifacts").json() == []
    _problem(client("alice").get(f"/v1/backtests/{job['id']}/artifacts/metrics.json"), 404)


def test_data_routes(client: Client) -> None:
    alice = client("alice")
    snaps = alice.get("/v1/data/snapshots").json()
    assert [s["id"] for s in snaps] == [0]
    symbols = alice.get("/v1/data/symbols").json()
    assert [s["symbol"] for s in symbols] == ["AAA", "BBB"]
    assert alice.get("/v1/data/symbols", params={"snapshot": "0"}).json() == symbols
    _problem(alice.get("/v1/data/symbols", params={"snapshot": "7"}), 404)


def test_openapi_is_published(client: Client) -> None:
    doc = client(None).get("/openapi.json").json()
    assert "/v1/backtests/{job_id}/logs" in doc["paths"]
    post = doc["paths"]["/v1/sweeps"]["post"]
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])


def test_rerun_of_a_sweeps_child_runs_on_its_own(client: Client, submit: Submit, service: JobService) -> None:
    parent = service.resolve(submit("alice").json()["id"])
    claim = service.claim_job("w1", parent)
    assert claim is not None
    kids = service.submit_children(claim, [service.get(parent).spec])
    assert kids is not None
    again = client("alice").post(f"/v1/backtests/{kids[0].id}/rerun")
    assert again.status_code == 201, again.text
    assert again.json()["parent"] is None
    assert service.get(service.resolve(again.json()["id"])).parent is None
    assert [c.id for c in service.children(parent)] == [kids[0].id]  # the old sweep is unchanged
