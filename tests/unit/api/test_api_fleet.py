"""The dashboard's read-only views: jobs of every kind in one list, a job's source, the fleet, a symbol's bars."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from quantfleet.api.routers.fleet import FleetPublic
from quantfleet.jobs import JobService

Client = Callable[[str | None], TestClient]
Submit = Callable[..., httpx.Response]


def test_one_list_of_every_kind_pages_and_searches(client: Client, submit: Submit) -> None:
    ids = [submit("alice", name=f"hold_{i}.py", params={}).json()["id"] for i in range(3)]
    sweep = submit("alice", name="swept.py", kind="sweeps", grid=["x=1,2"]).json()
    assert "id" in sweep, sweep
    submit("bob", name="bobs.py")
    alice = client("alice")
    first = alice.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["items"]] == [sweep["id"], ids[2]]
    assert first["items"][0]["kind"] == "sweep"
    rest = alice.get("/v1/jobs", params={"limit": 10, "cursor": first["next_cursor"]}).json()
    assert [j["id"] for j in rest["items"]] == [ids[1], ids[0]]
    assert rest["next_cursor"] is None
    found = alice.get("/v1/jobs", params={"q": "HOLD_1"}).json()["items"]
    assert [j["id"] for j in found] == [ids[1]]
    assert found[0]["params"] == {}
    assert alice.get("/v1/jobs", params={"owner": "bob"}).status_code == 403


def test_the_source_of_a_job_is_its_owners_to_read(client: Client, submit: Submit) -> None:
    job_id = submit("alice", code=b"def run(ctx, fast: int = 3):\n    pass\n", name="mine.py").json()["id"]
    shown = client("alice").get(f"/v1/jobs/{job_id}/source").json()
    assert shown["name"] == "mine.py"
    assert "fast: int = 3" in shown["text"]
    assert client("bob").get(f"/v1/jobs/{job_id}/source").status_code == 404
    assert client("root").get(f"/v1/jobs/{job_id}/source").status_code == 200


def test_the_fleet_counts_the_queue(client: Client, submit: Submit, service: JobService) -> None:
    submit("alice")
    submit("alice")
    fleet = FleetPublic.model_validate(client("alice").get("/v1/fleet").json())
    assert fleet.queue_depth == 2
    assert fleet.states["queued"] == 2
    assert fleet.states["running"] == 0
    assert fleet.workers == []
    assert client(None).get("/v1/fleet").status_code == 401


def test_bars_are_downsampled_and_unknown_symbols_named(client: Client) -> None:
    alice = client("alice")
    bars = alice.get("/v1/data/bars", params={"symbol": "aaa", "max_points": 10}).json()
    assert bars["symbol"] == "AAA"
    assert bars["rows"] > 10
    assert len(bars["ts"]) == len(bars["close"]) <= 10
    assert bars["gaps"]
    assert bars["gaps"][0]["days"] >= bars["gaps"][-1]["days"]
    missing = alice.get("/v1/data/bars", params={"symbol": "ZZZ"})
    assert missing.status_code in (400, 404, 422)
    assert "ZZZ" in missing.json()["detail"]
