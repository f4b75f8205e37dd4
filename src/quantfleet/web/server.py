"""Serve the dashboard with waitress (a production WSGI server; Flask's own is for development only)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

__all__ = ["main", "parser", "serve"]

log = logging.getLogger(__name__)


def serve(
    *, host: str = "127.0.0.1", port: int = 8050, api_url: str = "http://127.0.0.1:8000", threads: int = 8
) -> None:
    """Serve the dashboard over the API at ``api_url`` until interrupted."""
    import waitress

    from quantfleet.web.app import create_app

    app = create_app(api_url)
    print(f"quantfleet dashboard on http://{host}:{port} (API {api_url})", flush=True)
    waitress.serve(app.server, host=host, port=port, threads=threads, ident="quantfleet")


def parser() -> argparse.ArgumentParser:
    """Return the command line of ``python -m quantfleet.web`` (the same options as ``quantfleet web``)."""
    p = argparse.ArgumentParser(prog="quantfleet web", description="Serve the dashboard.")
    p.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: all).")
    p.add_argument("--port", type=int, default=8050, help="TCP port.")
    p.add_argument("--api-url", default="http://127.0.0.1:8000", help="Where the HTTP API answers.")
    p.add_argument("--threads", type=int, default=8, help="Requests served at once.")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve."""
    args = parser().parse_args(argv)
    serve(host=args.host, port=args.port, api_url=args.api_url, threads=args.threads)
