"""New deployment (``/deployments/new``): a strategy file, its parameters, symbols, a trigger, a broker and
risk limits, checked here before ``POST /v1/deployments``; on success the new deployment's page opens.

The parameters form is the submit page's (read from the file's syntax tree,
never run). The API checks everything again; a field it refuses is named on
the page in the form's words (its problem+json ``errors``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html

from quantfleet.client import ClientError
from quantfleet.core.types import Frequency
from quantfleet.web.common import TOKEN, URL, Api, alert, card
from quantfleet.web.gateway import Gateway, describe
from quantfleet.web.pages.submit import MAX_UPLOAD, decode_upload, params_form
from quantfleet.web.params import Declared, FormError, coerce_value, declared_parameters

__all__ = ["FIELDS", "RISK", "build_deployment", "create", "layout", "problems_of", "register"]

PATH = "/deployments/new"
RISK: tuple[tuple[str, str, str], ...] = (
    ("max_position", "Max position per symbol (shares)", "float"),
    ("max_order_value", "Max order value", "float"),
    ("max_daily_loss", "Max daily loss", "float"),
    ("max_orders_per_day", "Max orders per day", "int"),
)
"""The risk limits: the API's field, the form's label, and the number it takes."""
FIELDS: dict[str, str] = {
    "symbols": "Symbols",
    "name": "Name",
    "trigger": "Trigger",
    "trigger.cron": "Cron expression",
    "trigger.calendar": "Calendar",
    "trigger.half_days": "Half days",
    "frequency": "Bar frequency",
    "broker": "Broker",
    "account": "Paper account",
    "params": "Parameters",
    "strategy": "Strategy file",
    **{f"risk.{key}": label for key, label, _ in RISK},
}
"""The form's label of each field the API may name in an error."""
_SYMBOL = re.compile(r"^[A-Z0-9^][A-Z0-9.\-/_^=]{0,31}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.\-]*$")


def _field(label: str, component: Any) -> html.Label:
    return html.Label([label, " ", component])


def _input(id: str, **props: Any) -> dcc.Input:
    return dcc.Input(id=id, type="text", className="qf-input", **props)


def layout() -> html.Div:
    """Return the new-deployment form."""
    frequencies = [{"label": f.value, "value": f.value} for f in Frequency]
    risk = [_field(label, _input(f"newdep-{key}", placeholder="no limit")) for key, label, _ in RISK]
    return html.Div(
        [
            html.H1("New deployment"),
            html.P(
                [
                    "Deploy a strategy file to trade on a schedule or on each bar; paper trading unless an admin "
                    "picks Alpaca. ",
                    dcc.Link("Back to the deployments", href="/deployments"),
                ],
                className="qf-muted",
            ),
            html.Div(
                [
                    card(
                        "Strategy",
                        dcc.Upload(
                            id="newdep-upload",
                            children=html.Div(["Drop a .py file here or ", html.A("choose one")]),
                            className="qf-upload",
                            multiple=False,
                            max_size=MAX_UPLOAD,
                        ),
                        html.Div(id="newdep-file-info", className="qf-muted"),
                        dcc.Store(id="newdep-file"),
                        _field("Name", _input("newdep-name", placeholder="the file's name", maxLength=64)),
                        html.Div(
                            id="newdep-params",
                            children=html.P("Upload a strategy to see its parameters.", className="qf-muted"),
                        ),
                    ),
                    card(
                        "Market and trigger",
                        _field("Symbols", _input("newdep-symbols", placeholder="AAPL, MSFT")),
                        dcc.RadioItems(
                            id="newdep-trigger",
                            options=[
                                {"label": " On a schedule (cron)", "value": "cron"},
                                {"label": " On each bar (MQTT)", "value": "bars"},
                            ],
                            value="cron",
                            inline=True,
                            className="qf-radio",
                        ),
                        html.Div(
                            [
                                _field("Cron expression", _input("newdep-cron", placeholder="0 10 * * MON-FRI")),
                                _field("Calendar", _input("newdep-calendar", value="XNYS")),
                                _field(
                                    "After an early close",
                                    dcc.Dropdown(
                                        id="newdep-half-days",
                                        options=[
                                            {"label": "skip the run", "value": "skip"},
                                            {"label": "move it to the close", "value": "move"},
                                        ],
                                        value="skip",
                                        clearable=False,
                                    ),
                                ),
                            ],
                            id="newdep-cron-options",
                        ),
                        _field(
                            "Bar frequency",
                            dcc.Dropdown(id="newdep-frequency", options=frequencies, value="1d", clearable=False),
                        ),
                    ),
                    card(
                        "Broker",
                        dcc.RadioItems(
                            id="newdep-broker",
                            options=[
                                {"label": " Paper", "value": "paper"},
                                {"label": " Alpaca (admins only)", "value": "alpaca"},
                            ],
                            value="paper",
                            inline=True,
                            className="qf-radio",
                        ),
                        _field(
                            "Paper account",
                            _input("newdep-account", placeholder="its own account", maxLength=40),
                        ),
                    ),
                    card("Risk limits", *risk),
                ],
                className="qf-grid",
            ),
            html.Button("Create deployment", id="newdep-button", className="qf-button qf-primary", n_clicks=0),
            html.Div(id="newdep-message"),
        ]
    )


def _number(label: str, kind: str, text: Any, problems: list[str]) -> float | int | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        problems.append(f"{label}: {text!r} is not a number; give a positive number or leave it blank")
        return None
    if kind == "int" and not value.is_integer():
        problems.append(f"{label}: {text!r} is not a whole number; give e.g. 20 or leave it blank")
        return None
    if not value > 0 or value == float("inf"):
        problems.append(f"{label} must be positive, got {text!r}; leave it blank for no limit")
        return None
    return int(value) if kind == "int" else value


def build_deployment(
    declared: Sequence[Declared],
    *,
    values: Mapping[str, Any],
    name: str | None,
    symbols: str | None,
    trigger: str,
    cron: str | None,
    calendar: str | None,
    half_days: str | None,
    frequency: str | None,
    broker: str | None,
    account: str | None,
    risk: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """Return the arguments of ``Client.create_deployment`` (but the file) and the problems found.

    Create only when there are no problems; each names the field and the fix.
    """
    problems: list[str] = []
    by_name = {p.name: p for p in declared}
    params: dict[str, Any] = {}
    for key, text in values.items():
        if key in by_name and text not in (None, ""):
            try:
                params[key] = coerce_value(by_name[key], text)
            except FormError as exc:
                problems.append(str(exc))
    listed = [s.strip().upper() for s in re.split(r"[,\s]+", symbols or "") if s.strip()]
    if not listed:
        problems.append("Symbols: give at least one, e.g. AAPL, MSFT")
    for symbol in listed:
        if not _SYMBOL.match(symbol):
            problems.append(f"Symbols: {symbol!r} is not a ticker; separate tickers with commas")
    if len(set(listed)) < len(listed):
        problems.append("Symbols: a ticker is listed twice; list each once")
    spec: dict[str, Any] = {"symbols": listed, "params": params}
    if trigger == "bars":
        spec["on_bars"] = True
    else:
        expression = " ".join((cron or "").split())
        fields = len(expression.split())
        if not expression:
            problems.append("Cron expression: give one, e.g. 0 10 * * MON-FRI (10:00 on weekdays)")
        elif fields != 5:
            problems.append(
                f"Cron expression: {expression!r} has {fields} fields; give five (minute hour day month weekday), "
                "e.g. 0 10 * * MON-FRI"
            )
        spec["schedule"] = expression
        spec["calendar"] = (calendar or "").strip().upper() or "XNYS"
        spec["half_days"] = half_days or "skip"
    try:
        spec["frequency"] = Frequency(frequency or "1d").value
    except ValueError:
        problems.append(f"Bar frequency: {frequency!r} is not one of {', '.join(f.value for f in Frequency)}")
    spec["broker"] = broker or "paper"
    text = (account or "").strip()
    if text and (len(text) > 40 or not _ACCOUNT.match(text)):
        problems.append(f"Paper account: {text!r} may hold only letters, digits, '.', '_' and '-' (40 at most)")
    if text:
        spec["account"] = text
    label = (name or "").strip()
    if len(label) > 64:
        problems.append(f"Name: {len(label)} characters; give 64 or fewer")
    if label:
        spec["name"] = label
    limits = {}
    for key, title, kind in RISK:
        value = _number(title, kind, risk.get(key), problems)
        if value is not None:
            limits[key] = value
    spec["risk"] = limits
    return spec, problems


def problems_of(exc: Exception) -> list[str]:
    """Return what the page shows for a refused create: the detail, then each field the API named, by its label."""
    if not isinstance(exc, ClientError):
        return [describe(exc)]
    fields = []
    for error in exc.problem.get("errors") or []:
        if not isinstance(error, dict):
            continue
        loc = [str(p) for p in error.get("loc") or [] if str(p) not in ("body", "spec")]
        path = ".".join(loc)
        label = FIELDS.get(path) or FIELDS.get(".".join(loc[:2])) or FIELDS.get(loc[0] if loc else "") or path
        fields.append(f"{label or 'The spec'}: {error.get('msg', 'invalid')}")
    if not fields:
        return [describe(exc)]
    return [f"The API refused the deployment (HTTP {exc.status}); fix these fields and create it again:", *fields]


def create(gw: Gateway, file: Mapping[str, Any], spec: dict[str, Any]) -> tuple[Any, str | None]:
    """Create the deployment; return the page's message and the path to open (None when refused)."""
    try:
        made = gw.create_deployment(file["name"], str(file["text"]).encode("utf-8"), spec)
    except Exception as exc:
        return html.Div([alert(p) for p in problems_of(exc)], id="newdep-problems"), None
    return alert(f"Created deployment {made['name']} ({made['id'][:8]}).", kind="ok"), f"/deployments/{made['id']}"


def _ids(values: Sequence[Any], ids: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {i["name"]: v for i, v in zip(ids, values, strict=False)}


def register(app: dash.Dash, api: Api) -> None:
    """Register the new-deployment page's callbacks."""

    @app.callback(
        Output("newdep-file", "data"),
        Output("newdep-file-info", "children"),
        Output("newdep-params", "children"),
        Input("newdep-upload", "contents"),
        State("newdep-upload", "filename"),
        prevent_initial_call=True,
    )
    def _file(contents: str | None, filename: str | None) -> tuple[Any, ...]:
        try:
            name, text = decode_upload(contents, filename)
            declared = declared_parameters(text)
        except FormError as exc:
            return None, alert(str(exc)), dash.no_update
        info = f"{name}: {len(text.encode()):,} bytes, {len(declared)} parameter(s)"
        data = {"name": name, "text": text, "declared": [[p.name, p.type, p.default] for p in declared]}
        return data, info, params_form(declared, prefix="newdep", grid=False)

    @app.callback(
        Output("newdep-cron-options", "style"),
        Output("newdep-account", "disabled"),
        Input("newdep-trigger", "value"),
        Input("newdep-broker", "value"),
    )
    def _shown(trigger: str, broker: str) -> tuple[dict[str, str], bool]:
        return ({"display": "none"} if trigger == "bars" else {"display": "block"}), broker != "paper"

    @app.callback(
        Output("newdep-message", "children"),
        Output(URL, "pathname", allow_duplicate=True),
        Input("newdep-button", "n_clicks"),
        State("newdep-file", "data"),
        State({"type": "newdep-param", "name": ALL}, "value"),
        State({"type": "newdep-param", "name": ALL}, "id"),
        State("newdep-name", "value"),
        State("newdep-symbols", "value"),
        State("newdep-trigger", "value"),
        State("newdep-cron", "value"),
        State("newdep-calendar", "value"),
        State("newdep-half-days", "value"),
        State("newdep-frequency", "value"),
        State("newdep-broker", "value"),
        State("newdep-account", "value"),
        *[State(f"newdep-{key}", "value") for key, _, _ in RISK],
        State(TOKEN, "data"),
        running=[(Output("newdep-button", "disabled"), True, False)],  # a second click cannot create a second one
        prevent_initial_call=True,
    )
    def _create(clicks: int, file: Any, values: Any, value_ids: Any, *rest: Any) -> tuple[Any, Any]:
        if not clicks:
            return dash.no_update, dash.no_update
        name, symbols, trigger, cron, calendar, half_days, frequency, broker, account = rest[:9]
        risk = dict(zip([key for key, _, _ in RISK], rest[9 : 9 + len(RISK)], strict=True))
        token = rest[-1]
        declared = [Declared(n, t, d) for n, t, d in (file or {}).get("declared", [])]
        spec, problems = build_deployment(
            declared,
            values=_ids(values, value_ids),
            name=name,
            symbols=symbols,
            trigger=trigger,
            cron=cron,
            calendar=calendar,
            half_days=half_days,
            frequency=frequency,
            broker=broker,
            account=account if broker == "paper" else None,
            risk=risk,
        )
        if not file:
            problems.insert(0, "Strategy file: upload the strategy's .py file first")
        if problems:
            return html.Div([alert(p) for p in problems], id="newdep-problems"), dash.no_update
        try:
            with api.open(token) as gw:
                message, path = create(gw, file, spec)
        except Exception as exc:  # signed out: the gateway refuses before any request
            return alert(describe(exc)), dash.no_update
        return message, path or dash.no_update
