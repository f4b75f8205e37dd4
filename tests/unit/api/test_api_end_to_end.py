"""A job submitted over HTTP runs on a real worker (step mode); its result, artifacts and log come back over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from quantfleet.core.settings import Settings
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import wait_until
from quantfleet.testing.workers import unsandboxed_worker

Client = Callable[[str | None], TestClient]
Submit = Callable[..., httpx.Response]

TALK = b"""
def run(ctx):
    if ctx.bar_index == 3:
        print("hello from the strategy")
        ctx.order_target_percent("AAA", 0.5)
"""


@pytest.fixture
def worker(settings: Settings, service: JobService) -> Iterator[Worker]:
    """Return a one-slot worker on the home (its launcher started)."""
    made = unsandboxed_worker(settings, slots=1, service=service)
    yield made
    made.shutdown(grace=0)


def test_submit_run_and_fetch_over_http(client: Client, submit: Submit, worker: Worker, service: JobService) -> None:
    created = submit("alice", code=TALK, name="talk.py", headers={"Idempotency-Key": "e2e"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert worker.run_until_empty(timeout=120) == 1
    alice = client("alice")
    base = f"/v1/backtests/{job_id}"
    shown = alice.get(base).json()
    assert shown["state"] == "succeeded", (shown["error"], service.read_log(job_id).text[-2000:])
    assert "sharpe" in shown["metrics"]
    assert [a["number"] for a in shown["attempts"]] == [1]

    listed = {a["name"]: a for a in alice.get(base + "/artifacts").json()}
    assert {"metrics.json", "equity.parquet", "tearsheet.html", "log.txt"} <= set(listed)
    metrics = alice.get(listed["metrics.json"]["href"])
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("application/json")
    assert json.loads(metrics.content)
    equity = alice.get(base + "/artifacts/equity.parquet")
    assert equity.headers["content-type"] == "application/vnd.apache.parquet"
    assert equity.content[:4] == b"PAR1"
    assert len(equity.content) == listed["equity.parquet"]["size"]
    assert alice.get(base + "/artifacts/tearsheet.html").headers["content-type"].startswith("text/html")

    chunk = alice.get(base + "/logs").json()
    assert "hello from the strategy" in chunk["text"]
    assert chunk["complete"] is True
    assert chunk["attempt"] == 1
    tail = alice.get(base + "/logs", params={"offset": chunk["next_offset"], "attempt": 1}).json()
    assert tail["text"] == ""
    followed = alice.get(base + "/logs", params={"follow": "true"})
    assert followed.headers["content-type"].startswith("text/plain")
    assert followed.text == chunk["text"]

    replay = submit("alice", code=TALK, name="talk.py", headers={"Idempotency-Key": "e2e"})
    assert replay.json() == created.json()  # the original response, though the job has since run
    assert client("bob").get(base + "/artifacts/metrics.json").status_code == 404


SLOW = b"""
import time

_done = False


def run(ctx):
    global _done
    if not _done:
        _done = True
        print("started", flush=True)
        time.sleep(1.0)
        print("finished", flush=True)
"""


def test_follow_streams_while_running_until_the_job_ends(
    client: Client, submit: Submit, worker: Worker, service: JobService
) -> None:
    job_id = submit("alice", code=SLOW, name="slow.py").json()["id"]
    runner = threading.Thread(target=worker.run_until_empty, kwargs={"timeout": 120})
    runner.start()
    try:
        wait_until(lambda: service.get(job_id).state.value == "running", timeout=60, what="the job to start")
        with client("alice").stream("GET", f"/v1/backtests/{job_id}/logs", params={"follow": "true"}) as response:
            assert response.headers["content-type"].startswith("text/plain")
            text = "".join(response.iter_text())
        assert service.get(job_id).terminal  # the stream ended because the job did
        assert "started" in text
        assert "finished" in text
    finally:
        runner.join(timeout=120)
