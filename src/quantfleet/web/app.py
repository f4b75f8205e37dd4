"""The dashboard: a Dash app over the HTTP API, one page per path, built by :func:`create_app`.

The shell holds the navigation, the token store (``storage_type='session'``:
the browser tab's sessionStorage, never the URL) and the page container; a
router callback renders the page of the current path. Signed out, every path
shows the sign-in page. Each page module owns its layout and callbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dash
import httpx
from dash import Input, Output, dcc, html

from quantfleet.web.common import TOKEN, URL, Api, alert
from quantfleet.web.pages import (
    compare,
    data,
    deployment,
    deployments,
    detail,
    jobs,
    newdeployment,
    signin,
    submit,
)

__all__ = ["PAGES", "create_app", "route"]

ASSETS = Path(__file__).parent / "assets"
PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Jobs"),
    ("/submit", "Submit"),
    ("/compare", "Compare"),
    ("/data", "Data"),
    ("/deployments", "Deployments"),
)
"""The navigation: path and label."""


def route(pathname: str | None, search: str | None, token: str | None) -> Any:
    """Return the layout of a path; without a token, the sign-in page."""
    path = (pathname or "/").rstrip("/") or "/"
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    if not token or path == "/signin":
        return signin.layout()
    if path == "/":
        return jobs.layout()
    if path == "/submit":
        return submit.layout()
    if path == "/compare":
        return compare.layout(query.get("ids", ""))
    if path == "/data":
        return data.layout()
    if path == "/deployments":
        return deployments.layout()
    if path == newdeployment.PATH:
        return newdeployment.layout()
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] in ("jobs", "sweeps") and parts[1]:
        return detail.layout(parts[1])
    if len(parts) == 2 and parts[0] == "deployments" and parts[1]:
        return deployment.layout(parts[1])
    return alert(f"There is no page at {path}. Use the links above.")


def _shell() -> html.Div:
    nav = [dcc.Link(label, href=path, className="qf-nav-link", id=f"qf-nav-{label.lower()}") for path, label in PAGES]
    return html.Div(
        [
            dcc.Location(id=URL, refresh=False),
            dcc.Store(id=TOKEN, storage_type="session"),
            html.Header(
                [
                    dcc.Link("quantfleet", href="/", className="qf-brand"),
                    html.Nav(nav, className="qf-nav"),
                    html.Button("Sign out", id="qf-signout", className="qf-button qf-quiet", n_clicks=0),
                ],
                className="qf-header",
            ),
            html.Main(id="qf-page", className="qf-main"),
        ],
        className="qf-shell",
    )


def create_app(api_url: str, *, timeout: float = 15.0, transport: httpx.BaseTransport | None = None) -> dash.Dash:
    """Return the dashboard over the API at ``api_url`` (``transport``: httpx's port, for tests)."""
    api = Api(api_url.rstrip("/"), timeout=timeout, transport=transport)
    app = dash.Dash(
        __name__,
        title="quantfleet",
        update_title="",
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,  # pages are rendered on demand, so their components come and go
        serve_locally=True,  # every script from this server: the dashboard works on a closed network
    )
    app.layout = _shell()

    @app.callback(Output("qf-page", "children"), Input(URL, "pathname"), Input(URL, "search"), Input(TOKEN, "data"))
    def _render(pathname: str | None, search: str | None, token: str | None) -> Any:
        try:
            return route(pathname, search, token)
        except Exception as exc:  # a page that cannot be built says why instead of going blank
            return alert(f"This page failed to build: {type(exc).__name__}: {exc}")

    @app.callback(
        Output(TOKEN, "clear_data"),
        Output(URL, "pathname", allow_duplicate=True),
        Input("qf-signout", "n_clicks"),
        prevent_initial_call=True,
    )
    def _signout(clicks: int) -> tuple[bool, str]:
        return True, "/signin"

    for page in (signin, jobs, detail, submit, compare, data, deployments, deployment, newdeployment):
        page.register(app, api)
    app.server.config["QUANTFLEET_API_URL"] = api.url
    return app
