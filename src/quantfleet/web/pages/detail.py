"""Job detail: the state (live), a failure's summary and traceback first, the spec, the highlighted source,
the log tail while it runs, and once it has ended its results: a backtest's charts, metrics, trades and
artifacts; a sweep's leaderboard, heat map, walk-forward windows and child jobs (:mod:`.sweep`).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html

from quantfleet.client import JobInfo
from quantfleet.web import charts
from quantfleet.web.common import TOKEN, URL, Api, alert, card, clicked, graph, state_badge, table
from quantfleet.web.format import duration, metrics_rows, params_text
from quantfleet.web.gateway import Gateway, describe
from quantfleet.web.pages import sweep

__all__ = ["TRADE_ROWS", "body", "failure", "header", "layout", "register"]

TRADE_ROWS = 2_000
"""Trades shown in the table (the whole list is in the trades.parquet download)."""
POLL_MS = 1_000


def layout(job_id: str) -> html.Div:
    """Return the detail page of one job (filled by callbacks)."""
    return html.Div(
        [
            dcc.Store(id="detail-job", data=job_id),
            dcc.Store(id="detail-seen", data=None),
            dcc.Interval(id="detail-interval", interval=POLL_MS, n_intervals=0),
            dcc.Download(id="detail-download"),
            html.Div(id="detail-header", className="qf-detail-header"),
            html.Div(
                [
                    html.Button("Cancel", id="detail-cancel", className="qf-button qf-danger", n_clicks=0),
                    html.Button("Rerun", id="detail-rerun", className="qf-button", n_clicks=0),
                ],
                className="qf-actions",
            ),
            html.Div(id="detail-message"),
            html.Div(id="detail-failure"),
            card("Log", html.Pre(id="detail-log", className="qf-log"), id="detail-log-card", wide=True),
            html.Div(id="detail-body", className="qf-grid"),
        ]
    )


def header(job: JobInfo, *, now: datetime) -> list[Any]:
    """Return the title line: id, state, kind, strategy, owner and timings."""
    ran_until = job.finished_at or (now if job.state == "running" else None)
    facts = [
        ("Kind", job.kind),
        ("Strategy", job.strategy),
        ("Owner", job.owner),
        ("Submitted", job.submitted_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
        ("Attempt", str(job.attempt)),
    ]
    if job.started_at is not None:
        facts.append(("Waited", duration((job.started_at - job.submitted_at).total_seconds())))
    if job.started_at is not None and ran_until is not None:
        facts.append(("Ran", duration((ran_until - job.started_at).total_seconds())))
    if job.parent:
        facts.append(("Sweep", dcc.Link(job.parent[:8], href=f"/jobs/{job.parent}")))  # type: ignore[arg-type]
    return [
        html.H1([html.Span(f"Job {job.id[:8]}", title=job.id), " ", state_badge(job.state)], id="detail-title"),
        html.Dl([x for k, v in facts for x in (html.Dt(k), html.Dd(v))], className="qf-facts"),
    ]


def failure(job: JobInfo) -> Any:
    """Return a failed job's error summary, then its traceback, or None when it did not fail."""
    if job.state not in ("failed", "timed_out", "dead") or not job.error:
        return None
    summary, _, rest = job.error.partition("\n\n")
    return html.Section(
        [
            html.H2(f"This job {job.state.replace('_', ' ')}"),
            html.P(summary, className="qf-error-summary", id="detail-error-summary"),
            html.Pre(rest.strip(), className="qf-traceback", id="detail-traceback") if rest.strip() else None,
        ],
        className="qf-card qf-failure qf-wide",
        role="alert",
    )


def _spec_card(job: JobInfo) -> html.Section:
    spec = job.spec or {}
    code = spec.get("code") or {}
    rows: list[tuple[str, Any]] = [
        ("Code sha256", html.Code(code.get("sha256", ""), id="detail-sha")),
        ("Snapshot", str(spec.get("snapshot", ""))),
        ("Symbols", ", ".join(spec.get("universe") or [])),
        ("Dates", f"{spec.get('start') or 'first bar'} to {spec.get('end') or 'last bar'}"),
        ("Frequency", str(spec.get("frequency", ""))),
        ("Parameters", params_text(spec.get("params"), limit=400) or "defaults"),
    ]
    if spec.get("sweep"):
        rows.append(("Sweep", ", ".join(spec["sweep"].get("grid") or [])))
    details = html.Details(
        [
            html.Summary("The whole spec (JSON)"),
            html.Pre(json.dumps(spec, indent=2, sort_keys=True), className="qf-json"),
        ]
    )
    return card("Spec", html.Dl([x for k, v in rows for x in (html.Dt(k), html.Dd(v))], className="qf-facts"), details)


def _source_card(gw: Gateway, job: JobInfo) -> html.Section:
    try:
        source = gw.source(job.id)
    except Exception as exc:
        return card("Source", alert(describe(exc)))
    text = source["text"].replace("```", "` ` `")
    return card(
        f"Source: {source['name']}",
        dcc.Markdown(f"```python\n{text}\n```", id="detail-source", className="qf-source"),
        wide=True,
    )


def _metrics_card(job: JobInfo) -> html.Section:
    rows = metrics_rows([job.metrics], ["value"])
    grid = table(
        id="detail-metrics",
        data=rows,
        columns=[{"id": "metric", "name": "Metric"}, {"id": "value", "name": "Value"}],
        page_size=20,
        style_as_list_view=True,
        style_cell={"fontFamily": "inherit", "fontSize": "13px"},
        style_cell_conditional=[{"if": {"column_id": "value"}, "textAlign": "right"}],
    )
    return card("Metrics", grid)


def _trades_card(gw: Gateway, job: JobInfo) -> html.Section:
    trades = gw.table(job.id, "trades.parquet")
    shown = trades.slice(0, TRADE_ROWS).to_pylist()
    records = [
        {
            k: (v.isoformat()[:19] if isinstance(v, datetime) else round(v, 6) if isinstance(v, float) else v)
            for k, v in r.items()
        }
        for r in shown
    ]
    note = (
        f"The first {TRADE_ROWS:,} of {trades.num_rows:,} trades; download trades.parquet for all."
        if trades.num_rows > TRADE_ROWS
        else f"{trades.num_rows:,} trades."
    )
    grid = table(
        id="detail-trades",
        data=records,
        columns=[{"id": c, "name": c} for c in trades.column_names],
        page_size=15,
        sort_action="native",
        filter_action="native",
        style_table={"overflowX": "auto"},
        style_as_list_view=True,
        style_cell={"fontFamily": "inherit", "fontSize": "12px", "padding": "4px 6px"},
    )
    return card("Trades", html.P(note, className="qf-muted"), grid, wide=True)


def _artifacts_card(gw: Gateway, job: JobInfo) -> html.Section:
    items = gw.artifacts(job.id)
    buttons = [
        html.Li(
            [
                html.Button(
                    a.name, id={"type": "detail-artifact", "name": a.name}, n_clicks=0, className="qf-link-button"
                ),
                html.Span(f" {a.size:,} bytes", className="qf-muted"),
            ]
        )
        for a in items
    ]
    tearsheet = any(a.name in ("tearsheet.html", "report.html") for a in items)
    extra = (
        [
            html.Button("Show the full report here", id="detail-show-report", n_clicks=0, className="qf-button"),
            html.Div(id="detail-report"),
        ]
        if tearsheet
        else []
    )
    return card("Artifacts", html.Ul(buttons, className="qf-artifacts"), *extra)


def _backtest_results(gw: Gateway, job: JobInfo) -> list[Any]:
    equity = gw.table(job.id, "equity.parquet")
    out: list[Any] = [
        card("Equity", graph(charts.equity_figure(equity), id="detail-equity"), wide=True),
        card("Drawdown", graph(charts.underwater_figure(equity), id="detail-underwater"), wide=True),
        _metrics_card(job),
    ]
    try:
        out.append(_trades_card(gw, job))
    except Exception as exc:
        out.append(card("Trades", alert(describe(exc))))
    return out


def body(gw: Gateway, job: JobInfo) -> list[Any]:
    """Return the page below the header for a job as it is now (results only once it has ended well)."""
    sections: list[Any] = [_spec_card(job)]
    if job.state == "succeeded":
        try:
            results = _backtest_results(gw, job) if job.kind == "backtest" else sweep.results(gw, job)
        except Exception as exc:
            results = [card("Results", alert(f"The results cannot be shown: {describe(exc)}"))]
        sections = [*results, *sections]
    elif job.kind != "backtest" and job.children:
        sections.append(sweep.children_card(job))
    if job.terminal:
        try:
            sections.append(_artifacts_card(gw, job))
        except Exception as exc:
            sections.append(card("Artifacts", alert(describe(exc))))
    sections.append(_source_card(gw, job))
    return sections


def register(app: dash.Dash, api: Api) -> None:
    """Register the detail page's callbacks (and the sweep sections')."""

    @app.callback(
        Output("detail-header", "children"),
        Output("detail-failure", "children"),
        Output("detail-seen", "data"),
        Output("detail-interval", "disabled"),
        Output("detail-log", "children"),
        Output("detail-cancel", "disabled"),
        Output("detail-message", "children", allow_duplicate=True),
        Input("detail-interval", "n_intervals"),
        State("detail-job", "data"),
        State("detail-seen", "data"),
        State(TOKEN, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def _poll(_n: int, job_id: str, seen: Any, token: str | None) -> tuple[Any, ...]:
        try:
            with api.open(token) as gw:
                job = gw.job(job_id)
                log = gw.log(job_id) if job.state == "running" or job.state != seen else dash.no_update
        except Exception as exc:
            return (*(dash.no_update,) * 6, alert(describe(exc)))
        changed = job.state != seen
        return (
            header(job, now=datetime.now(UTC)),
            failure(job) if changed else dash.no_update,
            job.state if changed else dash.no_update,
            job.terminal,
            log or "(no output yet)",
            job.terminal,
            None,
        )

    @app.callback(
        Output("detail-body", "children"),
        Input("detail-seen", "data"),
        State("detail-job", "data"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _body(state: Any, job_id: str, token: str | None) -> Any:
        try:
            with api.open(token) as gw:
                return body(gw, gw.job(job_id))
        except Exception as exc:
            return alert(describe(exc))

    @app.callback(
        Output("detail-message", "children", allow_duplicate=True),
        Output("detail-interval", "disabled", allow_duplicate=True),
        Output(URL, "pathname", allow_duplicate=True),
        Input("detail-cancel", "n_clicks"),
        Input("detail-rerun", "n_clicks"),
        State("detail-job", "data"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _act(cancel: int, rerun: int, job_id: str, token: str | None) -> tuple[Any, Any, Any]:
        if not clicked():  # a button rendered with the page fires once with no click: act on clicks only
            return dash.no_update, dash.no_update, dash.no_update
        try:
            with api.open(token) as gw:
                if dash.ctx.triggered_id == "detail-cancel":
                    gw.cancel(job_id)
                    return (
                        alert("Cancel requested: a running job stops within seconds.", kind="ok"),
                        False,
                        dash.no_update,
                    )
                again = gw.rerun(job_id)
        except Exception as exc:
            return alert(describe(exc)), dash.no_update, dash.no_update
        return None, dash.no_update, f"/jobs/{again.id}"

    @app.callback(
        Output("detail-download", "data"),
        Output("detail-message", "children", allow_duplicate=True),
        Input({"type": "detail-artifact", "name": ALL}, "n_clicks"),
        State("detail-job", "data"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _download(clicks: list[int], job_id: str, token: str | None) -> tuple[Any, Any]:
        trigger = dash.ctx.triggered_id
        if not trigger or not any(clicks or []):
            return dash.no_update, dash.no_update
        name = trigger["name"]
        try:
            with api.open(token) as gw:
                job = gw.job(job_id)
                data = gw.artifact(job_id, name, kind=job.kind)
        except Exception as exc:
            return dash.no_update, alert(describe(exc))
        download = {
            "content": base64.b64encode(data).decode("ascii"),
            "filename": name.rsplit("/", 1)[-1],
            "base64": True,
        }
        return download, None

    @app.callback(
        Output("detail-report", "children"),
        Input("detail-show-report", "n_clicks"),
        State("detail-job", "data"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _report(clicks: int, job_id: str, token: str | None) -> Any:
        if not clicks:
            return dash.no_update
        try:
            with api.open(token) as gw:
                job = gw.job(job_id)
                name = "tearsheet.html" if job.kind == "backtest" else "report.html"
                page = gw.artifact(job_id, name, kind=job.kind).decode("utf-8", errors="replace")
        except Exception as exc:
            return alert(describe(exc))
        return html.Iframe(srcDoc=page, className="qf-report", id="detail-report-frame", sandbox="allow-scripts")

    sweep.register(app, api)
