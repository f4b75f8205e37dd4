"""One deployment (``/deployments/ID``): status, trigger and next run, the account, the P&L chart, positions,
orders and ``ctx.state``, with Pause, Resume, Stop and the kill switch.

Everything comes from ``GET /v1/deployments/{id}`` and the actions are its
``POST .../pause|resume|stop|kill``. Stop and the kill switch ask first (a
panel on the page, not a browser dialog): a stopped deployment cannot be
resumed, and the kill switch can also close every position at market. The
page refreshes every few seconds; the books are rebuilt only when they
changed, so the chart keeps its zoom and the tables their page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from quantfleet.web import charts
from quantfleet.web.common import TOKEN, Api, alert, card, clicked, graph, table
from quantfleet.web.format import DEPLOYMENT_COLOURS, at_text, trigger_text
from quantfleet.web.gateway import Gateway, describe

__all__ = [
    "ACTIONS",
    "CONFIRM",
    "act",
    "books",
    "controls_disabled",
    "fingerprint",
    "header",
    "layout",
    "order_rows",
    "position_rows",
    "register",
]

REFRESH_MS = 5_000
TABLE_ROWS = 15
ACTIONS = ("pause", "resume", "stop", "kill")
CONFIRM: Mapping[str, str] = {
    "stop": "Stop this deployment for good? Its runs end and it cannot be resumed (its records stay).",
    "kill": "Kill switch: pause the deployment now and cancel its open orders.",
}
"""What the confirmation panel asks before the irreversible actions."""
_DONE = {
    "pause": "Paused: its runs are skipped and its orders refused until you resume it.",
    "resume": "Resumed: it trades again from its next run.",
    "stop": "Stopped for good.",
    "kill": "Kill switch done: paused and its open orders cancelled.",
}
POSITION_COLUMNS = (
    ("symbol", "Symbol"),
    ("quantity", "Quantity"),
    ("average_cost", "Avg cost"),
    ("last_price", "Last"),
    ("value", "Value"),
    ("unrealized", "Unrealized P&L"),
)
ORDER_COLUMNS = (
    ("at", "At (UTC)"),
    ("run", "Run"),
    ("symbol", "Symbol"),
    ("side", "Side"),
    ("quantity", "Quantity"),
    ("type", "Type"),
    ("status", "Status"),
    ("filled", "Filled"),
    ("price", "Avg price"),
    ("reason", "Reason"),
    ("client_id", "Client id"),
)
_CELL = {"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px", "textAlign": "left"}


def layout(deployment_id: str) -> html.Div:
    """Return the page of one deployment (filled by callbacks)."""
    buttons = [
        html.Button("Pause", id="deployment-pause", className="qf-button", n_clicks=0, disabled=True),
        html.Button("Resume", id="deployment-resume", className="qf-button", n_clicks=0, disabled=True),
        html.Button("Stop", id="deployment-stop", className="qf-button qf-danger", n_clicks=0, disabled=True),
        html.Button("Kill switch", id="deployment-kill", className="qf-button qf-kill", n_clicks=0, disabled=True),
    ]
    confirm = html.Div(
        [
            html.P(id="deployment-confirm-text", className="qf-confirm-text"),
            dcc.Checklist(
                id="deployment-flatten",
                options=[{"label": " Also flatten: close every position at market", "value": "yes"}],
                value=[],
                className="qf-check",
            ),
            html.Div(
                [
                    html.Button("Confirm", id="deployment-confirm-yes", className="qf-button qf-kill", n_clicks=0),
                    html.Button("Keep it running", id="deployment-confirm-no", className="qf-button", n_clicks=0),
                ],
                className="qf-row",
            ),
        ],
        id="deployment-confirm",
        className="qf-card qf-confirm",
        role="alertdialog",
        style={"display": "none"},
    )
    return html.Div(
        [
            dcc.Store(id="deployment-id", data=deployment_id),
            dcc.Store(id="deployment-seen", data=None),
            dcc.Store(id="deployment-pending", data=None),
            dcc.Interval(id="deployment-interval", interval=REFRESH_MS, n_intervals=0),
            html.Div(id="deployment-header", className="qf-detail-header"),
            html.Div(buttons, className="qf-actions qf-actions-left"),
            confirm,
            html.Div(id="deployment-message"),
            html.Div(id="deployment-body", className="qf-grid"),
        ]
    )


def header(dep: Mapping[str, Any], *, now: datetime) -> list[Any]:
    """Return the title and the facts: status, trigger, next and last run, broker, symbols, runs."""
    status = str(dep.get("status", ""))
    fg, bg = DEPLOYMENT_COLOURS.get(status, ("#243447", "#eef1f5"))
    facts: list[tuple[str, str]] = [
        ("Status", status + (f" ({dep['reason']})" if dep.get("reason") else "")),
        ("Trigger", trigger_text(dep.get("trigger"))),
        ("Next run", _next_run(dep, status, now=now)),
        ("Last run", at_text(dep.get("last_run_at"), now=now) or "never"),
        ("Runs", str(dep.get("runs", 0))),
        ("Symbols", ", ".join(dep.get("universe") or [])),
        ("Broker", f"{dep.get('broker', '')} · account {dep.get('account', '')}"),
        ("Owner", str(dep.get("owner", ""))),
        ("Created", at_text(dep.get("created_at"), now=now)),
    ]
    if dep.get("heartbeat_at"):
        facts.append(("Heartbeat", at_text(dep["heartbeat_at"], now=now)))
    badge = html.Span(status, className="qf-state", style={"color": fg, "backgroundColor": bg}, id="deployment-status")
    return [
        html.H1(
            [html.Span(f"Deployment {dep.get('name', '')}", title=str(dep.get("id", ""))), " ", badge],
            id="deployment-title",
        ),
        html.Dl([x for k, v in facts for x in (html.Dt(k), html.Dd(v))], className="qf-facts", id="deployment-facts"),
    ]


def _next_run(dep: Mapping[str, Any], status: str, *, now: datetime) -> str:
    when = at_text(dep.get("next_run_at"), now=now)
    if status == "stopped":
        return "none (stopped)"
    if status == "paused":
        return f"{when}, skipped while paused" if when else "none while paused"
    return when or "not scheduled yet (the scheduler sets it)"


def controls_disabled(status: str) -> tuple[bool, bool, bool, bool]:
    """Return whether Pause, Resume, Stop and the kill switch are disabled for a deployment in ``status``."""
    if status == "active":
        return False, True, False, False
    if status == "paused":
        return True, False, False, False
    return True, True, True, True


def position_rows(dep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return one row per holding: quantity, average cost, last price, market value and unrealized P&L."""
    out = []
    for p in dep.get("positions") or []:
        quantity, cost, last = float(p["quantity"]), float(p["average_cost"]), p.get("last_price")
        value = None if last is None else quantity * float(last)
        out.append(
            {
                "symbol": p["symbol"],
                "quantity": round(quantity, 6),
                "average_cost": round(cost, 4),
                "last_price": "" if last is None else round(float(last), 4),
                "value": "" if value is None else round(value, 2),
                "unrealized": "" if last is None else round(quantity * (float(last) - cost), 2),
            }
        )
    return out


def order_rows(dep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return one row per order the deployment asked for (newest first) with the broker's or a limit's answer."""
    out = []
    for o in dep.get("orders") or []:
        request = o.get("request") or {}
        quantity = request.get("quantity")
        target = request.get("target")
        out.append(
            {
                "at": str(o.get("at", ""))[:19].replace("T", " "),
                "run": "kill switch" if o.get("run") == 0 else o.get("run"),
                "symbol": o.get("symbol", ""),
                "side": "" if quantity is None else ("buy" if float(quantity) > 0 else "sell"),
                "quantity": "" if quantity is None else abs(float(quantity)),
                "type": str(request.get("type", "")) + (f" (target {target})" if target else ""),
                "status": o.get("status", ""),
                "filled": "" if o.get("filled_quantity") is None else abs(float(o["filled_quantity"])),
                "price": "" if o.get("average_price") is None else round(float(o["average_price"]), 4),
                "reason": o.get("reason") or "",
                "client_id": o.get("client_id", ""),
            }
        )
    return out


def fingerprint(dep: Mapping[str, Any]) -> str:
    """Return what, when it changes, means the books must be drawn again."""
    pnl = dep.get("pnl") or []
    key = [
        dep.get("status"),
        dep.get("runs"),
        dep.get("cash"),
        dep.get("equity"),
        [(p["symbol"], p["quantity"], p.get("last_price")) for p in dep.get("positions") or []],
        [(o.get("client_id"), o.get("status")) for o in dep.get("orders") or []],
        len(pnl),
        pnl[-1] if pnl else None,
    ]
    return json.dumps(key, sort_keys=True, default=str)


def _grid(id: str, rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str) -> Any:
    if not rows:
        return html.P(empty, className="qf-muted", id=id)
    return table(
        id=id,
        data=rows,
        columns=[{"id": c, "name": n} for c, n in columns],
        page_size=TABLE_ROWS,
        sort_action="native",
        filter_action="native" if len(rows) > TABLE_ROWS else "none",
        style_table={"overflowX": "auto"},
        style_as_list_view=True,
        style_cell=_CELL,
    )


def books(dep: Mapping[str, Any]) -> list[Any]:
    """Return the sections below the header: account, P&L chart, positions, orders and the strategy's state."""
    pnl = dep.get("pnl") or []
    cash, equity = float(dep.get("cash", 0.0)), float(dep.get("equity", 0.0))
    account: list[tuple[str, str]] = [("Cash", f"{cash:,.2f}"), ("Equity", f"{equity:,.2f}")]
    if pnl:
        first = float(pnl[0]["equity"])
        change = equity - first
        share = f" ({change / first:+.2%})" if first else ""
        account.append(("P&L since the first run", f"{change:+,.2f}{share}"))
    chart: Any = (
        graph(charts.pnl_figure(pnl), id="deployment-pnl")
        if pnl
        else html.P("No P&L yet: the first run records the account.", className="qf-muted", id="deployment-pnl")
    )
    positions = _grid(
        "deployment-positions",
        position_rows(dep),
        POSITION_COLUMNS,
        "No positions.",
    )
    orders = _grid(
        "deployment-orders",
        order_rows(dep),
        ORDER_COLUMNS,
        "No orders yet.",
    )
    shown = len(dep.get("orders") or [])
    return [
        card(
            "Account",
            html.Dl([x for k, v in account for x in (html.Dt(k), html.Dd(v))], className="qf-facts"),
            id="deployment-account",
        ),
        card(
            "Strategy state (ctx.state)",
            html.Pre(json.dumps(dep.get("state") or {}, indent=2, sort_keys=True), className="qf-json"),
        ),
        card("P&L", chart, wide=True),
        card("Positions", positions, wide=True),
        card(f"Orders (the newest {shown})" if shown >= 200 else "Orders", orders, wide=True),
    ]


def act(gw: Gateway, deployment_id: str, action: str, *, flatten: bool = False) -> Any:
    """Do ``action`` on the deployment; return the message to show (ok, or the API's error)."""
    try:
        changed = gw.change_deployment(deployment_id, action, flatten=flatten)
    except Exception as exc:
        return alert(f"Could not {action} the deployment: {describe(exc)}")
    text = _DONE[action]
    if action == "kill" and flatten:
        text = "Kill switch done: paused, open orders cancelled, and its positions sent to close at market."
    return alert(f"{text} Status: {changed.get('status', '?')}.", kind="ok")


def register(app: dash.Dash, api: Api) -> None:
    """Register the deployment page's callbacks."""

    @app.callback(
        Output("deployment-header", "children"),
        Output("deployment-body", "children"),
        Output("deployment-seen", "data"),
        Output("deployment-pause", "disabled"),
        Output("deployment-resume", "disabled"),
        Output("deployment-stop", "disabled"),
        Output("deployment-kill", "disabled"),
        Output("deployment-message", "children", allow_duplicate=True),
        Input("deployment-interval", "n_intervals"),
        State("deployment-id", "data"),
        State("deployment-seen", "data"),
        State(TOKEN, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def _refresh(_n: int, deployment_id: str, seen: Any, token: str | None) -> tuple[Any, ...]:
        try:
            with api.open(token) as gw:
                dep = gw.deployment(deployment_id)
        except Exception as exc:
            return (*(dash.no_update,) * 7, alert(describe(exc)))
        mark = fingerprint(dep)
        changed = mark != seen
        return (
            header(dep, now=datetime.now(UTC)),
            books(dep) if changed else dash.no_update,
            mark if changed else dash.no_update,
            *controls_disabled(str(dep.get("status", ""))),
            dash.no_update,
        )

    @app.callback(
        Output("deployment-pending", "data", allow_duplicate=True),
        Input("deployment-stop", "n_clicks"),
        Input("deployment-kill", "n_clicks"),
        Input("deployment-confirm-no", "n_clicks"),
        prevent_initial_call=True,
    )
    def _ask(stop: int, kill: int, no: int) -> Any:
        if not clicked():
            return dash.no_update
        trigger = dash.ctx.triggered_id
        return "stop" if trigger == "deployment-stop" else "kill" if trigger == "deployment-kill" else None

    @app.callback(
        Output("deployment-confirm", "style"),
        Output("deployment-confirm-text", "children"),
        Output("deployment-flatten", "style"),
        Output("deployment-confirm-yes", "children"),
        Input("deployment-pending", "data"),
    )
    def _panel(pending: str | None) -> tuple[Any, ...]:
        if pending is None or pending not in CONFIRM:
            return {"display": "none"}, "", {"display": "none"}, "Confirm"
        label = "Kill now" if pending == "kill" else "Stop for good"
        return {}, CONFIRM[pending], {} if pending == "kill" else {"display": "none"}, label

    @app.callback(
        Output("deployment-message", "children", allow_duplicate=True),
        Output("deployment-pending", "data", allow_duplicate=True),
        Output("deployment-flatten", "value"),
        Output("deployment-interval", "n_intervals"),
        Input("deployment-pause", "n_clicks"),
        Input("deployment-resume", "n_clicks"),
        Input("deployment-confirm-yes", "n_clicks"),
        State("deployment-pending", "data"),
        State("deployment-flatten", "value"),
        State("deployment-id", "data"),
        State("deployment-interval", "n_intervals"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _act(
        pause: int, resume: int, yes: int, pending: Any, flatten: Any, deployment_id: str, n: int, token: str | None
    ) -> tuple[Any, ...]:
        if not clicked():  # a button rendered with the page fires once with no click: act on clicks only
            return dash.no_update, dash.no_update, dash.no_update, dash.no_update
        trigger = dash.ctx.triggered_id
        action = {"deployment-pause": "pause", "deployment-resume": "resume"}.get(str(trigger), pending)
        if action not in ACTIONS:
            return alert("Nothing to confirm: press Stop or Kill switch first.", kind="info"), None, [], n
        try:
            with api.open(token) as gw:
                message = act(gw, deployment_id, action, flatten=bool(flatten) and action == "kill")
        except Exception as exc:
            message = alert(describe(exc))
        return message, None, [], (n or 0) + 1  # a tick refreshes the page now
