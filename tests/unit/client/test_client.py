"""The Python client against the real API served by uvicorn: submit, follow, fetch, errors, and retries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import quantfleet.client as client_module
from quantfleet.client import (
    BadRequest,
    Client,
    ClientError,
    Conflict,
    JobInfo,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerUnavailable,
    Unauthorized,
)
from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import JobService, JobState

Q1 = {"start": "2024-01-01", "end": "2024-03-31"}


def test_the_public_surface_is_small_and_pinned() -> None:
    assert sorted(client_module.__all__) == [
        "ArtifactInfo", "BadRequest", "Client", "ClientError", "Conflict", "Forbidden", "JobInfo", "KINDS",
        "NotFound", "QuotaExceeded", "RateLimited", "ServerError", "ServerUnavailable", "Unauthorized",
    ]  # fmt: skip
    assert issubclass(QuotaExceeded, RateLimited)
    assert issubclass(NotFound, UserError)
    assert issubclass(ServerUnavailable, InfrastructureError)
    assert all(issubclass(getattr(client_module, n), ClientError) for n in ("BadRequest", "Conflict", "Unauthorized"))


def test_submit_wait_and_fetch_results(
    url: str, tokens: dict[str, str], strategy: Path, worker: Worker, tmp_path: Path
) -> None:
    with Client(url, tokens["alice"]) as qf:
        job = qf.submit_backtest(strategy, symbols=["AAA"], **Q1)
        assert (job.state, job.kind, job.owner, job.strategy) == ("queued", "backtest", "alice", "hold.py")
        assert worker.run_until_empty(timeout=120) == 1
        seen: list[str] = []
        done = qf.wait(job.id, poll=0.05, progress=lambda j: seen.append(j.state))
        assert done.state == "succeeded", done.error
        assert seen == ["succeeded"]
        assert "sharpe" in (done.metrics or {})
        names = {a.name for a in qf.artifacts(job.id)}
        assert {"metrics.json", "equity.parquet"} <= names
        saved = qf.download(job.id, "equity.parquet", f"{tmp_path}/out/")  # a folder: the file goes in it
        assert saved == tmp_path / "out" / "equity.parquet"
        assert saved.read_bytes()[:4] == b"PAR1"
        assert isinstance("".join(qf.logs(job.id)), str)
        assert "".join(qf.logs(job.id, follow=True)) == "".join(qf.logs(job.id))
        with pytest.raises(Conflict, match="cannot go from 'succeeded'"):
            qf.cancel(job.id)
        again = qf.rerun(job.id)
        assert again.id != job.id
        assert again.state == "queued"
    with Client(url, tokens["alice"]) as fresh:  # no cached kind: the client finds the job's collection
        shown = fresh.get(job.id)
        assert shown.spec is not None
        assert [a["number"] for a in shown.attempts] == [1]
        assert fresh.cancel(again.id).state == "cancelled"


def test_list_reads_every_page_newest_first(url: str, tokens: dict[str, str], strategy: Path) -> None:
    with Client(url, tokens["alice"]) as qf:
        ids = [qf.submit_backtest(strategy, symbols="AAA", params={}, **Q1).id for _ in range(3)]
        assert [j.id for j in qf.list(page_size=1)] == ids[::-1]
        assert [j.id for j in qf.list(kind="backtests", state="queued", page_size=2, limit=2)] == ids[:0:-1]
        assert list(qf.list(kind="sweep")) == []


def test_errors_carry_the_problem_detail(url: str, tokens: dict[str, str], strategy: Path) -> None:
    with Client(url, tokens["alice"]) as qf:
        with pytest.raises(NotFound, match=r"no job 0+") as missing:
            qf.get("0" * 32)
        assert missing.value.status == 404
        assert missing.value.problem["status"] == 404
        with pytest.raises(BadRequest) as bad:
            qf.submit_backtest(strategy, symbols=[], **Q1)
        assert bad.value.problem["errors"]
    with Client(url, "qf_nobody") as stranger, pytest.raises(Unauthorized, match="unknown, revoked or expired"):
        next(stranger.list())
    with Client(url, tokens["bob"]) as bob:
        bob.submit_backtest(strategy, symbols="AAA", **Q1)
        with pytest.raises(QuotaExceeded):
            bob.submit_backtest(strategy, symbols="AAA", **Q1)


class FailFirst:
    """ASGI middleware: the first POST gets a 503 before the app sees it; the second reaches the app (which
    creates the job) but its answer is lost and replaced by a 503; later requests pass."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.posts = 0

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.posts >= 2:
            await self.app(scope, receive, send)
            return
        self.posts += 1
        if self.posts == 2:

            async def swallow(message: dict[str, Any]) -> None:
                return None

            await self.app(scope, receive, swallow)  # the job is created; the client never hears of it
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"retry-after", b"0"), (b"content-type", b"application/problem+json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"status": 503, "detail": "try again"}'})


def test_a_submission_retried_after_503s_creates_one_job(
    settings: Any, service: JobService, users: Any, tokens: dict[str, str], strategy: Path, serve: Any
) -> None:
    from quantfleet.api import create_app

    flaky = FailFirst(create_app(settings, service=service, auth=users))
    with Client(serve(flaky), tokens["alice"], backoff=0.01) as qf:
        job = qf.submit_backtest(strategy, symbols="AAA", **Q1)
    assert flaky.posts == 2
    assert [j.id for j in service.list().items] == [job.id]  # the third try replayed the second's job


def test_connection_errors_are_retried_with_the_same_key(
    url: str, tokens: dict[str, str], strategy: Path, service: JobService
) -> None:
    real = httpx.HTTPTransport()
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return real.handle_request(request)

    with real, Client(url, tokens["alice"], transport=httpx.MockTransport(handler), backoff=0.01) as qf:
        job = qf.submit_backtest(strategy, symbols="AAA", idempotency_key="mine-1", **Q1)
    assert keys == ["mine-1", "mine-1"]
    assert [j.id for j in service.list().items] == [job.id]


def test_a_server_that_stays_down_raises_server_unavailable(tokens: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    with Client(f"http://127.0.0.1:{port}", "t", retries=2, backoff=0.01) as qf, pytest.raises(ServerUnavailable):
        qf.get("0" * 32)


def test_job_info_reads_the_api_json() -> None:
    body = {"id": "a" * 32, "kind": "sweep", "state": JobState.RUNNING.value, "owner": "o", "strategy": "s.py",
            "priority": 0, "attempt": 1, "submitted_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:01Z",
            "children": [{"id": "b" * 32, "kind": "backtest", "state": "failed", "owner": "o", "strategy": "s.py",
                          "priority": 0, "attempt": 1, "submitted_at": "2026-01-01T00:00:00Z",
                          "updated_at": "2026-01-01T00:00:00Z"}]}  # fmt: skip
    job = JobInfo.from_json(body)
    assert not job.terminal
    assert job.submitted_at.tzinfo is not None
    assert job.children is not None
    assert job.children[0].terminal
