"""``quantfleet web``: serve the dashboard.

The CLI and the dashboard are independent faces (neither imports the other),
so this command replaces itself with ``python -m quantfleet.web`` and the same
options: one process, signals delivered to the server as they would be to us.
"""

from __future__ import annotations

import os
import sys

import typer

__all__ = ["MODULE", "command_line", "web"]

MODULE = "quantfleet.web"


def command_line(host: str, port: int, api_url: str, threads: int) -> list[str]:
    """Return the command that serves the dashboard."""
    return [
        sys.executable,
        "-m",
        MODULE,
        "--host",
        host,
        "--port",
        str(port),
        "--api-url",
        api_url,
        "--threads",
        str(threads),
    ]


def web(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: all)."),
    port: int = typer.Option(8050, "--port", help="TCP port."),
    api_url: str = typer.Option(
        "http://127.0.0.1:8000", "--api-url", envvar="QUANTFLEET_API_URL", help="Where the HTTP API answers."
    ),
    threads: int = typer.Option(8, "--threads", help="Requests served at once."),
) -> None:
    """Serve the dashboard (Dash) over the HTTP API; sign in with an API token."""
    argv = command_line(host, port, api_url, threads)
    os.execv(argv[0], argv)
