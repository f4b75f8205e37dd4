"""Data: the snapshots (dates, tags), what one holds per symbol (coverage), and a symbol's price chart and gaps."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from quantfleet.web import charts
from quantfleet.web.common import TOKEN, Api, alert, card, graph, table
from quantfleet.web.gateway import Gateway, describe

__all__ = ["catalog", "layout", "prices", "register", "snapshot_rows"]

_CELL = {"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px", "textAlign": "left"}


def layout() -> html.Div:
    """Return the data page (filled by callbacks)."""
    return html.Div(
        [
            html.H1("Market data"),
            html.Div(id="data-message"),
            html.Div(
                [
                    card("Snapshots", html.Div(id="data-snapshots")),
                    card(
                        "Symbols",
                        html.Div(
                            [
                                dcc.Dropdown(id="data-snapshot", placeholder="Newest snapshot", className="qf-filter"),
                                html.Div(id="data-symbols"),
                            ]
                        ),
                    ),
                    card(
                        "Prices",
                        html.Div(
                            [
                                dcc.Dropdown(id="data-symbol", placeholder="Pick a symbol…", className="qf-filter"),
                                html.Div(id="data-prices"),
                            ]
                        ),
                        wide=True,
                    ),
                ],
                className="qf-grid",
            ),
        ]
    )


def snapshot_rows(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the snapshots table's rows."""
    return [
        {
            "id": s["id"],
            "created": str(s["created"])[:19].replace("T", " "),
            "operation": s["operation"],
            "source": s["source"],
            "rows_added": f"{s['rows_added']:,}",
            "tags": ", ".join(s.get("tags") or []),
        }
        for s in snapshots
    ]


def catalog(gw: Gateway, snapshot: str | None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Return the coverage rows of a snapshot and the symbol choices (``SYMBOL|frequency``)."""
    rows = []
    options = []
    for s in gw.symbols(snapshot):
        first, last = str(s["first"])[:10], str(s["last"])[:10]
        rows.append(
            {"symbol": s["symbol"], "frequency": s["frequency"], "first": first, "last": last, "rows": f"{s['rows']:,}"}
        )
        options.append({"label": f"{s['symbol']} ({s['frequency']})", "value": f"{s['symbol']}|{s['frequency']}"})
    return rows, options


def prices(gw: Gateway, choice: str, snapshot: str | None) -> list[Any]:
    """Return a symbol's price chart and its longest gaps."""
    symbol, _, frequency = choice.partition("|")
    bars = gw.bars(symbol, frequency=frequency or "1d", snapshot=snapshot)
    gaps = [
        {
            "after": str(g["after"])[:16].replace("T", " "),
            "before": str(g["before"])[:16].replace("T", " "),
            "days": f"{g['days']:.1f}",
        }
        for g in bars["gaps"]
    ]
    shown = len(bars["ts"])
    note = f"{bars['rows']:,} bars in snapshot {bars['snapshot']}" + (
        f", drawn as {shown:,} points" if shown < bars["rows"] else ""
    )
    return [
        html.P(note, className="qf-muted"),
        graph(charts.price_figure(bars["symbol"], bars["ts"], bars["close"]), id="data-price-chart"),
        html.H3("Longest gaps between bars"),
        table(
            id="data-gaps",
            data=gaps,
            style_cell=_CELL,
            style_as_list_view=True,
            columns=[{"id": k, "name": k} for k in ("after", "before", "days")],
        ),
    ]


def register(app: dash.Dash, api: Api) -> None:
    """Register the data page's callbacks."""

    @app.callback(
        Output("data-snapshots", "children"),
        Output("data-snapshot", "options"),
        Output("data-message", "children"),
        Input("data-snapshots", "id"),
        State(TOKEN, "data"),
    )
    def _snapshots(_id: str, token: str | None) -> tuple[Any, Any, Any]:
        try:
            with api.open(token) as gw:
                snaps = gw.snapshots()
        except Exception as exc:
            return None, [], alert(describe(exc))
        rows = snapshot_rows(snaps)
        grid = table(
            id="data-snapshot-table",
            data=rows,
            page_size=10,
            style_cell=_CELL,
            style_as_list_view=True,
            columns=[{"id": k, "name": k} for k in ("id", "created", "operation", "source", "rows_added", "tags")],
        )
        options = [{"label": f"{s['id']} " + " ".join(s.get("tags") or []), "value": str(s["id"])} for s in snaps]
        return grid, options, None

    @app.callback(
        Output("data-symbols", "children"),
        Output("data-symbol", "options"),
        Input("data-snapshot", "value"),
        State(TOKEN, "data"),
    )
    def _symbols(snapshot: str | None, token: str | None) -> tuple[Any, Any]:
        try:
            with api.open(token) as gw:
                rows, options = catalog(gw, snapshot)
        except Exception as exc:
            return alert(describe(exc)), []
        grid = table(
            id="data-symbol-table",
            data=rows,
            page_size=15,
            style_cell=_CELL,
            sort_action="native",
            filter_action="native",
            style_as_list_view=True,
            columns=[{"id": k, "name": k} for k in ("symbol", "frequency", "first", "last", "rows")],
        )
        return grid, options

    @app.callback(
        Output("data-prices", "children"),
        Input("data-symbol", "value"),
        State("data-snapshot", "value"),
        State(TOKEN, "data"),
        prevent_initial_call=True,
    )
    def _prices(choice: str | None, snapshot: str | None, token: str | None) -> Any:
        if not choice:
            return dash.no_update
        try:
            with api.open(token) as gw:
                return prices(gw, choice, snapshot)
        except Exception as exc:
            return alert(describe(exc))
