"""The pages' logic against the real HTTP API (in process): rows, paging, actions, the submit form, errors."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from quantfleet.api import create_app as create_api
from quantfleet.client import JobInfo, ServerUnavailable
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService
from quantfleet.web import create_app
from quantfleet.web.app import route
from quantfleet.web.common import Api
from quantfleet.web.format import duration, job_row
from quantfleet.web.gateway import Gateway, describe
from quantfleet.web.pages import jobs, signin, submit
from quantfleet.web.params import Declared

HOLD = b"def run(ctx, n: int = 1):\n    pass\n"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Api, str, JobService]]:
    """Return the real API in process (its transport), alice's token and the job service behind it."""
    settings = Settings(home=tmp_path / "home")
    tiny_market(settings)
    service = JobService.from_settings(settings)
    users = UserService(service.db)
    users.add_user("alice")
    token = users.create_token("alice", label="web")[0]
    with TestClient(create_api(settings, service=service, auth=users)) as http:
        yield Api("http://testserver", transport=http._transport), token, service


def _submit(gw: Gateway, n: int) -> JobInfo:
    return gw.submit("backtest", "hold.py", HOLD, {"symbols": ["AAA"], "params": {"n": n}})


def test_a_page_of_jobs_pages_with_cursors(api: tuple[Api, str, JobService]) -> None:
    where, token, _ = api
    with where.open(token) as gw:
        made = [_submit(gw, i).id for i in range(jobs.PAGE_SIZE + 3)]
        now = datetime.now(UTC)
        store = {"stack": [None], "page": 0}
        rows, cursor = jobs.page_of(gw, store=store, states=[], q=None, children=False, now=now)
        assert [r["id"] for r in rows] == made[::-1][: jobs.PAGE_SIZE]
        assert rows[0]["state_key"] == "queued"
        assert rows[0]["params"] == f"n={jobs.PAGE_SIZE + 2}"
        store = jobs.pager(store, "next", cursor)
        rows, cursor = jobs.page_of(gw, store=store, states=[], q=None, children=False, now=now)
        assert [r["id"] for r in rows] == made[::-1][jobs.PAGE_SIZE :]
        assert cursor is None
        assert jobs.pager(store, "prev", None) == {"stack": store["stack"], "page": 0}
        assert jobs.pager(store, "reset", None) == {"stack": [None], "page": 0}
        none, _ = jobs.page_of(
            gw, store={"stack": [None], "page": 0}, states=["failed"], q=None, children=False, now=now
        )
        assert none == []


def test_cancel_and_rerun_report_each_job(api: tuple[Api, str, JobService]) -> None:
    where, token, _ = api
    with where.open(token) as gw:
        job = _submit(gw, 1)
        assert jobs.act(gw, "cancel", [job.id]) == f"{job.id[:8]}: cancel requested"
        assert gw.job(job.id).state == "cancelled"
        text = jobs.act(gw, "rerun", [job.id, "0" * 32])
    assert text.startswith(f"{job.id[:8]}: rerun as ")
    assert "00000000: " in text.split(";")[1]


def test_the_fleet_tiles_show_the_queue(api: tuple[Api, str, JobService]) -> None:
    where, token, _ = api
    with where.open(token) as gw:
        _submit(gw, 1)
        tiles = jobs.fleet_summary(gw.fleet())
    assert "Queued" in str(tiles[0])
    assert "'1'" in str(tiles[0])


def test_a_bad_token_is_refused_with_the_fix(api: tuple[Api, str, JobService]) -> None:
    where, token, _ = api
    assert signin.check_token(where, token) is None
    assert "sign in again" in (signin.check_token(where, "qf_wrong") or "")
    assert signin.check_token(where, "  ") == "Paste a token first."


def test_an_unreachable_api_is_a_message() -> None:
    gw = Gateway("http://127.0.0.1:9", "t", timeout=0.5, retries=0)
    with pytest.raises(ServerUnavailable) as caught:
        gw.fleet()
    gw.close()
    assert "cannot be reached" in describe(caught.value)


def test_the_submit_form_checks_before_sending() -> None:
    declared = [Declared("fast", "int", 10), Declared("slow", "int", 30)]
    spec, problems = submit.build_spec(
        declared,
        kind="backtest",
        values={"fast": "5"},
        grids={},
        symbols=["AAA"],
        start="2024-01-01",
        end="2024-03-01",
        snapshot="0",
        metric=None,
    )
    assert problems == []
    assert spec == {
        "symbols": ["AAA"],
        "start": "2024-01-01",
        "end": "2024-03-01",
        "params": {"fast": 5},
        "snapshot": 0,
    }
    _, problems = submit.build_spec(
        declared,
        kind="sweep",
        values={"fast": "x"},
        grids={"slow": "30:5:5"},
        symbols=[],
        start="2024-05-01",
        end="2024-01-01",
        snapshot=None,
        metric="",
    )
    assert any("fast must be int" in p for p in problems)
    assert "pick at least one symbol" in problems
    assert any("is after end" in p for p in problems)
    assert any("below the start" in p for p in problems)
    spec, problems = submit.build_spec(
        declared,
        kind="sweep",
        values={},
        grids={"fast": "2:10:2", "slow": "20,30"},
        symbols=["AAA"],
        start=None,
        end=None,
        snapshot=None,
        metric="sortino",
    )
    assert problems == []
    assert spec["grid"] == ["fast=2:10:2", "slow=20,30"]
    assert spec["metric"] == "sortino"


def test_a_submitted_form_runs_as_its_declared_types(api: tuple[Api, str, JobService]) -> None:
    where, token, service = api
    declared = [Declared("n", "int", 1)]
    spec, problems = submit.build_spec(
        declared,
        kind="backtest",
        values={"n": "7"},
        grids={},
        symbols=["AAA"],
        start=None,
        end=None,
        snapshot=None,
        metric=None,
    )
    assert problems == []
    with where.open(token) as gw:
        job = gw.submit("backtest", "hold.py", HOLD, spec)
    assert service.get(job.id).spec.params == {"n": 7}


def test_rows_show_time_to_start_and_duration() -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    job = JobInfo(
        id="a" * 32,
        kind="backtest",
        state="running",
        owner="alice",
        strategy="s.py",
        priority=0,
        attempt=1,
        submitted_at=at,
        updated_at=at,
        started_at=at + timedelta(seconds=3),
    )
    row = job_row(job, now=at + timedelta(seconds=75))
    assert (row["to_start"], row["duration"]) == ("3.0 s", "1 m 12 s")
    assert row["link"] == f"[aaaaaaaa](/jobs/{'a' * 32})"
    assert duration(0.25) == "250 ms"
    assert duration(3 * 86400 + 7200) == "3 d 2 h"
    ended = dataclasses.replace(job, state="failed", finished_at=at + timedelta(seconds=9), reason="memory")
    assert job_row(ended, now=at)["state"] == "failed (memory)"  # the limit it hit, beside the state
    plain = dataclasses.replace(ended, reason="error")
    assert job_row(plain, now=at)["state"] == "failed"  # the strategy's own exception: the state says it


def test_signed_out_every_path_is_the_sign_in_page() -> None:
    app = create_app("http://127.0.0.1:9")
    assert app.layout is not None
    assert "signin-token" in str(route("/jobs/abc", "", None))
    assert "detail-job" in str(route("/jobs/abc", "", "t"))
    assert "compare-jobs" in str(route("/compare", "?ids=a,b", "t"))
    assert "There is no page" in str(route("/nowhere", "", "t"))
