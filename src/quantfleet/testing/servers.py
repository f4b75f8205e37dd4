"""The rule for tests that need a real server (PostgreSQL, Redis, RabbitMQ, MQTT, S3).

Under ``CI=true`` a missing server fails the test loudly; on a developer's
machine it skips with the command that starts the server.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["in_ci", "require_server", "server_reachable"]


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Return whether the tests run in CI (``CI`` is set to a true value)."""
    return environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def server_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(
    name: str, host: str, port: int, how_to_start: str, *, environ: Mapping[str, str] = os.environ
) -> None:
    """Fail (in CI) or skip (elsewhere) the calling test unless ``name`` listens at ``host:port``."""
    import pytest

    if server_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}; start it with: {how_to_start}"
    if in_ci(environ):
        pytest.fail(message + " (CI=true: tests that need a server may not be skipped)")
    pytest.skip(message)
