"""The deployments pages against the real HTTP API (in process) over a paper deployment that has traded."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from quantfleet.api import create_app as create_api
from quantfleet.client import NotFound
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market
from quantfleet.testing.live import traded_paper_deployment
from quantfleet.users import UserService
from quantfleet.web import charts
from quantfleet.web.app import route
from quantfleet.web.common import Api
from quantfleet.web.format import at_text, trigger_text
from quantfleet.web.gateway import describe
from quantfleet.web.pages import deployment, deployments

# Dash 4 deprecates its DataTable (the pages build them; the browser tests show they work as they are).
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Api, dict[str, str], str]]:
    """Return the real API in process, alice's and bob's tokens, and alice's deployment after three runs."""
    settings = Settings(home=tmp_path / "home")
    tiny_market(settings)
    dep_id = traded_paper_deployment(settings, owner="alice")
    service = JobService.from_settings(settings)
    users = UserService(service.db)
    tokens = {}
    for name in ("alice", "bob"):
        users.add_user(name)
        tokens[name] = users.create_token(name, label="web")[0]
    with TestClient(create_api(settings, service=service, auth=users)) as http:
        yield Api("http://testserver", transport=http._transport), tokens, dep_id


def _text(component: Any) -> str:
    return str(component)


def test_the_page_shows_status_positions_orders_and_pnl(api: tuple[Api, dict[str, str], str]) -> None:
    where, tokens, dep_id = api
    with where.open(tokens["alice"]) as gw:
        dep = gw.deployment(dep_id)
        listed = gw.deployments()
    assert dep["runs"] == 3
    positions = {r["symbol"]: r for r in deployment.position_rows(dep)}
    assert {s: r["quantity"] for s, r in positions.items()} == {"AAA": 20.0, "BBB": 10.0}
    assert all(r["last_price"] != "" and isinstance(r["unrealized"], float) for r in positions.values())
    orders = deployment.order_rows(dep)
    assert len(orders) == 6
    assert {o["side"] for o in orders} == {"buy"}
    assert sorted(o["status"] for o in orders).count("filled") == 4
    assert [o["run"] for o in orders] == [3, 3, 2, 2, 1, 1]  # newest first
    sections = deployment.books(dep)
    assert [s.children[0].children for s in sections] == [
        "Account",
        "Strategy state (ctx.state)",
        "P&L",
        "Positions",
        "Orders",
    ]
    assert "P&L since the first run" in _text(sections[0])
    pnl = dep["pnl"]
    assert len(pnl) >= 2
    figure = charts.pnl_figure(pnl)
    assert [t.name for t in figure.data] == ["Equity", "Cash"]
    assert float(figure.data[0].y[-1]) == pytest.approx(dep["equity"])
    now = datetime.now(UTC)
    title, facts = deployment.header(dep, now=now)
    assert "active" in _text(title)
    assert "cron 0 10 * * MON-FRI on XNYS sessions" in _text(facts)
    assert "2024-03-06 15:00 UTC" in _text(facts)  # the next run after the third
    assert deployment.controls_disabled("active") == (False, True, False, False)
    row = deployments.row(listed[0], now=now)
    assert row["link"] == f"[buyer](/deployments/{dep_id})"
    assert row["runs"] == 3
    assert row["universe"] == "AAA, BBB"


def test_pause_resume_kill_with_flatten_and_stop(api: tuple[Api, dict[str, str], str]) -> None:
    where, tokens, dep_id = api
    with where.open(tokens["alice"]) as gw:
        assert "Paused" in _text(deployment.act(gw, dep_id, "pause"))
        assert gw.deployment(dep_id)["status"] == "paused"
        assert deployment.controls_disabled("paused") == (True, False, False, False)
        assert "Resumed" in _text(deployment.act(gw, dep_id, "resume"))
        assert gw.deployment(dep_id)["status"] == "active"
        killed = deployment.act(gw, dep_id, "kill", flatten=True)
        assert "positions sent to close" in _text(killed)
        dep = gw.deployment(dep_id)
        assert dep["status"] == "paused"
        assert dep["reason"] == "kill switch (flatten)"
        assert "skipped while paused" in _text(deployment.header(dep, now=datetime.now(UTC))[1])
        rows = deployment.order_rows(dep)
        kills = [r for r in rows if "-kill-" in r["client_id"]]
        assert {r["run"] for r in kills} == {"kill switch"}
        assert sorted((r["symbol"], r["side"], r["quantity"]) for r in kills) == [
            ("AAA", "sell", 20.0),
            ("BBB", "sell", 10.0),
        ]
        assert "Stopped for good" in _text(deployment.act(gw, dep_id, "stop"))
        assert deployment.controls_disabled("stopped") == (True, True, True, True)
        refused = _text(deployment.act(gw, dep_id, "resume"))
    assert "Could not resume the deployment" in refused
    assert "stays stopped" in refused
    assert "qf-alert-error" in refused


def test_another_users_deployment_is_not_found_with_the_fix(api: tuple[Api, dict[str, str], str]) -> None:
    where, tokens, dep_id = api
    with where.open(tokens["bob"]) as gw:
        assert gw.deployments() == []
        with pytest.raises(NotFound) as caught:
            gw.deployment(dep_id)
        refused = _text(deployment.act(gw, dep_id, "pause"))
    assert "GET /v1/deployments" in describe(caught.value)
    assert "Could not pause" in refused
    with where.open(tokens["alice"]) as gw:
        assert gw.deployment(dep_id)["status"] == "active"  # bob's refused pause changed nothing


def test_the_routes_and_the_texts() -> None:
    assert "deployment-kill" in str(route("/deployments/abc", "", "t"))
    assert "deployments-table" in str(route("/deployments", "", "t"))
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert at_text(now + timedelta(hours=3, minutes=5), now=now) == "2026-01-05 15:05 UTC (in 3 h 05 m)"
    assert at_text("2026-01-05T11:59:30Z", now=now) == "2026-01-05 11:59 UTC (30 s ago)"
    assert at_text(None, now=now) == ""
    assert trigger_text({"kind": "bars"}) == "each bar (MQTT)"
    assert trigger_text({"kind": "cron", "cron": "0 17 * * *", "sessions_only": False}) == "cron 0 17 * * * any day"


def test_a_long_pnl_series_is_downsampled_for_display() -> None:
    start = datetime(2004, 1, 1, tzinfo=UTC)
    n = 20 * 252 * 26  # twenty years of 15-minute marks
    points = [
        {"at": (start + timedelta(minutes=15 * i)).isoformat(), "cash": 1e5, "equity": 1e5 + (i % 977)}
        for i in range(n)
    ]
    figure = charts.pnl_figure(points)
    assert all(len(t.x) <= charts.MAX_POINTS for t in figure.data)
    assert max(figure.data[0].y) == 1e5 + 976  # the peaks survive the downsampling
