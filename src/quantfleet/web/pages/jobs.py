"""Jobs: the live table (every kind, newest first), filters, cancel/rerun/compare, and the fleet at the top.

The list pages on the server, with the API's cursors: the table holds one page
(:data:`PAGE_SIZE` rows) however many jobs there are; Previous/Next walk a
stack of cursors kept in the page. The table refreshes every two seconds and
keeps the selection on the same jobs (by id) as rows move.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from quantfleet.web.common import TOKEN, URL, Api, alert, clicked, table
from quantfleet.web.format import KEY_METRICS, STATE_COLOURS, job_row, state_style_rules
from quantfleet.web.gateway import Gateway, describe

__all__ = ["COLUMNS", "PAGE_SIZE", "act", "fleet_summary", "layout", "page_of", "pager", "register"]

PAGE_SIZE = 25
REFRESH_MS = 2_000
COLUMNS: tuple[tuple[str, str], ...] = (
    ("link", "Job"),
    ("state", "State"),
    ("kind", "Kind"),
    ("strategy", "Strategy"),
    ("owner", "Owner"),
    ("params", "Parameters"),
    ("submitted", "Submitted"),
    ("to_start", "To start"),
    ("duration", "Duration"),
    ("total_return", "Return"),
    ("sharpe", "Sharpe"),
    ("max_drawdown", "Max DD"),
)
_NUMERIC = {"to_start", "duration", *KEY_METRICS}


def layout() -> html.Div:
    """Return the jobs page."""
    columns = [
        {"id": key, "name": name, **({"presentation": "markdown"} if key == "link" else {})} for key, name in COLUMNS
    ]
    grid = table(
        id="jobs-table",
        columns=columns,
        data=[],
        row_selectable="multi",
        selected_rows=[],
        page_action="none",
        markdown_options={"link_target": "_self"},
        style_as_list_view=True,
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": "13px",
            "padding": "6px 8px",
            "textAlign": "left",
            "whiteSpace": "nowrap",
            "maxWidth": "260px",
            "overflow": "hidden",
            "textOverflow": "ellipsis",
        },
        style_cell_conditional=[{"if": {"column_id": c}, "textAlign": "right"} for c in _NUMERIC],
        style_header={"fontWeight": 600, "backgroundColor": "#f4f6f9", "borderBottom": "1px solid #c9d1db"},
        style_data_conditional=state_style_rules(),
        tooltip_duration=None,
        css=[{"selector": ".dash-cell-value p", "rule": "margin: 0"}],
    )
    states = [{"label": s, "value": s} for s in STATE_COLOURS]
    return html.Div(
        [
            html.Div(id="jobs-fleet", className="qf-fleet"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="jobs-state", options=states, multi=True, placeholder="Any state", className="qf-filter"
                    ),
                    dcc.Input(
                        id="jobs-search",
                        type="search",
                        placeholder="Search id, strategy, owner…",
                        debounce=True,
                        className="qf-input",
                    ),
                    dcc.Checklist(
                        id="jobs-children",
                        options=[{"label": " sweeps' children", "value": "yes"}],
                        value=[],
                        className="qf-check",
                    ),
                    html.Div(
                        [
                            html.Button("Cancel", id="jobs-cancel", className="qf-button qf-danger", n_clicks=0),
                            html.Button("Rerun", id="jobs-rerun", className="qf-button", n_clicks=0),
                            html.Button("Compare", id="jobs-compare", className="qf-button", n_clicks=0),
                        ],
                        className="qf-actions",
                    ),
                ],
                className="qf-toolbar",
            ),
            html.Div(id="jobs-message"),
            grid,
            html.Div(
                [
                    html.Button("‹ Newer", id="jobs-prev", className="qf-button qf-quiet", n_clicks=0),
                    html.Span(id="jobs-pageinfo", className="qf-muted"),
                    html.Button("Older ›", id="jobs-next", className="qf-button qf-quiet", n_clicks=0),
                ],
                className="qf-pager",
            ),
            dcc.Store(id="jobs-pager", data={"stack": [None], "page": 0}),
            dcc.Store(id="jobs-next-cursor", data=None),
            dcc.Interval(id="jobs-interval", interval=REFRESH_MS, n_intervals=0),
        ]
    )


def fleet_summary(fleet: dict[str, Any]) -> list[Any]:
    """Return the tiles at the top: queue depth, running jobs, workers running jobs, failures."""
    states = fleet.get("states", {})
    workers = fleet.get("workers", [])
    tiles = [
        ("Queued", fleet.get("queue_depth", 0), "qf-queue-depth"),
        ("Running", states.get("running", 0), "qf-running"),
        ("Workers busy", len(workers), "qf-workers"),
        ("Succeeded", states.get("succeeded", 0), "qf-succeeded"),
        ("Failed", states.get("failed", 0) + states.get("timed_out", 0) + states.get("dead", 0), "qf-failed"),
    ]
    out: list[Any] = [
        html.Div([html.Div(str(v), className="qf-tile-value", id=i), html.Div(label)], className="qf-tile")
        for label, v, i in tiles
    ]
    if workers:
        names = ", ".join(f"{w['name']} ({w['running']})" for w in workers)
        out.append(html.Div(f"Workers: {names}", className="qf-muted qf-workers-list"))
    return out


def pager(store: dict[str, Any], action: str, next_cursor: str | None) -> dict[str, Any]:
    """Return the pager after ``action`` (next, prev, reset): a stack of cursors and the page shown."""
    stack = list(store.get("stack") or [None])
    page = int(store.get("page") or 0)
    if action == "reset":
        return {"stack": [None], "page": 0}
    if action == "next" and next_cursor:
        stack = [*stack[: page + 1], next_cursor]
        return {"stack": stack, "page": page + 1}
    if action == "prev" and page > 0:
        return {"stack": stack, "page": page - 1}
    return {"stack": stack, "page": page}


def page_of(
    gw: Gateway, *, store: dict[str, Any], states: Sequence[str], q: str | None, children: bool, now: datetime
) -> tuple[list[dict[str, Any]], str | None]:
    """Return the rows of the page the pager points at, and the cursor of the next one."""
    page = int(store.get("page") or 0)
    cursor = (store.get("stack") or [None])[page]
    found = gw.jobs(state=states, q=q, cursor=cursor, limit=PAGE_SIZE, include_children=children)
    return [job_row(j, now=now) for j in found.items], found.next_cursor


def act(gw: Gateway, action: str, job_ids: Sequence[str]) -> str:
    """Cancel or rerun each job; return what happened, one clause per job."""
    done: list[str] = []
    for job_id in job_ids:
        try:
            job = gw.cancel(job_id) if action == "cancel" else gw.rerun(job_id)
        except Exception as exc:
            done.append(f"{job_id[:8]}: {describe(exc)}")
            continue
        done.append(f"{job_id[:8]}: cancel requested" if action == "cancel" else f"{job_id[:8]}: rerun as {job.id[:8]}")
    return "; ".join(done)


def register(app: dash.Dash, api: Api) -> None:
    """Register the jobs page's callbacks."""

    @app.callback(
        Output("jobs-pager", "data"),
        Input("jobs-prev", "n_clicks"),
        Input("jobs-next", "n_clicks"),
        Input("jobs-state", "value"),
        Input("jobs-search", "value"),
        Input("jobs-children", "value"),
        State("jobs-pager", "data"),
        State("jobs-next-cursor", "data"),
        prevent_initial_call=True,
    )
    def _page(prev: int, nxt: int, states: Any, q: Any, children: Any, store: Any, cursor: Any) -> dict[str, Any]:
        trigger = dash.ctx.triggered_id
        action = "next" if trigger == "jobs-next" else "prev" if trigger == "jobs-prev" else "reset"
        return pager(store or {}, action, cursor)

    @app.callback(
        Output("jobs-table", "data"),
        Output("jobs-table", "selected_rows"),
        Output("jobs-next-cursor", "data"),
        Output("jobs-fleet", "children"),
        Output("jobs-pageinfo", "children"),
        Output("jobs-message", "children", allow_duplicate=True),
        Input("jobs-interval", "n_intervals"),
        Input("jobs-pager", "data"),
        State("jobs-state", "value"),
        State("jobs-search", "value"),
        State("jobs-children", "value"),
        State("jobs-table", "data"),
        State("jobs-table", "selected_rows"),
        State(TOKEN, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def _refresh(
        _n: int, store: Any, states: Any, q: Any, children: Any, old: Any, selected: Any, token: str | None
    ) -> tuple[Any, ...]:
        keep = {old[i]["id"] for i in (selected or []) if old and i < len(old)}
        try:
            with api.open(token) as gw:
                rows, cursor = page_of(
                    gw, store=store or {}, states=states or [], q=q, children=bool(children), now=datetime.now(UTC)
                )
                fleet = fleet_summary(gw.fleet())
        except Exception as exc:
            return (
                dash.no_update,
                dash.no_update,
                dash.no_update,
                dash.no_update,
                dash.no_update,
                alert(describe(exc)),
            )
        page = int((store or {}).get("page") or 0)
        info = f"Page {page + 1}" + ("" if cursor else " (the oldest)") + (f" · {len(rows)} jobs" if rows else "")
        if not rows:
            info = "No jobs match." if page == 0 else f"Page {page + 1}: nothing older."
        reselected = [i for i, r in enumerate(rows) if r["id"] in keep]
        return rows, reselected, cursor, fleet, info, None

    @app.callback(
        Output("jobs-message", "children", allow_duplicate=True),
        Output("jobs-interval", "n_intervals"),
        Input("jobs-cancel", "n_clicks"),
        Input("jobs-rerun", "n_clicks"),
        State("jobs-table", "data"),
        State("jobs-table", "selected_rows"),
        State("jobs-interval", "n_intervals"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _act(cancel: int, rerun: int, rows: Any, selected: Any, n: int, token: str | None) -> tuple[Any, int]:
        if not clicked():  # a button rendered with the page fires once with no click: act on clicks only
            return dash.no_update, n
        ids = [rows[i]["id"] for i in (selected or []) if rows and i < len(rows)]
        if not ids:
            return alert("Select jobs in the table first (the boxes on the left).", kind="info"), n
        action = "cancel" if dash.ctx.triggered_id == "jobs-cancel" else "rerun"
        try:
            with api.open(token) as gw:
                text = act(gw, action, ids)
        except Exception as exc:
            return alert(describe(exc)), n
        return alert(text, kind="ok"), n + 1  # a tick refreshes the table now

    @app.callback(
        Output(URL, "href", allow_duplicate=True),
        Output("jobs-message", "children", allow_duplicate=True),
        Input("jobs-compare", "n_clicks"),
        State("jobs-table", "data"),
        State("jobs-table", "selected_rows"),
        prevent_initial_call=True,
    )
    def _compare(clicks: int, rows: Any, selected: Any) -> tuple[Any, Any]:
        if not clicks:
            return dash.no_update, dash.no_update
        ids = [rows[i]["id"] for i in (selected or []) if rows and i < len(rows)]
        if len(ids) < 2:
            return dash.no_update, alert("Select two or more finished jobs to compare.", kind="info")
        return f"/compare?ids={','.join(ids)}", None
