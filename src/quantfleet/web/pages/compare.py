"""Compare: several finished backtests, their equity curves overlaid (rebased) and their metrics side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from quantfleet.web import charts
from quantfleet.web.common import TOKEN, Api, alert, card, graph, table
from quantfleet.web.format import metrics_rows
from quantfleet.web.gateway import Gateway, describe

__all__ = ["MAX_RUNS", "choices", "comparison", "layout", "register"]

MAX_RUNS = 8


def layout(ids: str = "") -> html.Div:
    """Return the compare page, preselecting the comma-separated job ``ids``."""
    chosen = [i.strip() for i in ids.split(",") if i.strip()][:MAX_RUNS]
    return html.Div(
        [
            html.H1("Compare runs"),
            dcc.Dropdown(
                id="compare-jobs",
                multi=True,
                value=chosen,
                options=[{"label": i[:8], "value": i} for i in chosen],
                placeholder="Pick finished backtests…",
                className="qf-filter-wide",
            ),
            html.Div(id="compare-message"),
            html.Div(id="compare-body", className="qf-grid"),
        ]
    )


def choices(gw: Gateway, keep: Sequence[str]) -> list[dict[str, str]]:
    """Return the finished backtests one may pick (the newest 200), plus those already picked."""
    page = gw.jobs(state=["succeeded"], limit=200, include_children=True)
    options = [
        {"label": f"{j.id[:8]} · {j.strategy} · {j.submitted_at:%Y-%m-%d %H:%M}", "value": j.id}
        for j in page.items
        if j.kind == "backtest"
    ]
    seen = {o["value"] for o in options}
    return options + [{"label": i[:8], "value": i} for i in keep if i not in seen]


def comparison(gw: Gateway, job_ids: Sequence[str]) -> list[Any]:
    """Return the overlaid equity chart and the metrics table of the picked jobs."""
    runs = []
    metrics = []
    labels = []
    problems = []
    for job_id in job_ids[:MAX_RUNS]:
        try:
            job = gw.job(job_id)
            if job.state != "succeeded" or job.kind != "backtest":
                problems.append(f"{job_id[:8]} is a {job.kind} that {job.state}: only succeeded backtests compare")
                continue
            label = f"{job.id[:8]} {job.strategy}"
            runs.append((label, gw.table(job.id, "equity.parquet")))
            metrics.append(job.metrics)
            labels.append(label)
        except Exception as exc:
            problems.append(f"{job_id[:8]}: {describe(exc)}")
    out: list[Any] = [alert(p) for p in problems]
    if len(runs) < 2:
        out.append(alert("Pick two or more succeeded backtests.", kind="info"))
        if not runs:
            return out
    rows = metrics_rows(metrics, labels)
    grid = table(
        id="compare-metrics",
        data=rows,
        columns=[{"id": "metric", "name": "Metric"}] + [{"id": label, "name": label} for label in labels],
        page_size=50,
        style_as_list_view=True,
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "fontSize": "13px", "textAlign": "right"},
        style_cell_conditional=[{"if": {"column_id": "metric"}, "textAlign": "left"}],
        style_data_conditional=[
            {
                "if": {"filter_query": f'{{{label}}} contains "★"', "column_id": label},
                "color": "#146c2e",
                "fontWeight": 600,
            }
            for label in labels
        ],
    )
    out.append(card("Equity, rebased to 1", graph(charts.overlay_figure(runs), id="compare-equity"), wide=True))
    out.append(card("Metrics (★ the best)", grid, wide=True))
    return out


def register(app: dash.Dash, api: Api) -> None:
    """Register the compare page's callbacks."""

    @app.callback(
        Output("compare-jobs", "options"),
        Output("compare-message", "children"),
        Input("compare-jobs", "id"),
        State("compare-jobs", "value"),
        State(TOKEN, "data"),
    )
    def _options(_id: str, value: Any, token: str | None) -> tuple[Any, Any]:
        try:
            with api.open(token) as gw:
                return choices(gw, value or []), None
        except Exception as exc:
            return dash.no_update, alert(describe(exc))

    @app.callback(Output("compare-body", "children"), Input("compare-jobs", "value"), State(TOKEN, "data"))
    def _compare(value: Any, token: str | None) -> Any:
        if not value:
            return alert("Pick two or more succeeded backtests above, or select them on the jobs page.", kind="info")
        try:
            with api.open(token) as gw:
                return comparison(gw, value)
        except Exception as exc:
            return alert(describe(exc))
