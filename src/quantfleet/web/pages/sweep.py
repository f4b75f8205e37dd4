"""A sweep's or walk-forward's results on its detail page: the leaderboard, a metric's heat map over two
chosen parameters, the walk-forward windows in and out of sample, and a link to each child job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
import pyarrow as pa
from dash import Input, Output, State, dcc, html

from quantfleet.client import JobInfo
from quantfleet.web import charts
from quantfleet.web.common import Api, card, graph, state_badge, table
from quantfleet.web.format import metric_text

__all__ = ["BOARD_ROWS", "children_card", "heat_records", "param_columns", "register", "results"]

BOARD_ROWS = 5_000
"""Leaderboard rows the page holds (the heat map reads them; the download has all)."""


def param_columns(job: JobInfo, columns: Sequence[str]) -> list[str]:
    """Return the leaderboard columns that hold the swept parameters, in grid order."""
    grid = ((job.spec or {}).get("sweep") or {}).get("grid") or []
    names = [str(item).split("=", 1)[0].strip() for item in grid]
    out = []
    for name in names:
        for column in (name, f"param_{name}"):
            if column in columns and column not in out:
                out.append(column)
                break
    return out


def _metric_columns(table: pa.Table, params: Sequence[str]) -> list[str]:
    skip = {"rank", "combo", "window", *params}
    return [c for c in table.column_names if c not in skip and pa.types.is_floating(table.schema.field(c).type)]


def _rounded(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in records]


def children_card(job: JobInfo) -> html.Section:
    """Return the list of a sweep's child jobs, each a link with its state and headline metrics."""
    items = [
        html.Li(
            [
                dcc.Link(c.id[:8], href=f"/jobs/{c.id}"),
                " ",
                state_badge(c.state),
                " ",
                html.Span(f"Sharpe {metric_text(c.metrics, 'sharpe')}" if c.metrics else "", className="qf-muted"),
            ]
        )
        for c in job.children or []
    ]
    return card(f"Child jobs ({len(items)})", html.Ul(items, className="qf-children", id="sweep-children"))


def heat_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Return the leaderboard rows the heat map draws, and what they are.

    A walk-forward's leaderboard holds every window's in-sample rows; mixing
    windows would show each cell's best over all of them, so the map draws
    the last window's (the parameters the next live period would use).
    """
    windows = {r["window"] for r in records if r.get("window") is not None}
    if not windows:
        return records, "The best value of the metric where the other parameters vary."
    last = max(windows)
    rows = [r for r in records if r.get("window") == last]
    return rows, f"In-sample, last window (#{last}); the best value where the other parameters vary."


def results(gw: Any, job: JobInfo) -> list[Any]:
    """Return the result sections of a finished sweep or walk-forward."""
    board = gw.table(job.id, "leaderboard.parquet", kind=job.kind)
    params = param_columns(job, board.column_names)
    metrics = _metric_columns(board, params)
    chosen = ((job.spec or {}).get("sweep") or {}).get("metric") or (metrics[0] if metrics else "")
    records = _rounded(board.slice(0, BOARD_ROWS).to_pylist())
    grid = table(
        id="sweep-board",
        data=records,
        columns=[{"id": c, "name": c} for c in board.column_names],
        page_size=15,
        sort_action="native",
        filter_action="native",
        style_table={"overflowX": "auto"},
        style_as_list_view=True,
        style_cell={"fontFamily": "inherit", "fontSize": "12px", "padding": "4px 6px"},
    )
    heat_rows, note = heat_records(records)
    windows = len(set(board.column("window").to_pylist())) if "window" in board.column_names else 0
    title = (
        f"In-sample leaderboards ({windows} windows, {board.num_rows:,} rows)"
        if windows
        else f"Leaderboard ({board.num_rows:,} combinations)"
    )
    out: list[Any] = [card(title, grid, wide=True)]
    if len(params) >= 2 and metrics:
        pick = [{"label": p, "value": p} for p in params]
        controls = html.Div(
            [
                html.Label(["X ", dcc.Dropdown(id="sweep-heat-x", options=pick, value=params[0], clearable=False)]),
                html.Label(["Y ", dcc.Dropdown(id="sweep-heat-y", options=pick, value=params[1], clearable=False)]),
                html.Label(
                    [
                        "Metric ",
                        dcc.Dropdown(
                            id="sweep-heat-metric",
                            options=metrics,
                            value=chosen if chosen in metrics else metrics[0],
                            clearable=False,
                        ),
                    ]
                ),
            ],
            className="qf-toolbar",
        )
        figure = charts.heatmap_figure(heat_rows, params[0], params[1], chosen if chosen in metrics else metrics[0])
        out.append(
            card(
                "Heat map",
                html.P(note, className="qf-muted"),
                controls,
                graph(figure, id="sweep-heat"),
                dcc.Store(id="sweep-records", data=heat_rows),
                id="sweep-heat-card",
                wide=True,
            )
        )
    elif params:
        out.append(
            card("Heat map", html.P("A heat map needs two swept parameters; this sweep has one.", className="qf-muted"))
        )
    if job.kind == "walk-forward":
        out.extend(_walkforward(gw, job, chosen))
    if job.children:
        out.append(children_card(job))
    return out


def _walkforward(gw: Any, job: JobInfo, metric: str) -> list[Any]:
    windows = gw.table(job.id, "windows.parquet", kind=job.kind).to_pylist()
    oos = gw.table(job.id, "oos_equity.parquet", kind=job.kind)
    keys = sorted({k.split(".", 1)[1] for w in windows for k in w if k.startswith("out_of_sample.")})
    metric = metric if metric in keys else (keys[0] if keys else metric)
    return [
        card(
            "Walk-forward: in sample and out of sample",
            graph(charts.walkforward_figure(windows, metric), id="sweep-walkforward"),
            wide=True,
        ),
        card(
            "Walk-forward: stitched out-of-sample equity", graph(charts.equity_figure(oos), id="sweep-oos"), wide=True
        ),
    ]


def register(app: dash.Dash, api: Api) -> None:
    """Register the heat map's callback."""

    @app.callback(
        Output("sweep-heat", "figure"),
        Input("sweep-heat-x", "value"),
        Input("sweep-heat-y", "value"),
        Input("sweep-heat-metric", "value"),
        State("sweep-records", "data"),
        prevent_initial_call=True,
    )
    def _heat(x: str, y: str, metric: str, records: list[dict[str, Any]]) -> Any:
        if x == y:
            return dash.no_update
        return charts.heatmap_figure(records or [], x, y, metric)
