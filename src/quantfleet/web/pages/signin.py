"""Sign in with an API token: checked against the API, then kept in the tab's session storage (never the URL)."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from quantfleet.web.common import TOKEN, URL, Api, alert
from quantfleet.web.gateway import describe

__all__ = ["check_token", "layout", "register"]


def layout() -> html.Div:
    """Return the sign-in form."""
    return html.Div(
        [
            html.H1("Sign in"),
            html.P(["Paste an API token. An admin makes one with ", html.Code("quantfleet token create USER"), "."]),
            html.Form(
                [
                    html.Label("API token", htmlFor="signin-token"),
                    dcc.Input(
                        id="signin-token",
                        type="password",
                        placeholder="qf_…",
                        autoComplete="off",
                        className="qf-input qf-input-wide",
                        debounce=False,
                        n_submit=0,
                    ),
                    html.Button("Sign in", id="signin-submit", className="qf-button", n_clicks=0, type="button"),
                ],
                className="qf-form",
                autoComplete="off",
            ),
            html.Div(id="signin-message"),
        ],
        className="qf-signin qf-card",
    )


def check_token(api: Api, token: str | None) -> str | None:
    """Return None when the API accepts ``token``, else the message to show."""
    token = (token or "").strip()
    if not token:
        return "Paste a token first."
    try:
        with api.open(token) as gw:
            gw.whoami()
    except Exception as exc:
        return describe(exc)
    return None


def register(app: dash.Dash, api: Api) -> None:
    """Register the sign-in callback."""

    @app.callback(
        Output(TOKEN, "data"),
        Output(URL, "pathname", allow_duplicate=True),
        Output("signin-message", "children"),
        Input("signin-submit", "n_clicks"),
        Input("signin-token", "n_submit"),
        State("signin-token", "value"),
        State(URL, "pathname"),
        prevent_initial_call=True,
    )
    def _signin(clicks: int, submitted: int, token: str | None, path: str | None) -> tuple[Any, Any, Any]:
        if not (clicks or submitted):
            return dash.no_update, dash.no_update, dash.no_update
        problem = check_token(api, token)
        if problem is not None:
            return dash.no_update, dash.no_update, alert(problem)
        target = path if path and path != "/signin" else "/"
        return (token or "").strip(), target, alert("Signed in.", kind="ok")
