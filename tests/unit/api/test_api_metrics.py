"""``GET /metrics`` (Prometheus text, read from the database per scrape) and structured JSON logs with job ids."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from quantfleet.api import create_app
from quantfleet.api.metrics import JobLogContext, ObservabilitySettings
from quantfleet.core.logging import configure, current_job_id, job_context
from quantfleet.core.settings import Settings
from quantfleet.jobs import EndReason, JobService, JobState, Outcome, parse_job_id
from quantfleet.testing.workers import unsandboxed_worker
from quantfleet.users import UserService

Client = Callable[[str | None], TestClient]
Submit = Callable[..., httpx.Response]


def sample(text: str, name: str, **labels: str) -> float | None:
    """Return the value of one sample in Prometheus text, or None when it is absent."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(inner) + r"\}" if labels else "") + r" (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_metrics_show_queue_depth_and_states_without_a_token(client: Client, submit: Submit) -> None:
    for _ in range(2):
        assert submit("alice").status_code == 201
    response = client(None).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "quantfleet_queue_depth", queue="default") == 2
    assert sample(text, "quantfleet_jobs", state="queued") == 2
    assert sample(text, "quantfleet_jobs", state="running") == 0
    assert sample(text, "quantfleet_job_outcomes_total", outcome="succeeded", reason="completed") == 0
    assert sample(text, "quantfleet_job_outcomes_total", outcome="dead", reason="infrastructure") == 0
    assert sample(text, "quantfleet_job_run_seconds_count") == 0
    assert "/metrics" not in client(None).get("/openapi.json").json()["paths"]


def test_ends_are_observed_once_with_run_time_and_time_to_start(
    client: Client, submit: Submit, settings: Settings, service: JobService
) -> None:
    job_id = submit("alice").json()["id"]
    scrape = client(None)
    assert sample(scrape.get("/metrics").text, "quantfleet_job_time_to_start_seconds_count") == 0
    worker = unsandboxed_worker(settings, slots=1, service=service)
    try:
        assert worker.run_until_empty(timeout=120) == 1
    finally:
        worker.shutdown(grace=0)
    assert service.get(job_id).state.value == "succeeded"
    for _ in range(2):  # a second scrape does not count the same end again
        text = scrape.get("/metrics").text
        assert sample(text, "quantfleet_job_outcomes_total", outcome="succeeded", reason="completed") == 1
        assert sample(text, "quantfleet_job_run_seconds_count") == 1
        assert sample(text, "quantfleet_job_time_to_start_seconds_count") == 1
        assert sample(text, "quantfleet_queue_depth", queue="default") == 0


def test_worker_heartbeat_age_comes_from_running_leases(client: Client, submit: Submit, service: JobService) -> None:
    submit("alice")
    claim = service.claim("host-1/slot-0")
    assert claim is not None
    text = client(None).get("/metrics").text
    age = sample(text, "quantfleet_worker_heartbeat_age_seconds", worker="host-1/slot-0")
    assert age is not None
    assert 0 <= age < 30
    assert sample(text, "quantfleet_jobs", state="running") == 1
    assert sample(text, "quantfleet_job_time_to_start_seconds_count") == 1


def test_metrics_can_be_disabled_and_each_app_has_its_own_registry(
    settings: Settings, service: JobService, users: UserService
) -> None:
    off = create_app(settings, service=service, auth=users, observability=ObservabilitySettings(metrics_enabled=False))
    with TestClient(off) as c:
        assert c.get("/metrics").status_code == 404
    one, two = (create_app(settings, service=service, auth=users) for _ in range(2))  # no duplicate-metric error
    with TestClient(one) as a, TestClient(two) as b:
        assert a.get("/metrics").text.count("quantfleet_queue_depth{") == 1
        assert b.get("/metrics").status_code == 200


@pytest.fixture
def captured() -> Iterator[Callable[[bool], io.StringIO]]:
    """Return ``install(json)``: configure logging into a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def install(as_json: bool) -> io.StringIO:
        buffer = io.StringIO()
        configure(json=as_json, level="DEBUG", stream=buffer)
        return buffer

    yield install
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_record_inside_a_job_context_renders_json_with_the_job_id(captured: Callable[[bool], io.StringIO]) -> None:
    first = captured(True)
    buffer = captured(True)  # configuring again replaces the handler: no doubled lines
    log = logging.getLogger("quantfleet.test")
    with job_context("0b4f" * 8):
        log.info("started %s", "now", extra={"attempt": 2})
    log.warning("outside")
    inside, outside = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert inside["job_id"] == "0b4f" * 8
    assert (inside["message"], inside["level"], inside["logger"], inside["attempt"]) == (
        "started now", "INFO", "quantfleet.test", 2)  # fmt: skip
    assert inside["ts"].endswith("+00:00")
    assert "job_id" not in outside
    assert current_job_id() is None
    assert first.getvalue() == ""


def test_text_logs_name_the_job_too(captured: Callable[[bool], io.StringIO]) -> None:
    buffer = captured(False)
    with job_context("abc123"):
        logging.getLogger("quantfleet.test").error("boom")
    assert buffer.getvalue().rstrip().endswith("boom [job abc123]")


def test_api_requests_about_a_job_log_with_its_id(captured: Callable[[bool], io.StringIO]) -> None:
    seen: list[str | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(current_job_id())
        logging.getLogger("quantfleet.api.test").info("handled")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    buffer = captured(True)
    job = "0123456789abcdef0123456789abcdef"
    c = TestClient(JobLogContext(app))  # no lifespan: the toy app answers HTTP only
    try:
        c.get(f"/v1/backtests/{job}/logs")
        c.get("/v1/backtests")
    finally:
        c.close()
    assert seen == [job, None]
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if '"handled"' in line]
    assert [line.get("job_id") for line in lines] == [job, None]


def test_the_worker_binds_the_job_id_where_an_attempt_starts(
    submit: Submit, service: JobService, settings: Settings, tmp_path: Path
) -> None:
    from quantfleet.dispatch.execute import Attempt

    submit("alice")
    claim = service.claim("w")
    assert claim is not None
    found: list[str | None] = []

    def slot() -> None:
        Attempt(service, claim, launcher=None, work_root=tmp_path, data=None, heartbeat_every=10.0)  # type: ignore[arg-type]
        found.append(current_job_id())

    thread = threading.Thread(target=slot)
    thread.start()
    thread.join()
    assert found == [claim.job_id]


def test_the_serve_commands_take_a_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    import uvicorn
    from typer.testing import CliRunner

    from quantfleet.cli.api import api
    from quantfleet.cli.jobs import worker

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    for name in ("QUANTFLEET_LOG_FORMAT", "QUANTFLEET_LOG_LEVEL"):  # set, then unset: both are undone afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    app = typer.Typer()
    app.command("api")(api)
    app.command("worker")(worker)
    assert CliRunner().invoke(app, ["api", "--log-format", "json"]).exit_code == 0
    assert calls[-1]["log_config"] is None  # uvicorn's lines go through the JSON handler
    import os

    assert os.environ["QUANTFLEET_LOG_FORMAT"] == "json"  # read by the factory in the server process
    assert "--log-format" in CliRunner().invoke(app, ["worker", "--help"]).output
    refused = CliRunner().invoke(app, ["api", "--log-format", "xml"])
    assert refused.exit_code != 0



def test_outcomes_are_counted_by_final_state_and_reason(client: Client, submit: Submit, service: JobService) -> None:
    scrape = client(None)
    scrape.get("/metrics")  # the server's first look: what ends after it is counted
    for outcome in (Outcome(state=JobState.FAILED, error="boom"), Outcome(
            state=JobState.FAILED, error="out of memory", reason=EndReason.MEMORY)):  # fmt: skip
        submit("alice")
        claim = service.claim("host-1/slot-0")
        assert claim is not None
        assert service.finish(claim, outcome)
    queued = submit("alice").json()["id"]
    service.cancel(parse_job_id(queued), by="alice")
    text = scrape.get("/metrics").text
    assert sample(text, "quantfleet_job_outcomes_total", outcome="failed", reason="error") == 1
    assert sample(text, "quantfleet_job_outcomes_total", outcome="failed", reason="memory") == 1
    assert sample(text, "quantfleet_job_outcomes_total", outcome="cancelled", reason="cancelled") == 1
    assert sample(text, "quantfleet_job_outcomes_total", outcome="succeeded", reason="completed") == 0
    shown = client("alice").get(f"/v1/backtests/{queued}")
    assert shown.json()["reason"] == "cancelled"
