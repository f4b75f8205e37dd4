"""Remote mode of the job and deployment commands: with ``QUANTFLEET_API_URL`` set, they talk to a server.

``quantfleet submit``, ``quantfleet jobs ls|show|logs|cancel|rerun``, ``quantfleet
deploy`` and ``quantfleet deployments ls|pause|resume|stop|kill`` branch here
once, at their top; everything else about them (options, rendering style,
exit codes) stays the same. The token comes from ``QUANTFLEET_API_TOKEN``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from quantfleet.client import Client, JobInfo
from quantfleet.core.errors import ConfigError

__all__ = ["cancel", "change_deployment", "client", "deploy", "deployments", "logs", "ls", "rerun", "show", "submit"]

out = Console()
err = Console(stderr=True)

_COLOURS = {"queued": "cyan", "running": "yellow", "succeeded": "green", "failed": "red", "timed_out": "magenta",
            "cancelled": "dim", "dead": "bold red"}  # fmt: skip


def client(environ: Mapping[str, str] = os.environ) -> Client | None:
    """Return a client of the server ``QUANTFLEET_API_URL`` names, or None (local mode) when it is unset."""
    url = environ.get("QUANTFLEET_API_URL", "").strip()
    if not url:
        return None
    token = environ.get("QUANTFLEET_API_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            f"QUANTFLEET_API_URL is {url} but QUANTFLEET_API_TOKEN is not set; create a token with "
            "'quantfleet token create <user>' on the server, or unset QUANTFLEET_API_URL to use the local database"
        )
    return Client(url, token)


P = ParamSpec("P")
R = TypeVar("R")


def _closing(command: Callable[P, R]) -> Callable[P, R]:
    """Close the client (its first argument) when the command ends."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        finally:
            qf = args[0]
            assert isinstance(qf, Client)
            qf.close()

    return run


def _state(value: str) -> str:
    return f"[{_COLOURS.get(value, '')}]{value}[/]"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""


@_closing
def submit(
    qf: Client, strategy: Path, *, spec: dict[str, Any], sweep: dict[str, Any] | None, wait: bool,
    idempotency_key: str | None,
) -> None:  # fmt: skip
    """Submit over HTTP; print the id; with ``wait``, show each state change, then the metrics."""
    if str(spec.get("benchmark") or "").strip().lower() == "none":
        spec["benchmark"] = ""  # as locally: no benchmark
    snapshot = spec.get("snapshot")
    if isinstance(snapshot, str) and snapshot.isdigit():
        spec["snapshot"] = int(snapshot)
    if sweep is None:
        job = qf.submit_backtest(strategy, idempotency_key=idempotency_key, **spec)
    else:
        extra = {k: sweep[k] for k in ("where", "metric", "minimize", "seed")}
        if sweep["method"] != "grid":
            extra[sweep["method"]] = sweep["trials"]  # random=N or optimize=N
        job = qf.submit_sweep(strategy, grid=sweep["grid"], idempotency_key=idempotency_key, **spec, **extra)
    out.print(job.id)
    if not wait:
        return
    done = qf.wait(job.id, progress=lambda j: err.print(f"[dim]{j.id}[/dim] {_state(j.state)}"))
    _print_result(done)
    if done.state != "succeeded":
        raise typer.Exit(1)


def _print_result(job: JobInfo) -> None:
    if job.error:
        err.print(f"[bold red]{job.state}:[/bold red] {job.error}", highlight=False)
    metrics = job.metrics or {}
    table = Table(title=f"job {job.id} · {job.state}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "trades", "final_equity"):
        if key in metrics:
            value = metrics[key]
            table.add_row(key.replace("_", " "), f"{value:,.4f}" if isinstance(value, float) else str(value))
    if metrics.get("best"):
        table.add_row("best params", json.dumps(metrics["best"].get("params")))
    out.print(table)


@_closing
def ls(qf: Client, *, states: list[str], owner: str | None, parent: str | None, limit: int) -> None:
    """List the server's jobs (every kind), newest first."""
    if parent:
        jobs = (qf.get(parent).children or [])[:limit]
    else:
        jobs = list(qf.list(state=states or None, owner=owner, limit=limit))
    table = Table(title=f"jobs on {qf.url}")
    for col in ("id", "state", "kind", "strategy", "owner", "submitted", "sharpe"):
        table.add_column(col, justify="right" if col == "sharpe" else "left", no_wrap=col != "strategy",
                         min_width=32 if col == "id" else None)  # fmt: skip  # whole ids: the API takes no prefixes
    for job in jobs:
        sharpe = (job.metrics or {}).get("sharpe")
        table.add_row(job.id, _state(job.state), job.kind, job.strategy, job.owner, _when(job.submitted_at),
                      f"{sharpe:.2f}" if isinstance(sharpe, int | float) else "")  # fmt: skip
    out.print(table)


@_closing
def show(qf: Client, job_id: str) -> None:
    """Show a job from the server: its spec, attempts, metrics and error."""
    job = qf.get(job_id)
    why = f" ({job.reason})" if job.reason else ""
    out.print(f"[bold]{job.id}[/bold] {_state(job.state)}{why} · {job.kind} · {job.strategy} · owner {job.owner}")
    out.print_json(json.dumps(job.spec or {}, sort_keys=True))
    attempts = Table(title="attempts")
    for col in ("#", "worker", "state", "started", "finished", "error"):
        attempts.add_column(col)
    for a in job.attempts:
        attempts.add_row(str(a.get("number")), str(a.get("worker")), str(a.get("state")), str(a.get("started_at")),
                         str(a.get("finished_at") or ""), (a.get("error") or "")[:120])  # fmt: skip
    out.print(attempts)
    if job.metrics:
        out.print_json(json.dumps(job.metrics, sort_keys=True, default=str))
    if job.error:
        out.print(f"[bold red]error:[/bold red] {job.error}", highlight=False)


@_closing
def logs(qf: Client, job_id: str, *, follow: bool, attempt: int | None) -> None:
    """Print a job's log from the server; ``follow`` streams it until the job ends."""
    for text in qf.logs(job_id, follow, attempt=attempt):
        out.out(text, end="", highlight=False)


@_closing
def cancel(qf: Client, job_id: str) -> None:
    """Cancel a job on the server."""
    job = qf.cancel(job_id)
    out.print(f"{job.id} {_state(job.state)}" + (" (cancel requested)" if job.state == "running" else ""))


@_closing
def rerun(qf: Client, job_id: str, *, verify: bool, local: bool) -> None:
    """Run a job's spec again on the server; print the new id."""
    if verify or local:
        raise ConfigError("--verify and --local need the local database; unset QUANTFLEET_API_URL to use them")
    out.print(qf.rerun(job_id).id)


@_closing
def deploy(qf: Client, strategy: Path, *, spec: dict[str, Any], idempotency_key: str | None) -> None:
    """Create a deployment on the server; print its id as the local command does."""
    trigger = spec.pop("trigger")
    if trigger["kind"] == "cron":
        spec.update(schedule=trigger["cron"], calendar=trigger["calendar"], half_days=trigger["half_days"])
    else:
        spec["on_bars"] = True
    dep = qf.create_deployment(strategy, idempotency_key=idempotency_key, **spec)
    when = dep["trigger"].get("cron", "on bars")
    out.print(f"{dep['id']} deployed ({dep['name']}, {dep['broker']}, {when}) on {qf.url}", highlight=False)


@_closing
def deployments(qf: Client, *, status: str | None) -> None:
    """List the server's deployments (yours; an admin's: everyone's)."""
    table = Table(title=f"deployments on {qf.url}")
    for col in ("id", "name", "owner", "status", "broker", "trigger", "runs", "next run"):
        table.add_column(col, no_wrap=True, min_width=32 if col == "id" else None)
    for dep in qf.deployments():
        if status and dep["status"] != status:
            continue
        nxt = dep.get("next_run_at")
        table.add_row(dep["id"], dep["name"], dep["owner"], dep["status"], dep["broker"],
                      dep["trigger"].get("cron", "on bars"), str(dep["runs"]),
                      _when(datetime.fromisoformat(nxt)) if nxt else "-")  # fmt: skip
    out.print(table)


@_closing
def change_deployment(qf: Client, deployment_id: str, action: str, *, flatten: bool = False) -> None:
    """Pause, resume, stop or kill a deployment on the server; print its new status."""
    calls = {"pause": qf.pause_deployment, "resume": qf.resume_deployment, "stop": qf.stop_deployment}
    dep = qf.kill_deployment(deployment_id, flatten=flatten) if action == "kill" else calls[action](deployment_id)
    out.print(f"{dep['id']} {dep['status']}")
