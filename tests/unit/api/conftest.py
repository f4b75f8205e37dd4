"""Fixtures of the HTTP API tests: a home with a tiny market, the job and user services, a client per user."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 under its test client; httpx (which the brief pins) still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from quantfleet.api import ApiSettings, create_app
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService

HOLD = b"from quantfleet import Strategy\n\n\nclass Hold(Strategy):\n    def on_bar(self, ctx, bars):\n        pass\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Return settings of a fresh home (SQLite, local objects) holding a quarter of daily bars for AAA, BBB."""
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
    """Return bearer tokens of alice, bob (users) and root (an admin)."""
    users.add_user("alice")
    users.add_user("bob")
    users.add_user("root", admin=True)
    return {name: users.create_token(name, label="test")[0] for name in ("alice", "bob", "root")}


@pytest.fixture
def api_settings() -> ApiSettings:
    """Return the API's limits (defaults)."""
    return ApiSettings()


@pytest.fixture
def app(settings: Settings, service: JobService, users: UserService, api_settings: ApiSettings) -> FastAPI:
    """Return the API over the home."""
    return create_app(settings, service=service, auth=users, api_settings=api_settings)


Client = Callable[[str | None], TestClient]


@pytest.fixture
def client(app: FastAPI, tokens: dict[str, str]) -> Iterator[Client]:
    """Return ``client(user)``: a test client sending that user's token (None: no token)."""
    made: list[TestClient] = []

    def make(user: str | None) -> TestClient:
        headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
        c = TestClient(app, headers=headers, raise_server_exceptions=False)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def make_spec(**kw: Any) -> dict[str, Any]:
    """Return a backtest spec part: AAA over Q1 2024, with ``kw`` on top."""
    return {"symbols": ["AAA"], "start": "2024-01-01", "end": "2024-03-31", **kw}


Submit = Callable[..., httpx.Response]


@pytest.fixture
def submit(client: Client) -> Submit:
    """Return ``submit(user, code=..., name=..., kind="backtests", headers=..., **spec)``: POST a submission."""

    def go(
        user: str | None,
        *,
        code: bytes = HOLD,
        name: str = "hold.py",
        kind: str = "backtests",
        headers: dict[str, str] | None = None,
        raw_spec: str | None = None,
        **kw: Any,
    ) -> httpx.Response:
        part = raw_spec if raw_spec is not None else json.dumps(make_spec(**kw))
        response: httpx.Response = client(user).post(
            f"/v1/{kind}",
            files={"strategy": (name, code, "text/x-python"), "spec": (None, part, "application/json")},
            headers=headers or {},
        )
        return response

    return go
