"""Fixtures of the client tests: a home, the API served by a real uvicorn on a free loopback port, tokens."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from quantfleet.api import create_app
from quantfleet.core.settings import Settings
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market, wait_until
from quantfleet.testing.workers import unsandboxed_worker
from quantfleet.users import UserService

HOLD = "from quantfleet import Strategy\n\n\nclass Hold(Strategy):\n    def on_bar(self, ctx, bars):\n        pass\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Return settings of a fresh home holding a quarter of daily bars for AAA, BBB."""
    s = Settings(home=tmp_path / "home", lease_seconds=30.0)
    tiny_market(s)
    return s


@pytest.fixture
def service(settings: Settings) -> JobService:
    """Return the job service of the home."""
    return JobService.from_settings(settings)


@pytest.fixture
def users(service: JobService) -> UserService:
    """Return the user service on the job database."""
    return UserService(service.db)


@pytest.fixture
def tokens(users: UserService) -> dict[str, str]:
    """Return bearer tokens of alice and bob."""
    users.add_user("alice")
    users.add_user("bob", max_queued=1)
    return {name: users.create_token(name, label="test")[0] for name in ("alice", "bob")}


@pytest.fixture
def strategy(tmp_path: Path) -> Path:
    """Return a strategy file that holds cash."""
    path = tmp_path / "hold.py"
    path.write_text(HOLD)
    return path


Serve = Callable[[Any], str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Return ``serve(asgi_app)``: serve it with uvicorn on a free loopback port, in a thread; return its URL."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        wait_until(lambda: server.started, timeout=20, what="uvicorn to start")
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def url(settings: Settings, service: JobService, users: UserService, tokens: dict[str, str], serve: Serve) -> str:
    """Return the URL of the real API over the home, served by uvicorn."""
    return serve(create_app(settings, service=service, auth=users))


@pytest.fixture
def worker(settings: Settings, service: JobService) -> Iterator[Worker]:
    """Return a one-slot worker on the home (step mode: ``run_until_empty``)."""
    made = unsandboxed_worker(settings, slots=1, service=service)
    yield made
    made.shutdown(grace=0)
