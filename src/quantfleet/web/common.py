"""What every page shares: the API's address, the ids of the shell's components, alerts and small widgets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dash
import httpx
from dash import dcc, html
from dash.dash_table.DataTable import DataTable

from quantfleet.web.format import STATE_COLOURS
from quantfleet.web.gateway import Gateway, gateway

__all__ = ["TOKEN", "URL", "Api", "alert", "card", "clicked", "graph", "state_badge", "table"]

TOKEN = "qf-token"
"""The dcc.Store holding the signed-in token (storage_type='session': this browser tab only, never the URL)."""
URL = "qf-url"
"""The dcc.Location of the shell."""


@dataclass(frozen=True)
class Api:
    """Where the API is; :meth:`open` makes a gateway for one callback with the caller's token."""

    url: str
    timeout: float = 15.0
    transport: httpx.BaseTransport | None = None

    @contextmanager
    def open(self, token: str | None) -> Iterator[Gateway]:
        """Yield a gateway for ``token`` (closed afterwards)."""
        with gateway(self.url, token, timeout=self.timeout, transport=self.transport) as made:
            yield made


def alert(text: str, *, kind: str = "error") -> html.Div:
    """Return a message box: ``kind`` is error, info or ok."""
    return html.Div(text, className=f"qf-alert qf-alert-{kind}", role="alert" if kind == "error" else "status")


def card(title: str, *children: Any, id: str | None = None, wide: bool = False) -> html.Section:
    """Return a titled panel."""
    section = html.Section([html.H2(title), *children], className="qf-card" + (" qf-wide" if wide else ""))
    if id:
        setattr(section, "id", id)  # noqa: B010 - the generated class declares no id attribute
    return section


def state_badge(state: str) -> html.Span:
    """Return a job state as a coloured pill."""
    fg, bg = STATE_COLOURS.get(state, ("#243447", "#eef1f5"))
    return html.Span(state, className="qf-state", style={"color": fg, "backgroundColor": bg})


def graph(figure: Any, *, id: str, height: int | None = None) -> dcc.Graph:
    """Return a graph as tall as its figure says and as wide as its panel (no Plotly logo link to the internet)."""
    tall = height or getattr(getattr(figure, "layout", None), "height", None) or 420
    return dcc.Graph(
        id=id,
        figure=figure,
        config={"displaylogo": False, "responsive": True},
        style={"height": f"{int(tall)}px"},
        className="qf-graph",
    )


def table(**props: Any) -> DataTable:
    """Return a DataTable (its generated signature types rows too narrowly for plain dict records)."""
    return DataTable(**props)


def clicked() -> bool:
    """Return whether the running callback was triggered by a real click (a positive n_clicks)."""
    return any(bool(t.get("value")) for t in dash.ctx.triggered or [])
