"""Deployments: live trading's status, read-only, from ``GET /v1/deployments`` where the server has it.

Live trading is being built beside the dashboard, so this page reads the API
defensively: a server without the endpoint shows a note, and a deployment is
shown with whichever of the usual fields it carries. Positions, orders, the
P&L chart and the pause/resume and kill-switch controls come with that API.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, html

from quantfleet.web.common import TOKEN, Api, alert, card, table
from quantfleet.web.gateway import describe

__all__ = ["FIELDS", "layout", "register", "rows"]

FIELDS = ("id", "name", "strategy", "status", "state", "broker", "trigger", "next_run", "owner")


def layout() -> html.Div:
    """Return the deployments page (filled by a callback)."""
    return html.Div([html.H1("Deployments"), html.Div(id="deployments-body")])


def rows(items: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    """Return the columns present among :data:`FIELDS` and one row of text per deployment."""
    columns = [f for f in FIELDS if any(f in d for d in items)]
    return columns, [{c: "" if d.get(c) is None else str(d.get(c)) for c in columns} for d in items]


def register(app: dash.Dash, api: Api) -> None:
    """Register the deployments page's callback."""

    @app.callback(Output("deployments-body", "children"), Input("deployments-body", "id"), State(TOKEN, "data"))
    def _list(_id: str, token: str | None) -> Any:
        try:
            with api.open(token) as gw:
                items = gw.deployments()
        except Exception as exc:
            return alert(describe(exc))
        if not items:
            return alert("No deployments (or this server has no live trading yet).", kind="info")
        columns, data = rows(items)
        return card(
            "Live and paper deployments",
            table(
                id="deployments-table",
                data=data,
                columns=[{"id": c, "name": c} for c in columns],
                page_size=25,
                style_as_list_view=True,
                style_cell={"fontFamily": "inherit", "fontSize": "13px", "textAlign": "left"},
            ),
            wide=True,
        )
