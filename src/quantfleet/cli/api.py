"""``quantfleet api``: serve the HTTP API with uvicorn.

The CLI and the API are independent faces (neither imports the other), so
uvicorn is handed the app factory by name and builds it in the server
process, from the environment's settings (validated at start).
"""

from __future__ import annotations

import os

import typer

from quantfleet.core.logging import LogFormat

__all__ = ["APP_FACTORY", "api"]

APP_FACTORY = "quantfleet.api:create_app"


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: all)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Server processes."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
    log_format: LogFormat = typer.Option(
        LogFormat.TEXT, "--log-format", envvar="QUANTFLEET_LOG_FORMAT", help="text, or json lines."
    ),
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs; Prometheus metrics at /metrics)."""
    import uvicorn

    # The factory runs in the server process(es): it reads the format from the environment and installs it.
    if log_format is LogFormat.JSON:  # uvicorn's own lines go through our JSON handler too
        os.environ["QUANTFLEET_LOG_FORMAT"] = log_format.value
        os.environ.setdefault("QUANTFLEET_LOG_LEVEL", log_level.upper())
        uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                    log_config=None)  # fmt: skip
    else:  # uvicorn's text lines; the app's own loggers keep the process's configuration
        os.environ.pop("QUANTFLEET_LOG_FORMAT", None)
        uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level)
