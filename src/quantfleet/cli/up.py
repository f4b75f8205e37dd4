"""``quantfleet up``: the whole platform on one machine, as child processes of this command, until Ctrl-C.

It migrates the job database once, creates a first admin user and API token
when there is no user yet, then starts each component as ``quantfleet <command>``
in its own session (so a terminal's Ctrl-C reaches only this supervisor):
the HTTP API, the workers, and (when this build has them) the scheduler (cron
runs, ingestion schedules, and the on-bars deployments' processes, which it
supervises and ends when it stops) and the dashboard. On SIGINT or SIGTERM it sends SIGTERM to every component, waits
for each (workers give running jobs ``--grace`` seconds), and kills whatever is
left of each component's process group, so nothing outlives it. If a component
exits on its own, everything stops and the exit code is 1.

``--postgres``, ``--redis`` and ``--s3`` replace the embedded defaults (SQLite, the
local worker pool, local folders) with real services, by setting the same
``QUANTFLEET_*`` variables a deployment would. ``--s3 s3://bucket/prefix`` puts job
objects under ``prefix/objects`` and market data under ``prefix/data``, unless
``QUANTFLEET_DATA_URL`` is set (the sandbox cannot read market data on S3 yet, so a
sandboxed worker needs the data in a local folder; ``up`` refuses the combination at
start, naming both fixes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.table import Table

from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError, InfrastructureError
from quantfleet.core.process import stop_with_parent
from quantfleet.core.settings import Settings, load_settings

__all__ = ["Component", "Supervisor", "first_token", "up"]

err = Console(stderr=True)
out = Console()
TOKEN_FILE = "api-token"
ADMIN = "admin"
_STARTUP_SECONDS = 90.0


@dataclass
class Component:
    """One process of the platform: its name, the ``quantfleet`` arguments that start it, and its URL."""

    name: str
    args: list[str]
    url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class Supervisor:
    """Start components as children in their own sessions; stop them all, leaving no process behind."""

    def __init__(self, env: dict[str, str], *, grace: float) -> None:
        self.env = env
        self.grace = grace
        self.components: list[Component] = []

    def start(self, component: Component) -> None:
        """Start ``component`` as ``python -m quantfleet.cli.app ARGS``, in a new session."""
        argv = [sys.executable, "-m", "quantfleet.cli.app", *component.args]
        # Its own session (stopped as a group), and SIGTERM from Linux should ``up`` itself be SIGKILLed.
        component.process = subprocess.Popen(argv, env=self.env, start_new_session=True, preexec_fn=stop_with_parent())
        self.components.append(component)

    def exited(self) -> Component | None:
        """Return a component that has exited, if any."""
        for c in self.components:
            if c.process is not None and c.process.poll() is not None:
                return c
        return None

    def hurry(self) -> None:
        """Pass a second Ctrl-C on to every running component (workers re-queue their running jobs now)."""
        for c in self.components:
            if c.process is not None and c.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    c.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """SIGTERM every component, wait for each, then SIGKILL what is left of each process group."""
        for c in self.components:
            if c.process is not None and c.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    c.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 15.0
        for c in self.components:
            if c.process is None:
                continue
            try:
                c.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                err.print(f"{c.name} did not stop within {self.grace + 15:g} s; killing it")
            # The leader's pid is its process group's id: kill stragglers (a fork server, a stuck child).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.process.wait(timeout=5)


def first_token(settings: Settings) -> tuple[str | None, str]:
    """Return (the API token to print, a note): created with an admin user when the database has no user.

    The secret is kept in ``<home>/api-token`` (mode 0600), so a later ``up`` can
    print it again; it is shown only while it still authenticates.
    """
    from quantfleet.users import UserService

    users = UserService.from_settings(settings)
    path = settings.home / TOKEN_FILE
    try:
        if not users.list_users():
            users.add_user(ADMIN, admin=True)
            secret, _ = users.create_token(ADMIN, label="quantfleet up")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secret + "\n")
            return secret, f"created user '{ADMIN}' (admin) and this token; it is kept in {path} (mode 0600)"
        if path.is_file():
            secret = path.read_text().strip()
            if users.authenticate(secret) is not None:
                return secret, f"from {path}"
        return None, "users exist already: create a token with 'quantfleet token create NAME'"
    finally:
        users.db.dispose()


def _wait_healthy(url: str, supervisor: Supervisor, stop: threading.Event) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        if (gone := supervisor.exited()) is not None:
            raise InfrastructureError(
                f"{gone.name} exited with code {gone.process.returncode if gone.process else '?'} while starting; "
                "its output above says why (a port in use: pass --api-port / --web-port)"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.2)
    if not stop.is_set():
        raise InfrastructureError(f"the API did not answer {url} within {_STARTUP_SECONDS:g} s")


def _services_env(
    postgres: str | None, redis: str | None, s3: str | None, s3_endpoint: str | None, *, data_url_set: bool = False
) -> dict[str, str]:
    env: dict[str, str] = {}
    if postgres:
        if not postgres.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ConfigError(f"--postgres {postgres!r}: give a URL like postgresql://user:pass@host:5432/quantfleet")
        scheme, rest = postgres.split("://", 1)
        env["QUANTFLEET_DATABASE_URL"] = postgres if "+" in scheme else f"postgresql+psycopg://{rest}"
    if redis:
        if not redis.startswith(("redis://", "rediss://")):
            raise ConfigError(f"--redis {redis!r}: give a URL like redis://host:6379/0")
        env["QUANTFLEET_BROKER_URL"] = redis
    if s3:
        if not s3.startswith("s3://") or len(s3) <= len("s3://"):
            raise ConfigError(f"--s3 {s3!r}: give a bucket and optional prefix, e.g. s3://quantfleet/prod")
        root = s3.rstrip("/")
        if not data_url_set:  # an explicit market-data root (a local folder for the sandbox) wins
            env["QUANTFLEET_DATA_URL"] = f"{root}/data"
        env["QUANTFLEET_OBJECTS_URL"] = f"{root}/objects"
    if s3_endpoint:
        env["QUANTFLEET_S3_ENDPOINT_URL"] = s3_endpoint
    return env


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _available_commands() -> set[str]:
    """Return the names of the commands this build of ``quantfleet`` registers."""
    from quantfleet.cli.app import app  # the registry of commands; imported here, as app.py imports this module

    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def up(
    slots: int | None = typer.Option(None, "--slots", "-n", help="Worker slots (default: the number of cores)."),
    grace: float = typer.Option(30.0, "--grace", help="Seconds running jobs get to finish on shutdown."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface the API and dashboard listen on."),
    api_port: int = typer.Option(8000, "--api-port", help="The HTTP API's port (0: any free port)."),
    web_port: int = typer.Option(8050, "--web-port", help="The dashboard's port (0: any free port)."),
    postgres: str | None = typer.Option(None, "--postgres", help="Use this PostgreSQL (postgresql://...)."),
    redis: str | None = typer.Option(None, "--redis", help="Use Celery over this Redis (redis://host:6379/0)."),
    s3: str | None = typer.Option(
        None, "--s3", help="Keep objects (and data, unless QUANTFLEET_DATA_URL is set) under this S3 root."
    ),
    s3_endpoint: str | None = typer.Option(None, "--s3-endpoint", help="S3-compatible endpoint (MinIO)."),
    broker: str | None = typer.Option(None, "--broker", help="Celery broker URL (RabbitMQ too); like --redis."),
    no_web: bool = typer.Option(False, "--no-web", help="Do not start the dashboard."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Do not start the scheduler."),
) -> None:
    """Start the API, workers, scheduler and dashboard on this machine, print the URLs and a token; Ctrl-C stops."""
    overrides = _services_env(
        postgres, redis or broker, s3, s3_endpoint, data_url_set=bool(os.environ.get("QUANTFLEET_DATA_URL"))
    )
    os.environ.update(overrides)  # this process is the edge: its settings and its children's are the same
    settings = load_settings()
    state.settings = settings
    from quantfleet.dispatch.trusted import check_data_reachable

    check_data_reachable(settings, kind=settings.resolved_launcher)  # before anything starts, not at each job
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    from quantfleet.store import Database

    db = Database(settings.resolved_database_url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    token, note = first_token(settings)

    commands = _available_commands()
    api_port, web_port = api_port or _free_port(host), web_port or _free_port(host)
    api_url = f"http://{host}:{api_port}"
    wanted = [Component("api", ["api", "--host", host, "--port", str(api_port)], api_url)]
    worker = ["worker", "--grace", str(grace)] + (["--slots", str(slots)] if slots else [])
    wanted.append(Component("worker", worker))
    if not no_scheduler:
        wanted.append(Component("scheduler", ["scheduler"]))
    if not no_web:
        web = ["web", "--host", host, "--port", str(web_port), "--api-url", api_url]
        wanted.append(Component("web", web, f"http://{host}:{web_port}"))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            err.print("stopping now: workers re-queue their running jobs")
            supervisor.hurry()
        stop.set()

    supervisor = Supervisor(env, grace=grace)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    failed: Component | None = None
    try:
        for component in wanted:
            if component.args[0] not in commands:
                err.print(f"[dim]{component.name}: skipped ('quantfleet {component.args[0]}' is not in this build)[/]")
                continue
            supervisor.start(component)
        if "api" in commands:
            _wait_healthy(f"{api_url}/healthz", supervisor, stop)
        if not stop.is_set():
            _print_ready(supervisor, settings, token, note)
        while not stop.is_set():
            failed = supervisor.exited()
            if failed is not None:
                break
            stop.wait(0.5)
    finally:
        err.print("stopping: " + ", ".join(c.name for c in supervisor.components))
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        code = failed.process.returncode if failed.process else "?"
        err.print(f"[bold red]{failed.name} exited (code {code}); stopped everything[/bold red]")
        raise typer.Exit(1)
    err.print("stopped")


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _print_ready(supervisor: Supervisor, settings: Settings, token: str | None, note: str) -> None:
    table = Table(title="quantfleet is up", show_header=True)
    table.add_column("component")
    table.add_column("pid", justify="right")
    table.add_column("address")
    for c in supervisor.components:
        table.add_row(c.name, str(c.process.pid if c.process else ""), c.url or "")
    out.print(table)
    out.print(f"API docs:  {supervisor.components[0].url}/docs", highlight=False)
    out.print(f"database:  {_hide_password(settings.resolved_database_url)}", highlight=False)
    out.print(f"objects:   {settings.resolved_objects_url}   data: {settings.resolved_data_url}", highlight=False)
    if settings.broker_url:
        out.print(f"broker:    {_hide_password(settings.broker_url)}", highlight=False)
    if token:
        out.print(f"API token: {token}", highlight=False, soft_wrap=True)
        out.print(f"export QUANTFLEET_API_URL={supervisor.components[0].url} QUANTFLEET_API_TOKEN={token}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    out.print(f"[dim]{note}. Ctrl-C stops everything.[/dim]", highlight=False)
    sys.stdout.flush()
