"""Submit: a strategy file (uploaded, or the one a previous job ran), symbols from the catalog, dates, a
snapshot, and a parameters form generated from what the file declares, checked before anything is sent;
a sweep takes a grid range per parameter. The API checks everything again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html

from quantfleet.web.common import TOKEN, URL, Api, alert, card
from quantfleet.web.gateway import Gateway, describe
from quantfleet.web.params import Declared, FormError, check_grid, coerce_value, declared_parameters

__all__ = ["MAX_COMBINATIONS", "build_spec", "decode_upload", "layout", "params_form", "register"]

MAX_COMBINATIONS = 10_000
MAX_UPLOAD = 1_000_000


def layout() -> html.Div:
    """Return the submit form."""
    kinds = [{"label": " Backtest", "value": "backtest"}, {"label": " Sweep (grid)", "value": "sweep"}]
    return html.Div(
        [
            html.H1("Submit a job"),
            html.Div(
                [
                    card(
                        "Strategy",
                        dcc.Upload(
                            id="submit-upload",
                            children=html.Div(["Drop a .py file here or ", html.A("choose one")]),
                            className="qf-upload",
                            multiple=False,
                            max_size=MAX_UPLOAD,
                        ),
                        html.Label(
                            [
                                "or the strategy of a previous job ",
                                dcc.Dropdown(id="submit-reuse", placeholder="Pick a job…"),
                            ]
                        ),
                        html.Div(id="submit-file-info", className="qf-muted"),
                        dcc.Store(id="submit-file"),
                    ),
                    card(
                        "Market",
                        html.Label(
                            [
                                "Symbols",
                                dcc.Dropdown(
                                    id="submit-symbols",
                                    multi=True,
                                    searchable=True,
                                    placeholder="Type to search the catalog…",
                                ),
                            ]
                        ),
                        html.Div(
                            [
                                html.Label(
                                    [
                                        "Start ",
                                        dcc.Input(
                                            id="submit-start",
                                            type="text",
                                            placeholder="YYYY-MM-DD",
                                            className="qf-input",
                                        ),
                                    ]
                                ),
                                html.Label(
                                    [
                                        "End ",
                                        dcc.Input(
                                            id="submit-end", type="text", placeholder="YYYY-MM-DD", className="qf-input"
                                        ),
                                    ]
                                ),
                            ],
                            className="qf-row",
                        ),
                        html.Label(["Snapshot", dcc.Dropdown(id="submit-snapshot", placeholder="Newest")]),
                    ),
                    card(
                        "Job",
                        dcc.RadioItems(
                            id="submit-kind", options=kinds, value="backtest", inline=True, className="qf-radio"
                        ),
                        html.Div(
                            [
                                html.Label(
                                    [
                                        "Rank by metric ",
                                        dcc.Input(id="submit-metric", value="sharpe", className="qf-input"),
                                    ]
                                )
                            ],
                            id="submit-sweep-options",
                            style={"display": "none"},
                        ),
                        html.Div(
                            id="submit-params",
                            children=html.P("Upload a strategy to see its parameters.", className="qf-muted"),
                        ),
                    ),
                ],
                className="qf-grid",
            ),
            html.Button("Submit", id="submit-button", className="qf-button qf-primary", n_clicks=0),
            html.Div(id="submit-message"),
        ]
    )


def decode_upload(contents: str | None, filename: str | None) -> tuple[str, str]:
    """Return (file name, text) of a dcc.Upload value; raise :class:`FormError` with the fix."""
    if not contents or not filename:
        raise FormError("choose a strategy file first")
    if not filename.endswith(".py"):
        raise FormError(f"{filename} is not a .py file; upload the strategy's Python file")
    try:
        raw = base64.b64decode(contents.split(",", 1)[-1], validate=True)
        return filename, raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise FormError(f"{filename} is not UTF-8 text; save it as UTF-8 and upload it again") from None


def params_form(declared: Sequence[Declared], *, prefix: str = "submit", grid: bool = True) -> html.Table | html.P:
    """Return the parameters form: one row per declared parameter, a value and (``grid``: for sweeps) a grid.

    The inputs' ids are ``{"type": f"{prefix}-param", "name": ...}`` (and ``-grid``), the table's
    ``{prefix}-params-table``: another page reuses the form under its own prefix.
    """
    if not declared:
        return html.P("This strategy declares no parameters.", className="qf-muted")
    head = html.Tr(
        [html.Th("Parameter"), html.Th("Type"), html.Th("Value")]
        + ([html.Th("Sweep grid", className="qf-grid-col")] if grid else [])
    )
    body = [
        html.Tr(
            [
                html.Td(html.Code(p.name)),
                html.Td(p.type),
                html.Td(
                    dcc.Input(
                        id={"type": f"{prefix}-param", "name": p.name},
                        placeholder=repr(p.default),
                        className="qf-input",
                        debounce=True,
                    )
                ),
            ]
            + (
                [
                    html.Td(
                        dcc.Input(
                            id={"type": f"{prefix}-grid", "name": p.name},
                            placeholder="start:stop:step or a,b,c" if p.type in ("int", "float") else "a,b,c",
                            className="qf-input",
                            debounce=True,
                        ),
                        className="qf-grid-col",
                    )
                ]
                if grid
                else []
            )
        )
        for p in declared
    ]
    return html.Table([html.Thead(head), html.Tbody(body)], className="qf-params", id=f"{prefix}-params-table")


def build_spec(
    declared: Sequence[Declared],
    *,
    kind: str,
    values: Mapping[str, Any],
    grids: Mapping[str, Any],
    symbols: Sequence[str] | None,
    start: str | None,
    end: str | None,
    snapshot: str | None,
    metric: str | None,
) -> tuple[dict[str, Any], list[str]]:
    """Return the spec to submit and the problems found (submit only when there are none)."""
    problems: list[str] = []
    by_name = {p.name: p for p in declared}
    params: dict[str, Any] = {}
    for name, text in values.items():
        if name in by_name and text not in (None, ""):
            try:
                params[name] = coerce_value(by_name[name], text)
            except FormError as exc:
                problems.append(str(exc))
    if not symbols:
        problems.append("pick at least one symbol")
    days: dict[str, date] = {}
    for label, text in (("start", start), ("end", end)):
        if text:
            try:
                days[label] = date.fromisoformat(text)
            except ValueError:
                problems.append(f"{label} {text!r} is not a date; use YYYY-MM-DD")
    if "start" in days and "end" in days and days["start"] > days["end"]:
        problems.append(f"start {days['start']} is after end {days['end']}")
    spec: dict[str, Any] = {
        "symbols": list(symbols or []),
        "start": start or None,
        "end": end or None,
        "params": params,
    }
    if snapshot:
        spec["snapshot"] = int(snapshot) if str(snapshot).isdigit() else snapshot
    if kind == "sweep":
        grid: list[str] = []
        combinations = 1
        for name, text in grids.items():
            if name not in by_name:
                continue
            try:
                checked = check_grid(by_name[name], text or "")
            except FormError as exc:
                problems.append(str(exc))
                continue
            if checked is not None:
                grid.append(checked[0])
                combinations *= checked[1]
        if not grid:
            problems.append("a sweep needs a grid for at least one parameter, e.g. 5:30:5")
        elif combinations > MAX_COMBINATIONS:
            problems.append(
                f"the grid has {combinations:,} combinations; the dashboard submits at most "
                f"{MAX_COMBINATIONS:,} (widen a step)"
            )
        spec["grid"] = grid
        spec["metric"] = (metric or "sharpe").strip() or "sharpe"
    return spec, problems


def _ids(values: Sequence[Any], ids: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {i["name"]: v for i, v in zip(ids, values, strict=False)}


def register(app: dash.Dash, api: Api) -> None:
    """Register the submit page's callbacks."""

    @app.callback(
        Output("submit-symbols", "options"),
        Output("submit-snapshot", "options"),
        Output("submit-reuse", "options"),
        Output("submit-message", "children", allow_duplicate=True),
        Input("submit-upload", "id"),
        State(TOKEN, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def _options(_id: str, token: str | None) -> tuple[Any, ...]:
        try:
            with api.open(token) as gw:
                return (*_choices(gw), None)
        except Exception as exc:
            return [], [], [], alert(describe(exc))

    @app.callback(
        Output("submit-file", "data"),
        Output("submit-file-info", "children"),
        Output("submit-params", "children"),
        Input("submit-upload", "contents"),
        Input("submit-reuse", "value"),
        State("submit-upload", "filename"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _file(contents: str | None, reuse: str | None, filename: str | None, token: str | None) -> tuple[Any, ...]:
        try:
            if dash.ctx.triggered_id == "submit-reuse" and reuse:
                with api.open(token) as gw:
                    source = gw.source(reuse)
                name, text = source["name"], source["text"]
            else:
                name, text = decode_upload(contents, filename)
            declared = declared_parameters(text)
        except Exception as exc:
            return None, alert(describe(exc) if not isinstance(exc, FormError) else str(exc)), dash.no_update
        info = f"{name}: {len(text.encode()):,} bytes, {len(declared)} parameter(s)"
        data = {"name": name, "text": text, "declared": [[p.name, p.type, p.default] for p in declared]}
        return data, info, params_form(declared)

    @app.callback(
        Output("submit-sweep-options", "style"),
        Output("submit-params", "className"),
        Input("submit-kind", "value"),
    )
    def _kind(kind: str) -> tuple[dict[str, str], str]:
        sweep = kind == "sweep"
        return ({"display": "block"} if sweep else {"display": "none"}), ("qf-sweep" if sweep else "qf-backtest")

    @app.callback(
        Output("submit-message", "children", allow_duplicate=True),
        Output(URL, "pathname", allow_duplicate=True),
        Input("submit-button", "n_clicks"),
        State("submit-file", "data"),
        State("submit-kind", "value"),
        State({"type": "submit-param", "name": ALL}, "value"),
        State({"type": "submit-param", "name": ALL}, "id"),
        State({"type": "submit-grid", "name": ALL}, "value"),
        State({"type": "submit-grid", "name": ALL}, "id"),
        State("submit-symbols", "value"),
        State("submit-start", "value"),
        State("submit-end", "value"),
        State("submit-snapshot", "value"),
        State("submit-metric", "value"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _submit(
        clicks: int,
        file: Any,
        kind: str,
        values: Any,
        value_ids: Any,
        grids: Any,
        grid_ids: Any,
        symbols: Any,
        start: Any,
        end: Any,
        snapshot: Any,
        metric: Any,
        token: str | None,
    ) -> tuple[Any, Any]:
        if not clicks:
            return dash.no_update, dash.no_update
        if not file:
            return alert("Upload a strategy file (or pick a previous job's) first."), dash.no_update
        declared = [Declared(n, t, d) for n, t, d in file["declared"]]
        spec, problems = build_spec(
            declared,
            kind=kind,
            values=_ids(values, value_ids),
            grids=_ids(grids, grid_ids),
            symbols=symbols,
            start=start,
            end=end,
            snapshot=snapshot,
            metric=metric,
        )
        if problems:
            return html.Div([alert(p) for p in problems], id="submit-problems"), dash.no_update
        try:
            with api.open(token) as gw:
                job = gw.submit(kind, file["name"], file["text"].encode("utf-8"), spec)
        except Exception as exc:
            return alert(describe(exc)), dash.no_update
        return alert(f"Submitted job {job.id[:8]}.", kind="ok"), f"/jobs/{job.id}"


def _choices(gw: Gateway) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    symbols = sorted({s["symbol"] for s in gw.symbols()})
    snaps = [
        {"label": f"{s['id']} " + " ".join(s.get("tags") or []) + f" ({str(s['created'])[:10]})", "value": str(s["id"])}
        for s in gw.snapshots()
    ]
    jobs = gw.jobs(limit=50, include_children=False).items
    reuse = [{"label": f"{j.id[:8]} · {j.strategy}", "value": j.id} for j in jobs]
    return [{"label": s, "value": s} for s in symbols], snaps, reuse
