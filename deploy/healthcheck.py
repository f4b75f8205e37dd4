"""The image's HEALTHCHECK: healthy when this container's quantfleet server does its job's first step.

Standard library only (it runs every 30 s; importing quantfleet would cost a
second of CPU each time). The role is read from PID 1's command line
(``tini -- quantfleet api --port 8000``):

- ``api``: ``GET http://127.0.0.1:<port>/healthz`` answers 200 (default port 8000);
- ``web``: ``GET http://127.0.0.1:<port>/`` answers below 500 (default port 8050);
- ``worker``, ``scheduler`` (and anything else): the database and the broker named by
  ``QUANTFLEET_DATABASE_URL`` / ``QUANTFLEET_BROKER_URL`` accept TCP connections.

Exit 0 healthy, 1 not (the reason on stderr).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"api": 8000, "web": 8050}
SCHEME_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}


def role_of(argv: Sequence[str]) -> tuple[str, int | None]:
    """Return (the quantfleet command, its --port) from a command line."""
    args = list(argv)
    for i, arg in enumerate(args):
        if os.path.basename(arg) == "quantfleet" or arg == "quantfleet.cli.app":
            args = args[i + 1 :]
            break
    role = next((a for a in args if not a.startswith("-")), "")
    port = None
    for i, arg in enumerate(args):
        if arg == "--port" and i + 1 < len(args):
            port = int(args[i + 1])
        elif arg.startswith("--port="):
            port = int(arg.split("=", 1)[1])
    return role, port if port is not None else DEFAULT_PORTS.get(role)


def http_ok(url: str, *, below: int = 300) -> str | None:
    """Return None if ``url`` answers with a status below ``below``, else the problem."""
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if status < below else f"{url}: HTTP {status}"


def tcp_ok(url: str) -> str | None:
    """Return None if the host of ``url`` accepts a TCP connection (SQLite and empty URLs pass)."""
    if not url or "://" not in url or url.startswith(("sqlite", "file")):
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    host, port = parts.hostname or "localhost", parts.port or SCHEME_PORTS.get(scheme)
    if port is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as exc:
        return f"{scheme}://{host}:{port}: {exc}"


def check(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """Return None when healthy, else what failed."""
    role, port = role_of(argv)
    if role == "api":
        return http_ok(f"http://127.0.0.1:{port}/healthz")
    if role == "web":
        return http_ok(f"http://127.0.0.1:{port}/", below=500)
    for name in ("QUANTFLEET_DATABASE_URL", "QUANTFLEET_BROKER_URL"):
        problem = tcp_ok(environ.get(name, ""))
        if problem:
            return f"{name}: {problem}"
    return None


def main() -> int:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
    except OSError as exc:
        print(f"cannot read PID 1's command line: {exc}", file=sys.stderr)
        return 1
    problem = check(argv, os.environ)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
