"""Idempotency keys, the error mapping, and the limits on what a request may carry."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from quantfleet.api import ApiSettings
from quantfleet.api.errors import STATUS_BY_CLASS, status_of
from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.jobs import JobService
from quantfleet.jobs.errors import QuotaExceeded
from quantfleet.store import DatabaseUnavailable
from quantfleet.users import UserService

Client = Callable[[str | None], TestClient]
Submit = Callable[..., httpx.Response]
HOLD = b"from quantfleet import Strategy\n\n\nclass Hold(Strategy):\n    def on_bar(self, ctx, bars):\n        pass\n"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# -- idempotency --------------------------------------------------------------------------------


def test_a_replay_returns_the_original_response(submit: Submit, service: JobService) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = submit("alice", headers=key, params={"a": 1})
    again = submit("alice", headers=key, params={"a": 1})  # a new multipart boundary, the same content
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(service.list().items) == 1


def test_the_same_key_with_another_body_is_422(submit: Submit) -> None:
    key = {"Idempotency-Key": "k-2"}
    assert submit("alice", headers=key, params={"a": 1}).status_code == 201
    body = _problem(submit("alice", headers=key, params={"a": 2}), 422)
    assert "k-2" in body["detail"]


def test_keys_are_per_user(submit: Submit) -> None:
    key = {"Idempotency-Key": "shared"}
    a = submit("alice", headers=key).json()
    b = submit("bob", headers=key).json()
    assert a["id"] != b["id"]


def test_a_key_in_flight_is_409(submit: Submit, app: Any) -> None:
    ctx = app.state.quantfleet
    assert ctx.idempotency.begin("alice", "busy", "0" * 64) is None  # a first request still being processed
    body = _problem(submit("alice", headers={"Idempotency-Key": "busy"}), 409)
    assert "still being processed" in body["detail"]


def test_an_error_response_is_replayed_too(client: Client, submit: Submit) -> None:
    job = submit("alice").json()
    alice = client("alice")
    assert alice.post(f"/v1/backtests/{job['id']}/cancel").status_code == 200
    rerun = alice.post(f"/v1/backtests/{job['id']}/rerun", headers={"Idempotency-Key": "r"})
    replay = alice.post(f"/v1/backtests/{job['id']}/rerun", headers={"Idempotency-Key": "r"})
    assert rerun.status_code == replay.status_code == 201
    assert rerun.json() == replay.json()
    unknown = "0" * 32
    first = _problem(alice.post(f"/v1/backtests/{unknown}/cancel", headers={"Idempotency-Key": "c"}), 404)
    assert _problem(alice.post(f"/v1/backtests/{unknown}/cancel", headers={"Idempotency-Key": "c"}), 404) == first
    _problem(alice.post(f"/v1/backtests/{job['id']}/cancel", headers={"Idempotency-Key": "c"}), 422)  # another path


def test_an_infrastructure_failure_frees_the_key(
    submit: Submit, service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.submit

    def down(*args: Any, **kw: Any) -> Any:
        raise DatabaseUnavailable("the job database is unavailable; retry")

    monkeypatch.setattr(service, "submit", down)
    failed = submit("alice", headers={"Idempotency-Key": "x"})
    _problem(failed, 503)
    assert failed.headers["retry-after"] == "5"
    monkeypatch.setattr(service, "submit", real)
    assert submit("alice", headers={"Idempotency-Key": "x"}).status_code == 201


# -- error mapping ------------------------------------------------------------------------------


def test_one_mapping_by_class() -> None:
    assert status_of(QuotaExceeded("over", owner="a", limit=1, quota="max_queued")) == 429
    assert status_of(DatabaseUnavailable("down")) == 503
    assert status_of(InfrastructureError("down")) == 503
    assert status_of(UserError("bad")) == 400
    assert all(400 <= s < 600 for s in STATUS_BY_CLASS.values())


def test_quota_exceeded_is_429(submit: Submit, users: UserService) -> None:
    users.set_quota("alice", max_queued=1)
    assert submit("alice").status_code == 201
    body = _problem(submit("alice"), 429)
    assert body["type"].endswith("quota-exceeded")


def test_an_illegal_transition_is_409(client: Client, submit: Submit, service: JobService) -> None:
    job = submit("alice").json()
    claim = service.claim("w")
    assert claim is not None
    from quantfleet.jobs import JobState, Outcome

    service.finish(claim, Outcome(state=JobState.SUCCEEDED))
    _problem(client("alice").post(f"/v1/backtests/{job['id']}/cancel"), 409)


def test_validation_errors_list_each_field(submit: Submit, client: Client) -> None:
    body = _problem(submit("alice", bogus=1, priority=5000), 422)
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "spec", "bogus") in locs
    assert ("body", "spec", "priority") in locs
    body = _problem(submit("alice", raw_spec="{not json"), 422)
    assert body["errors"][0]["loc"] == ["body", "spec"]
    body = _problem(submit("alice", engine={"cash": -1}), 422)
    assert ["body", "spec", "engine", "cash"] in [e["loc"] for e in body["errors"]]
    missing = client("alice").post("/v1/backtests", files={"spec": (None, "{}")})
    assert ["body", "strategy"] in [e["loc"] for e in _problem(missing, 422)["errors"]]
    _problem(submit("alice", start="2024-03-01", end="2024-01-01"), 422)
    _problem(submit("alice", snapshot=99), 404)
    _problem(submit("alice", code=b"def broken(:\n"), 400)
    _problem(submit("alice", name="evil.txt"), 400)


# -- limits -------------------------------------------------------------------------------------


def test_parameter_and_string_limits(submit: Submit) -> None:
    body = _problem(submit("alice", params={f"p{i}": i for i in range(101)}), 422)
    assert "max_params" in body["detail"]
    body = _problem(submit("alice", symbols=["A" * 33]), 422)
    assert "max_symbol_length" in body["detail"]
    body = _problem(submit("alice", symbols=[f"S{i}" for i in range(1001)]), 422)
    assert "max_symbols" in body["detail"]
    body = _problem(submit("alice", params={"p": "x" * 2000}), 422)
    assert "max_param_value_bytes" in body["detail"]


@pytest.fixture
def api_settings() -> ApiSettings:
    """Small limits, so the tests stay small."""
    return ApiSettings(max_upload_bytes=4096, max_archive_members=3, max_unpacked_bytes=2048)


def test_upload_limits(submit: Submit) -> None:
    body = _problem(submit("alice", code=b"#" * 5000), 413)
    assert "max_upload_bytes" in body["detail"]
    big = submit("alice", code=b"#" * 400_000)
    assert _problem(big, 413)["detail"].startswith("the request has")


def test_archive_with_an_entry_file(submit: Submit, client: Client, service: JobService) -> None:
    data = _zip({"pkg/strategy.py": HOLD, "README": b"hi"})
    created = submit("alice", code=data, name="bundle.zip", entry="pkg/strategy.py")
    assert created.status_code == 201, created.text
    job = service.get(created.json()["id"])
    assert job.spec.code.name == "strategy.py"
    assert service.code(job.id) == HOLD
    only = submit("alice", code=_zip({"main.py": HOLD}), name="b.zip")
    assert only.status_code == 201, only.text
    _problem(submit("alice", code=_zip({"a.py": HOLD, "b.py": HOLD}), name="c.zip"), 400)
    _problem(submit("alice", code=_zip({"a.py": HOLD}), name="c.zip", entry="missing.py"), 400)
    _problem(submit("alice", code=b"PK\x03\x04 not really", name="d.zip"), 400)


def test_archive_limits_are_checked_before_extracting(submit: Submit) -> None:
    many = _zip({f"m{i}.py": b"x = 1\n" for i in range(4)})
    assert "max_archive_members" in _problem(submit("alice", code=many, name="m.zip"), 422)["detail"]
    bomb = _zip({"main.py": b"#" * 3000})  # compresses far below the upload limit, unpacks past 2048
    assert len(bomb) < 4096
    assert "max_unpacked_bytes" in _problem(submit("alice", code=bomb, name="b.zip"), 413)["detail"]
    for evil in ("../main.py", "/etc/main.py", "a\\..\\main.py"):
        body = _problem(submit("alice", code=_zip({evil: HOLD}), name="e.zip", entry=evil), 422)
        assert "outside the archive" in body["detail"]


def test_readyz_names_the_failed_check(settings: Any, service: JobService, users: UserService) -> None:
    from quantfleet.api import create_app

    def broker() -> None:
        raise ConnectionError("redis://127.0.0.1:6399 refused")

    app = create_app(settings, service=service, auth=users, extra_checks=[("broker", broker)])
    with TestClient(app) as c:
        response = c.get("/readyz")
    body = _problem(response, 503)
    assert "broker" in body["detail"]
    assert "database" not in body["detail"]
    assert response.headers["retry-after"]


def test_with_a_broker_that_does_not_answer_submissions_are_503_and_nothing_is_stored(
    settings: Any, service: JobService, users: UserService, tokens: dict[str, str]
) -> None:
    import socket

    from quantfleet.api import create_app

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{port}/0"})
    app = create_app(broker, auth=users)  # the gate comes from QUANTFLEET_BROKER_URL's setting
    with TestClient(app, headers={"Authorization": f"Bearer {tokens['alice']}"}) as c:
        ready = c.get("/readyz")
        spec = '{"symbols": ["AAA"], "start": "2024-01-02"}'
        files = {"strategy": ("hold.py", b"def run(ctx):\n    pass\n", "text/x-python"), "spec": (None, spec)}
        refused = c.post("/v1/backtests", files=files, headers={"Idempotency-Key": "down"})
        metrics = c.get("/metrics").text
    assert "broker" in _problem(ready, 503)["detail"]
    assert ready.headers["retry-after"]
    body = _problem(refused, 503)
    assert f"127.0.0.1:{port}" in body["detail"]
    assert "same Idempotency-Key" in body["detail"]
    assert refused.headers["retry-after"]
    assert service.list().items == []  # refused before the job row was written
    assert "quantfleet_broker_up 0.0" in metrics
