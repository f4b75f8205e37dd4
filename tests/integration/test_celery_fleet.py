"""Celery dispatch against a real Redis, with faults injected for real.

Each test starts a private ``redis-server`` on a free loopback port (no
persistence, so a restart loses every message, the worst case) and runs
Celery workers as real processes (``python -m quantfleet.dispatch.celery_worker``)
on a SQLite home with 2 s leases. The counting strategy appends one line per
execution, so "runs once" is counted. Tests wait on conditions with deadlines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.settings import Settings
from quantfleet.dispatch.celery_app import QUEUE, CeleryDispatcher, QuantfleetCelery, configure
from quantfleet.jobs import Job, JobService, JobSpec, JobState, Limits
from quantfleet.testing.databases import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START, postgres_schema
from quantfleet.testing.jobs import (
    COUNTING_STRATEGY,
    FIRST_RUN_SLOW,
    RUN_FOLDER,
    alive,
    tiny_market,
    wait_until,
    write_strategy,
)
from quantfleet.testing.servers import require_server, server_reachable

pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Redis:
    """A private redis-server on a loopback port that a test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: server_reachable("127.0.0.1", self.port, 0.2), timeout=10, what="redis-server to listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # no shutdown save: every message is lost
            self.proc.wait(10)
        self.proc = None
        wait_until(lambda: not server_reachable("127.0.0.1", self.port, 0.2), timeout=10, what="redis to stop")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


class Fleet:
    """A SQLite home with a tiny market, a submitting job service that publishes to Redis, and worker processes."""

    def __init__(
        self, root: Path, broker: str, *, lease: float = 2.0, visibility: float = 3600.0, database: str | None = None
    ) -> None:
        self.root = root
        self.broker = broker
        self.settings = Settings(
            home=root / "home", lease_seconds=lease, broker_url=broker, visibility_timeout=visibility,
            sweep_seconds=1.0, database_url=database,
        )  # fmt: skip
        self.snapshot = tiny_market(self.settings)
        self.celery = configure(QuantfleetCelery("quantfleet-test", set_as_current=False), self.settings)
        self.dispatch = CeleryDispatcher(self.celery)
        self.service = JobService.from_settings(self.settings, notify=self.dispatch)
        self.counter = root / "count.txt"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ, "QUANTFLEET_HOME": str(self.settings.home), "QUANTFLEET_LEASE_SECONDS": str(lease),
            "QUANTFLEET_SWEEP_SECONDS": "1", "QUANTFLEET_VISIBILITY_TIMEOUT": str(visibility),
            "QUANTFLEET_BROKER_URL": broker,
        }  # fmt: skip
        if database is not None:
            self.env["QUANTFLEET_DATABASE_URL"] = database

    def worker(self, slots: int = 1, *, cli: bool = False) -> subprocess.Popen[bytes]:
        """Start a Celery worker process; its output goes to worker-N.log under the test's folder."""
        command = [sys.executable, "-m", "quantfleet.dispatch.celery_worker", "--loglevel", "INFO"]
        env = self.env
        if cli:  # the face: the broker from the flag, not the environment
            command = [str(Path(sys.executable).with_name("quantfleet")), "worker", "--broker", self.broker]
            env = {k: v for k, v in self.env.items() if k != "QUANTFLEET_BROKER_URL"}
        with (self.root / f"worker-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [*command, "--slots", str(slots), "--grace", "0"],
                env=env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def submit(self, source: str = COUNTING_STRATEGY, *, limits: Limits | None = None, **params: Any) -> Job:
        path = write_strategy(self.root, "s.py", source)
        code = self.service.put_code(path.read_bytes(), path.name)
        spec = JobSpec(
            code=code, universe=("AAA",), snapshot=self.snapshot, owner="celery",
            params={"counter": str(self.counter), **params}, limits=limits or Limits(),
        )  # fmt: skip
        return self.service.submit(spec)

    def executions(self) -> list[list[str]]:
        return [line.split() for line in self.counter.read_text().splitlines()] if self.counter.exists() else []

    def wait_ended(self, job: Job, timeout: float = 60) -> Job:
        wait_until(lambda: self.service.get(job.id).terminal, timeout=timeout, what=f"job {job.id} to end")
        return self.service.get(job.id)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.root.glob("worker-*.log")))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.celery.close()
        self.service.db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Return the job database: None (SQLite in the home), or a fresh schema in the real PostgreSQL."""
    if request.param == "sqlite":
        yield None
        return
    require_server("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START)
    with postgres_schema() as url:
        yield url


@pytest.fixture
def fleet(tmp_path: Path, redis: Redis, database: str | None) -> Iterator[Fleet]:
    f = Fleet(tmp_path, redis.url, database=database)
    yield f
    f.close()


def _queued_messages(fleet: Fleet) -> list[dict[str, Any]]:
    import redis as redis_client

    client = redis_client.Redis.from_url(fleet.broker)
    try:
        return [json.loads(raw) for raw in client.lrange(QUEUE, 0, -1)]
    finally:
        client.close()


def test_a_message_carries_only_the_job_id_and_a_worker_runs_it_once(fleet: Fleet) -> None:
    job = fleet.submit(tag=1)
    [message] = _queued_messages(fleet)  # published after the commit, before any worker exists
    body = json.loads(__import__("base64").b64decode(message["body"]))
    assert body[0] == [job.id]
    assert body[1] == {}
    assert message["headers"]["task"] == "quantfleet.run_job"
    fleet.worker()
    done = fleet.wait_ended(job)
    assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
    assert done.attempt == 1
    assert len(fleet.executions()) == 1
    assert sorted(a.name for a in fleet.service.artifacts(job.id)) == sorted(RUN_FOLDER)


def test_a_duplicate_delivery_of_one_job_id_runs_it_once(fleet: Fleet) -> None:
    job = fleet.submit(tag=7, seconds=1.0)
    fleet.dispatch(job.id)  # two more deliveries of the same id
    fleet.dispatch(job.id)
    fleet.worker(slots=2)
    done = fleet.wait_ended(job)
    assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
    wait_until(lambda: not _queued_messages(fleet), timeout=30, what="every duplicate to be consumed")
    events = [(e.event, e.attempt, e.at.isoformat()) for e in fleet.service.events(job.id)]
    assert len(fleet.executions()) == 1, (events, fleet.logs())
    assert done.attempt == 1
    assert fleet.logs().count("nothing to claim for the message") == 2  # both duplicates came, and did nothing


def test_kill_9_of_a_celery_worker_requeues_the_job_and_another_worker_completes_it_once(fleet: Fleet) -> None:
    job = fleet.submit(FIRST_RUN_SLOW)
    first = fleet.worker()
    started = wait_until(fleet.executions, timeout=60, what="the first worker to start the job")
    first.kill()  # SIGKILL: no ack, no release; only the lease can tell
    first.wait(10)
    orphan = int(started[0][1])
    wait_until(lambda: not alive(orphan), timeout=10, what="the orphaned child to end itself")
    fleet.worker()  # its reaper re-queues the job once the lease expires; the service publishes the id again
    done = fleet.wait_ended(job, timeout=90)
    assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
    assert done.attempt == 2
    assert len(fleet.executions()) == 2
    recorded = fleet.service.artifacts(job.id)
    assert sorted(a.name for a in recorded) == sorted(RUN_FOLDER)  # exactly one set
    assert {a.attempt for a in recorded} == {2}
    assert fleet.service.attempts(job.id)[0].state == "lost"


def test_a_redis_restart_loses_nothing(fleet: Fleet, redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    fleet.worker()
    running = fleet.submit(tag=1, seconds=4.0)
    wait_until(fleet.executions, timeout=60, what="the job to start")
    redis.stop()  # every message, acknowledged or not, is gone with it
    late = fleet.submit(tag=2)  # the publish fails; the job stays queued in the database
    assert "stays queued" in caplog.text
    assert fleet.service.get(late.id).state is JobState.QUEUED
    redis.start()
    assert fleet.wait_ended(running).state is JobState.SUCCEEDED, fleet.logs()
    done = fleet.wait_ended(late, timeout=60)  # the sweeper published it again once Redis was back
    assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
    assert sorted(line[0] for line in fleet.executions()) == ["1", "2"]
    assert fleet.service.get(running.id).attempt == 1


@pytest.fixture
def short_visibility(tmp_path: Path, redis: Redis) -> Iterator[Fleet]:
    f = Fleet(tmp_path, redis.url, visibility=1.0)
    yield f
    f.close()


def test_a_job_longer_than_the_visibility_timeout_runs_once(short_visibility: Fleet) -> None:
    fleet = short_visibility
    job = fleet.submit(tag=3, seconds=6.0)  # Redis re-delivers the unacknowledged message after 1 s
    fleet.worker(slots=2)
    done = fleet.wait_ended(job)
    assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
    assert done.attempt == 1
    assert len(fleet.executions()) == 1
    assert "nothing to claim for the message" in fleet.logs()  # the re-delivery came, and did nothing


def test_smoke_on_the_machines_redis(tmp_path: Path) -> None:
    require_server("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --save '' --appendonly no")
    fleet = Fleet(tmp_path, "redis://127.0.0.1:6379/15")
    try:
        fleet.worker(cli=True)  # quantfleet worker --broker redis://127.0.0.1:6379/15
        job = fleet.submit(tag=9)
        done = fleet.wait_ended(job)
        assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
        assert len(fleet.executions()) == 1
    finally:
        fleet.close()


def test_the_api_answers_503_while_redis_is_down_and_a_retried_submission_runs_once(fleet: Fleet, redis: Redis) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    from quantfleet.api import create_app
    from quantfleet.dispatch.celery_app import BrokerGate
    from quantfleet.users import UserService

    users = UserService(fleet.service.db)
    users.add_user("ana")
    token = users.create_token("ana")[0]
    gate = BrokerGate(fleet.celery, ttl=60.0)  # a long memory, so the publish-after-commit failure is reached
    api_service = JobService.from_settings(fleet.settings)
    app = create_app(fleet.settings, service=api_service, auth=users, dispatch=gate)
    http = TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False)
    try:
        _refuse_while_down_then_accept_once(fleet, redis, http)
    finally:
        http.close()
        api_service.db.dispose()


def _refuse_while_down_then_accept_once(fleet: Fleet, redis: Redis, http: Any) -> None:
    from quantfleet.api.accept import WITHDRAWN_BY

    def submit(key: str, tag: int) -> Any:
        spec = {"symbols": ["AAA"], "start": "2024-01-02", "end": "2024-03-28",
                "params": {"counter": str(fleet.counter), "tag": tag}}  # fmt: skip
        files = {"strategy": ("s.py", COUNTING_STRATEGY.encode(), "text/x-python"),
                 "spec": (None, json.dumps(spec), "application/json")}  # fmt: skip
        return http.post("/v1/backtests", files=files, headers={"Idempotency-Key": key})

    def jobs() -> list[Job]:
        return fleet.service.list(owner="ana").items

    def metric(name: str) -> str:
        return next(line for line in http.get("/metrics").text.splitlines() if line.startswith(name))

    fleet.worker()
    assert http.get("/readyz").json()["checks"] == {"database": "ok", "object_store": "ok", "broker": "ok"}
    first = submit("k1", 1)
    assert first.status_code == 201, first.text
    assert fleet.wait_ended(fleet.service.get(first.json()["id"])).state is JobState.SUCCEEDED, fleet.logs()
    assert metric("quantfleet_broker_up") == "quantfleet_broker_up 1.0"

    redis.stop()
    refused = submit("k2", 2)  # the gate still remembers the broker up: the row is committed, the publish fails
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    assert "broker" in refused.json()["detail"]
    assert "Idempotency-Key" in refused.json()["detail"]
    [withdrawn] = [j for j in jobs() if j.id != first.json()["id"]]
    assert withdrawn.state is JobState.CANCELLED  # so nothing runs it when the broker is back
    assert withdrawn.cancelled_by == WITHDRAWN_BY
    again = submit("k2", 2)  # now the gate knows: refused before anything is stored
    assert again.status_code == 503
    assert len(jobs()) == 2
    ready = http.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["retry-after"]
    assert "broker" in ready.json()["detail"]
    assert metric("quantfleet_broker_up") == "quantfleet_broker_up 0.0"

    redis.start()
    wait_until(lambda: http.get("/readyz").status_code == 200, timeout=30, what="/readyz to see the broker again")
    retried = submit("k2", 2)  # the client's retry: same key, same body
    assert retried.status_code == 201, retried.text
    replayed = submit("k2", 2)
    assert replayed.json() == retried.json()
    assert replayed.headers["idempotent-replayed"] == "true"
    done = fleet.wait_ended(fleet.service.get(retried.json()["id"]))
    assert done.state is JobState.SUCCEEDED, (done.error, fleet.logs())
    assert sorted(line[0] for line in fleet.executions()) == ["1", "2"]  # the refused attempts never ran
    assert len(jobs()) == 3
