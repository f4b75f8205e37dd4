"""Deployments: every live and paper deployment (``GET /v1/deployments``), each a link to its page.

The table shows status in colour, the trigger, the symbols, the runs so far and
the next run, refreshed every few seconds; :mod:`.deployment` is one
deployment's page with its books and controls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from quantfleet.web.common import TOKEN, Api, alert, card, table
from quantfleet.web.format import DEPLOYMENT_COLOURS, at_text, trigger_text
from quantfleet.web.gateway import describe

__all__ = ["COLUMNS", "PAGE_SIZE", "layout", "register", "row", "status_style_rules"]

PAGE_SIZE = 25
REFRESH_MS = 5_000
COLUMNS: tuple[tuple[str, str], ...] = (
    ("link", "Deployment"),
    ("status", "Status"),
    ("trigger", "Trigger"),
    ("universe", "Symbols"),
    ("broker", "Broker"),
    ("runs", "Runs"),
    ("next_run", "Next run"),
    ("last_run", "Last run"),
    ("owner", "Owner"),
)


def layout() -> html.Div:
    """Return the deployments page; a callback fills the table (only its rows, so paging and sorting stay)."""
    return html.Div(
        [
            html.Div(
                [
                    html.H1("Deployments"),
                    dcc.Link("New deployment", href="/deployments/new", id="deployments-new", className="qf-button"),
                ],
                className="qf-row qf-title-row",
            ),
            html.Div(id="deployments-message"),
            card("Live and paper deployments", _table([]), wide=True),
            dcc.Interval(id="deployments-interval", interval=REFRESH_MS, n_intervals=0),
        ]
    )


def row(dep: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """Return the table's row of one deployment as the API lists it."""
    return {
        "id": dep["id"],
        "link": f"[{dep.get('name') or dep['id'][:8]}](/deployments/{dep['id']})",
        "status": dep.get("status", ""),
        "trigger": trigger_text(dep.get("trigger")),
        "universe": ", ".join(dep.get("universe") or []),
        "broker": f"{dep.get('broker', '')} · {dep.get('account', '')}".strip(" ·"),
        "runs": dep.get("runs", 0),
        "next_run": at_text(dep.get("next_run_at"), now=now) or "not scheduled",
        "last_run": at_text(dep.get("last_run_at"), now=now) or "never",
        "owner": dep.get("owner", ""),
    }


def status_style_rules(column: str = "status") -> list[dict[str, Any]]:
    """Return DataTable styles colouring the ``column`` cell by the deployment's status."""
    return [
        {
            "if": {"filter_query": f'{{status}} = "{status}"', "column_id": column},
            "color": fg,
            "backgroundColor": bg,
            "fontWeight": 600,
        }
        for status, (fg, bg) in DEPLOYMENT_COLOURS.items()
    ]


def _table(data: list[dict[str, Any]]) -> Any:
    return table(
        id="deployments-table",
        data=data,
        columns=[
            {"id": key, "name": name, **({"presentation": "markdown"} if key == "link" else {})}
            for key, name in COLUMNS
        ],
        page_size=PAGE_SIZE,
        sort_action="native",
        markdown_options={"link_target": "_self"},
        style_as_list_view=True,
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "fontSize": "13px", "textAlign": "left", "padding": "6px 8px"},
        style_data_conditional=status_style_rules(),
        css=[{"selector": ".dash-cell-value p", "rule": "margin: 0"}],
    )


def register(app: dash.Dash, api: Api) -> None:
    """Register the deployments page's callback."""

    @app.callback(
        Output("deployments-table", "data"),
        Output("deployments-message", "children"),
        Input("deployments-interval", "n_intervals"),
        State(TOKEN, "data"),
    )
    def _list(_n: int, token: str | None) -> tuple[Any, Any]:
        try:
            with api.open(token) as gw:
                items = gw.deployments()
        except Exception as exc:
            return dash.no_update, alert(describe(exc))
        if not items:
            note = (
                "No deployments yet: create one with New deployment, or deploy a strategy file with "
                "'quantfleet deploy FILE --symbols ...'."
            )
            return [], alert(note, kind="info")
        now = datetime.now(UTC)
        return [row(d, now=now) for d in items], None
