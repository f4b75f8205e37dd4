"""The new-deployment form against the real HTTP API (in process): what it checks, what it creates, and the
API's refusals shown field by field."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from quantfleet.api import create_app as create_api
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService
from quantfleet.web.app import route
from quantfleet.web.common import Api
from quantfleet.web.pages import deployments, newdeployment
from quantfleet.web.pages.newdeployment import build_deployment, create, problems_of
from quantfleet.web.pages.submit import decode_upload
from quantfleet.web.params import Declared, declared_parameters

pytestmark = pytest.mark.filterwarnings(r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning")

STRATEGY = "def run(ctx, size: int = 10, note: str = 'x'):\n    ctx.order('AAA', size)\n"
FORM: dict[str, Any] = {
    "values": {},
    "name": "",
    "symbols": "aaa, BBB",
    "trigger": "cron",
    "cron": "0 10 * * MON-FRI",
    "calendar": "XNYS",
    "half_days": "skip",
    "frequency": "1d",
    "broker": "paper",
    "account": "",
    "risk": {},
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Api, dict[str, str], Settings]]:
    """Return the real API in process over a quarter of bars, and the tokens of alice and of admin root."""
    settings = Settings(home=tmp_path / "home")
    tiny_market(settings)
    service = JobService.from_settings(settings)
    users = UserService(service.db)
    tokens = {}
    for name, admin in (("alice", False), ("root", True)):
        users.add_user(name, admin=admin)
        tokens[name] = users.create_token(name, label="web")[0]
    with TestClient(create_api(settings, service=service, auth=users)) as http:
        yield Api("http://testserver", transport=http._transport), tokens, settings


def _file() -> dict[str, Any]:
    contents = "data:text/x-python;base64," + base64.b64encode(STRATEGY.encode()).decode()
    name, text = decode_upload(contents, "sizer.py")
    declared = declared_parameters(text)
    return {"name": name, "text": text, "declared": [[p.name, p.type, p.default] for p in declared]}


def _declared(file: dict[str, Any]) -> list[Declared]:
    return [Declared(n, t, d) for n, t, d in file["declared"]]


def _stored(settings: Settings, dep_id: str) -> Any:
    return DeploymentService(JobService.from_settings(settings)).get(dep_id)


def test_a_filled_form_creates_a_paper_deployment_and_opens_its_page(
    api: tuple[Api, dict[str, str], Settings],
) -> None:
    where, tokens, settings = api
    file = _file()
    assert [p.name for p in _declared(file)] == ["size", "note"]
    form = {
        **FORM,
        "values": {"size": "25"},
        "name": "sizer-live",
        "account": "main",
        "risk": {"max_position": "100", "max_order_value": "5000", "max_daily_loss": "", "max_orders_per_day": "4"},
    }
    spec, problems = build_deployment(_declared(file), **form)
    assert problems == []
    with where.open(tokens["alice"]) as gw:
        message, path = create(gw, file, spec)
        assert "Created deployment sizer-live" in str(message)
        assert path is not None
        dep_id = path.removeprefix("/deployments/")
        assert path == f"/deployments/{dep_id}"
        dep = gw.deployment(dep_id)
        listed = gw.deployments()
    assert dep["status"] == "active"
    assert dep["universe"] == ["AAA", "BBB"]
    assert dep["broker"] == "paper"
    assert dep["account"] == "alice:main"
    assert dep["trigger"]["cron"] == "0 10 * * MON-FRI"
    assert dep["trigger"]["calendar"] == "XNYS"
    assert [d["id"] for d in listed] == [dep_id]
    stored = _stored(settings, dep_id).spec
    assert stored.params == {"size": 25}
    assert stored.risk.max_position == 100.0
    assert stored.risk.max_order_value == 5000.0
    assert stored.risk.max_daily_loss is None
    assert stored.risk.max_orders_per_day == 4
    assert stored.code_name == "sizer.py"


def test_an_on_bars_deployment_takes_its_frequency(api: tuple[Api, dict[str, str], Settings]) -> None:
    where, tokens, settings = api
    file = _file()
    spec, problems = build_deployment(_declared(file), **{**FORM, "trigger": "bars", "cron": "", "frequency": "1m"})
    assert problems == []
    with where.open(tokens["alice"]) as gw:
        _, path = create(gw, file, spec)
        assert path is not None
        dep = gw.deployment(path.removeprefix("/deployments/"))
    assert dep["trigger"]["kind"] == "bars"
    assert dep["name"] == "sizer"  # the file's name when the form names none
    assert _stored(settings, dep["id"]).spec.frequency.value == "1m"


def test_the_form_names_each_wrong_field_before_anything_is_sent() -> None:
    file = _file()
    form = {
        **FORM,
        "values": {"size": "ten"},
        "symbols": " , ",
        "cron": "0 10 * *",
        "account": "my account",
        "risk": {"max_position": "-5", "max_order_value": "lots", "max_orders_per_day": "2.5"},
    }
    _, problems = build_deployment(_declared(file), **form)
    text = "\n".join(problems)
    assert "parameter size must be int" in text
    assert "Symbols: give at least one" in text
    assert "Cron expression: '0 10 * *' has 4 fields; give five" in text
    assert "Paper account: 'my account' may hold only letters" in text
    assert "Max position per symbol (shares) must be positive" in text
    assert "Max order value: 'lots' is not a number" in text
    assert "Max orders per day: '2.5' is not a whole number" in text
    assert len(problems) == 7
    spec, problems = build_deployment(_declared(file), **{**FORM, "symbols": "brk.b ^gspc,BTC/USD"})
    assert problems == []
    assert spec["symbols"] == ["BRK.B", "^GSPC", "BTC/USD"]
    _, problems = build_deployment(_declared(file), **{**FORM, "symbols": "AAA AAA", "cron": ""})
    assert problems == [
        "Symbols: a ticker is listed twice; list each once",
        "Cron expression: give one, e.g. 0 10 * * MON-FRI (10:00 on weekdays)",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cron": "61 10 * * *"}, "Cron expression: "),
        ({"calendar": "NOPE"}, "Calendar: "),
        ({"cron": "0 3 * * SUN"}, "never fires inside a XNYS session"),
        ({"broker": "alpaca", "account": ""}, "only an admin may create one over HTTP"),
    ],
)
def test_the_apis_refusals_are_shown_and_nothing_is_created(
    api: tuple[Api, dict[str, str], Settings], change: dict[str, str], expected: str
) -> None:
    where, tokens, _ = api
    file = _file()
    spec, problems = build_deployment(_declared(file), **{**FORM, **change})
    assert problems == []  # each passes the form's checks: only the API can tell
    with where.open(tokens["alice"]) as gw:
        message, path = create(gw, file, spec)
        assert gw.deployments() == []
    assert path is None
    assert expected in str(message)
    assert "qf-alert-error" in str(message)


def test_a_field_the_api_names_gets_the_forms_label(api: tuple[Api, dict[str, str], Settings]) -> None:
    where, tokens, _ = api
    file = _file()
    spec, _ = build_deployment(_declared(file), **FORM)
    with where.open(tokens["alice"]) as gw:
        try:
            gw.create_deployment(file["name"], file["text"].encode(), {**spec, "risk": {"max_position": -1}})
        except Exception as exc:
            shown = problems_of(exc)
        else:
            raise AssertionError("a negative limit was accepted")
    assert shown[0] == "The API refused the deployment (HTTP 422); fix these fields and create it again:"
    assert any(s.startswith("Max position per symbol (shares): ") for s in shown[1:]), shown


def test_the_page_is_reachable_from_the_list() -> None:
    page = str(route("/deployments/new", "", "t"))
    for field in ("newdep-upload", "newdep-symbols", "newdep-cron", "newdep-calendar", "newdep-broker"):
        assert field in page
    assert all(f"newdep-{key}" in page for key, _, _ in newdeployment.RISK)
    assert "/deployments/new" in str(deployments.layout())
    assert "deployment-kill" in str(route("/deployments/abc", "", "t"))  # any other id is a deployment's page
