"""``quantfleet submit``, ``quantfleet jobs ...`` and ``quantfleet worker``: jobs from the shell.

Faces are thin: each command parses, calls the job service (or starts a
worker), and renders. A job runs on whatever worker pool serves the same
database; ``--local`` runs it here instead, in a one-slot worker that stops
when the queue is empty.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from quantfleet.cli import remote
from quantfleet.cli.backtest import parse_commission, parse_params, parse_slippage
from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError
from quantfleet.core.logging import LogFormat
from quantfleet.core.logging import configure as configure_logging
from quantfleet.core.settings import Settings, load_settings
from quantfleet.core.types import Adjustment, Frequency
from quantfleet.dispatch.notify import submit_notifier
from quantfleet.engine import EngineConfig
from quantfleet.jobs import Job, JobId, JobKind, JobService, JobSpec, JobState, Limits
from quantfleet.strategy.loader import load_strategy

__all__ = ["app", "demo_jobs", "submit", "worker"]

app = typer.Typer(help="List, inspect, follow, cancel and rerun jobs.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

_COLOURS = {
    JobState.QUEUED: "cyan",
    JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "red",
    JobState.TIMED_OUT: "magenta",
    JobState.CANCELLED: "dim",
    JobState.DEAD: "bold red",
}


def _settings() -> Settings:
    return state.settings or load_settings()


_services: dict[tuple[str, str], JobService] = {}


class _TellFleet:
    """The CLI's ``notify`` hook with a Celery broker: publish each queued job's id; say so when that fails.

    The job is committed first, so a broker that is down loses no job: it stays
    queued in the database, and a fleet worker's sweeper publishes it again
    once the broker is back. The user is told that on stderr, without a
    traceback (stdout keeps the job id alone, for scripts).
    """

    def __init__(self, settings: Settings, publish: Callable[[JobId], None]) -> None:
        self._publish = publish
        scheme, sep, rest = (settings.broker_url or "").partition("://")
        self._broker = f"{scheme}{sep}{rest.rpartition('@')[2]}"  # never the user or password
        self._sweep = settings.sweep_seconds
        self._down = False

    def __call__(self, job_id: JobId) -> None:
        try:
            self._publish(job_id)
        except Exception as exc:
            if self._down:
                err.print(
                    f"[yellow]job {job_id} is queued too[/yellow] (the broker is still unreachable)", highlight=False
                )
                return
            self._down = True
            err.print(
                f"[yellow]job {job_id} is queued, but the fleet was not told:[/yellow] the Celery broker at "
                f"{self._broker} is unreachable ({type(exc).__name__}: {str(exc)[:200]}). The job stays queued "
                f"in the database; once the broker is back, a fleet worker's sweeper publishes it (jobs queued "
                f"over {self._sweep:g} s) and it starts. Check that the broker runs and that QUANTFLEET_BROKER_URL "
                f"is right; 'quantfleet jobs cancel {job_id}' withdraws the job meanwhile.",
                highlight=False,
            )


def _service() -> JobService:
    settings = _settings()
    key = (settings.resolved_database_url, settings.resolved_objects_url)
    if key not in _services:
        publish = submit_notifier(settings)
        notify = _TellFleet(settings, publish) if publish is not None else None
        _services[key] = JobService.from_settings(settings, notify=notify)
    return _services[key]


def _owner(owner: str | None) -> str:
    if owner:
        return owner
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no user name in a bare container
        return "local"


# -- submit -------------------------------------------------------------------------------------


def _sweep_settings(
    grid: list[str], where: list[str], metric: str, minimize: bool, random: int | None, optimize: int | None, seed: int
) -> dict[str, Any] | None:
    if not grid:
        if where or random or optimize:
            raise ConfigError("--where, --random and --optimize need --grid NAME=... to sweep")
        return None
    if random is not None and optimize is not None:
        raise ConfigError("--random and --optimize exclude each other; choose one (or neither, for the whole grid)")
    method = "random" if random is not None else "optimize" if optimize is not None else "grid"
    return {
        "grid": list(grid),
        "where": list(where),
        "metric": metric,
        "minimize": minimize,
        "method": method,
        "trials": random or optimize,
        "seed": seed,
    }


def build_spec(
    service: JobService,
    strategy: Path,
    *,
    symbols: str,
    start: str | None = None,
    end: str | None = None,
    frequency: str = "1d",
    params: dict[str, Any] | None = None,
    snapshot: str | None = None,
    engine: EngineConfig | None = None,
    class_name: str | None = None,
    benchmark: str | None = None,
    calendar: str | None = None,
    sweep: dict[str, Any] | None = None,
    limits: Limits | None = None,
    priority: int = 0,
    owner: str | None = None,
) -> JobSpec:
    """Upload the strategy and return a job spec pinned to the newest (or the named) snapshot."""
    if not strategy.is_file():
        raise ConfigError(f"{strategy}: no such strategy file; pass the path of a .py file")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if not names:
        raise ConfigError("--symbols: name at least one symbol, e.g. --symbols AAA,BBB")
    loaded = load_strategy(strategy, class_name=class_name)  # fail here, not on a worker, on a broken file
    loaded.instantiate(params or {})
    if sweep is not None:
        from quantfleet.sweep import parse_space

        parse_space(sweep["grid"], sweep["where"], loaded.parameters)
    code = service.put_code(strategy.read_bytes(), strategy.name, class_name=class_name)
    return JobSpec(
        kind=JobKind.SWEEP if sweep else JobKind.BACKTEST,
        code=code,
        params=dict(params or {}),
        universe=tuple(names),
        start=start,  # type: ignore[arg-type]
        end=end,  # type: ignore[arg-type]
        frequency=Frequency.parse(frequency),
        snapshot=int(state.store().resolve(snapshot)),
        engine=(engine or EngineConfig()).model_dump(mode="json"),
        sweep=sweep,
        benchmark=benchmark,
        calendar=calendar or _settings().calendar,
        limits=limits or Limits(),
        priority=priority,
        owner=_owner(owner),
    )


def _limits(wall_time: float | None, cpu_time: float | None, memory: int | None) -> Limits:
    """Return the limits given on the command line; the others keep their defaults (lowered to any maximum)."""
    given: dict[str, Any] = {"wall_time_s": wall_time, "cpu_time_s": cpu_time, "memory_mb": memory}
    return Limits.model_validate({name: value for name, value in given.items() if value is not None})


def submit(
    strategy: Path = typer.Argument(..., help="The strategy file (.py)."),
    symbols: str = typer.Option(..., "--symbols", help="Comma-separated universe, e.g. AAA,BBB."),
    start: str | None = typer.Option(None, "--start", help="First date to trade (YYYY-MM-DD)."),
    end: str | None = typer.Option(None, "--end", help="Last date (inclusive)."),
    frequency: str = typer.Option("1d", "--frequency", "-f", help="Bar frequency: 1m, 5m, 15m, 30m, 1h, 1d."),
    param: list[str] = typer.Option([], "--param", "-p", help="Override a parameter: NAME=VALUE (repeatable)."),
    snapshot: str | None = typer.Option(None, "--snapshot", "-s", help="Data snapshot id or tag (default: newest)."),
    cash: float = typer.Option(100_000.0, "--cash", help="Starting cash."),
    commission: str = typer.Option("none", "--commission", help="none, 5bps, or 0.005/share[,min=1]."),
    slippage: str = typer.Option("none", "--slippage", help="none, 5bps, or volume:0.1."),
    adjustment: Adjustment = typer.Option(Adjustment.RAW, "--adjustment", help="Prices: raw, splits or all."),
    warmup: int = typer.Option(0, "--warmup", help="Bars before --start that indicators see."),
    seed: int = typer.Option(0, "--seed", help="Seed of ctx.random (and of --random)."),
    class_name: str | None = typer.Option(None, "--class", help="Strategy class, when the file has several."),
    benchmark: str | None = typer.Option(None, "--benchmark", help="Benchmark symbol ('none' for none)."),
    grid: list[str] = typer.Option([], "--grid", "-g", help="Sweep a parameter: NAME=START:STOP:STEP or NAME=a,b,c."),
    where: list[str] = typer.Option([], "--where", "-w", help="A sweep constraint, e.g. 'fast < slow'."),
    metric: str = typer.Option("sharpe", "--metric", "-m", help="The metric a sweep ranks by."),
    minimize: bool = typer.Option(False, "--minimize", help="Rank the lowest metric first."),
    random: int | None = typer.Option(None, "--random", help="Sweep N seeded random combinations."),
    optimize: int | None = typer.Option(None, "--optimize", help="Sweep with N Optuna trials (one job)."),
    wall_time: float | None = typer.Option(None, "--wall-time", help="Wall-clock limit per attempt, s [1800]."),
    cpu_time: float | None = typer.Option(None, "--cpu-time", help="CPU-time limit, seconds."),
    memory: int | None = typer.Option(None, "--memory", help="Memory limit, MiB [2048]."),
    priority: int = typer.Option(0, "--priority", help="Higher runs first."),
    owner: str | None = typer.Option(None, "--owner", help="Who submits (default: your user name)."),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Submitting again with this key returns the same job."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to end and show its metrics."),
    local: bool = typer.Option(False, "--local", help="Run the job here (a one-slot worker), not on the pool."),
) -> None:
    """Submit a backtest (or, with --grid, a sweep) as a job; print its id."""
    if (qf := remote.client()) is not None:  # remote mode: QUANTFLEET_API_URL names a server
        if local:
            raise ConfigError("--local runs the job on this machine's database; unset QUANTFLEET_API_URL for it")
        body = {"symbols": symbols, "start": start, "end": end, "frequency": frequency, "params": parse_params(param),
                "snapshot": snapshot, "class_name": class_name, "benchmark": benchmark, "priority": priority,
                "engine": EngineConfig(cash=cash, commission=parse_commission(commission), slippage=parse_slippage(
                    slippage), adjustment=adjustment, warmup=warmup, seed=seed).model_dump(mode="json"),
                "limits": _limits(wall_time, cpu_time, memory).model_dump(mode="json", exclude_unset=True)}
        sweep = _sweep_settings(grid, where, metric, minimize, random, optimize, seed)
        return remote.submit(qf, strategy, spec=body, sweep=sweep, wait=wait, idempotency_key=idempotency_key)
    service = _service()
    bench = "" if benchmark is not None and benchmark.strip().lower() == "none" else benchmark
    spec = build_spec(
        service, strategy, symbols=symbols, start=start, end=end, frequency=frequency, params=parse_params(param),
        snapshot=snapshot, class_name=class_name, benchmark=bench.strip().upper() if bench else bench,
        engine=EngineConfig(cash=cash, commission=parse_commission(commission), slippage=parse_slippage(slippage),
                            adjustment=adjustment, warmup=warmup, seed=seed),
        sweep=_sweep_settings(grid, where, metric, minimize, random, optimize, seed),
        limits=_limits(wall_time, cpu_time, memory), priority=priority, owner=owner,
    )  # fmt: skip
    job = service.submit(spec, idempotency_key=idempotency_key)
    out.print(job.id)
    if local:
        run_local(_settings(), service, [job.id])
    if wait or local:
        job = wait_for(service, job.id)
        _print_result(job)
        if job.state is not JobState.SUCCEEDED:
            raise typer.Exit(1)


def run_local(settings: Settings, service: JobService, job_ids: list[str], *, slots: int = 1) -> int:
    """Run these jobs (and a sweep's children) in this process until they end; return how many attempts ran.

    Only these: other queued jobs (other users', other submissions) stay for the pool.
    """
    from quantfleet.dispatch.pool import worker_from_settings

    worker = worker_from_settings(settings, slots=slots, service=service)
    try:
        return worker.run_jobs([JobId(j) for j in job_ids], timeout=24 * 3600)
    finally:
        worker.shutdown(grace=0)


def wait_for(service: JobService, job_id: str, *, poll: float = 0.2) -> Job:
    """Return the job once it has ended, saying when its state changes."""
    seen: JobState | None = None
    while True:
        job = service.get(service.resolve(job_id))
        if job.state is not seen:
            seen = job.state
            err.print(f"[dim]{job.id}[/dim] {_state(job.state)}")
        if job.terminal:
            return job
        threading.Event().wait(poll)


def _print_result(job: Job) -> None:
    if job.error:
        err.print(f"[bold red]{job.state.value}:[/bold red] {job.error}", highlight=False)
    metrics = job.metrics or {}
    table = Table(title=f"job {job.id} · {job.state.value}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "trades", "final_equity"):
        if key in metrics:
            table.add_row(key.replace("_", " "), _fmt(metrics[key]))
    if metrics.get("best"):
        table.add_row("best params", json.dumps(metrics["best"].get("params")))
        table.add_row("combinations", str(metrics.get("combinations")))
    out.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return str(value)


def _state(value: JobState) -> str:
    return f"[{_COLOURS.get(value, '')}]{value.value}[/]"


# -- jobs ... -----------------------------------------------------------------------------------


def _duration(job: Job) -> str:
    if job.started_at is None:
        return ""
    end = job.finished_at or job.updated_at
    return f"{(end - job.started_at).total_seconds():.1f}s"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""


@app.command("ls")
def ls(
    state_: list[JobState] = typer.Option([], "--state", help="Only jobs in this state (repeatable)."),
    owner: str | None = typer.Option(None, "--owner", help="Only jobs of this owner."),
    parent: str | None = typer.Option(None, "--parent", help="Only the children of this sweep job."),
    limit: int = typer.Option(50, "--limit", "-n", help="How many, newest first."),
) -> None:
    """List jobs, newest first."""
    if (qf := remote.client()) is not None:
        return remote.ls(qf, states=[s.value for s in state_], owner=owner, parent=parent, limit=limit)
    service = _service()
    page = service.list(
        state=state_ or None, owner=owner, parent=service.resolve(parent) if parent else None, limit=limit
    )
    table = Table(title="jobs", caption="ids shortened: any unique prefix of 6 or more digits names a job")
    # Fits 80 columns: short ids and times; the strategy's name folds rather than vanishing.
    for col in ("id", "state", "strategy", "owner", "submitted", "took", "sharpe"):
        table.add_column(
            col,
            justify="right" if col in ("took", "sharpe") else "left",
            no_wrap=col not in ("strategy", "owner"),
            min_width=10 if col == "strategy" else None,
            overflow="fold",
        )
    for job in page.items:
        sharpe = (job.metrics or {}).get("sharpe")
        table.add_row(
            job.id[:8], _state(job.state),
            job.spec.code.name if job.kind == JobKind.BACKTEST else f"{job.spec.code.name} ({job.kind})", job.owner,
            job.submitted_at.strftime("%m-%d %H:%M") if job.submitted_at else "",
            _duration(job), f"{sharpe:.2f}" if isinstance(sharpe, int | float) else "",
        )  # fmt: skip
    out.print(table)


@app.command("show")
def show(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Show a job: its spec, attempts, events, metrics and error."""
    if (qf := remote.client()) is not None:
        return remote.show(qf, job_id)
    service = _service()
    job = service.get(service.resolve(job_id))
    why = f" ({job.reason.value})" if job.reason is not None else ""
    out.print(f"[bold]{job.id}[/bold] {_state(job.state)}{why} · {job.kind} · {job.spec.code.name} · owner {job.owner}")
    out.print_json(json.dumps(job.spec.model_dump(mode="json"), sort_keys=True))
    attempts = Table(title="attempts")
    for col in ("#", "worker", "state", "started", "finished", "error"):
        attempts.add_column(col)
    for a in service.attempts(job.id):
        attempts.add_row(
            str(a.number), a.worker, a.state, _when(a.started_at), _when(a.finished_at), (a.error or "")[:120]
        )
    out.print(attempts)
    events = Table(title="events")
    for col in ("at", "event", "from", "to", "attempt", "by", "detail"):
        events.add_column(col)
    for e in service.events(job.id):
        events.add_row(
            _when(e.at), e.event, e.from_state.value if e.from_state else "", e.to_state.value,
            str(e.attempt or ""), e.actor, (e.detail or "")[:120],
        )  # fmt: skip
    out.print(events)
    if job.metrics:
        out.print_json(json.dumps(job.metrics, sort_keys=True, default=str))
    if job.error:
        out.print(f"[bold red]error:[/bold red] {job.error}", highlight=False)


def follow_log(
    service: JobService, job_id: str, *, attempt: int | None = None, follow: bool = False, poll: float = 0.25
) -> Iterator[str]:
    """Yield the job's log text; with ``follow``, keep yielding as it grows until the job ends.

    Without ``attempt``, the latest attempt is pinned once known; when a retry
    starts, the rest of the old attempt is read, then a marker line, then the
    new attempt from its start.
    """
    jid = service.resolve(job_id)
    offset = 0
    current = attempt
    while True:
        chunk = service.read_log(jid, attempt=current, offset=offset)
        if chunk.text:
            yield chunk.text
        offset = chunk.next_offset
        if current is None and chunk.attempt:
            current = chunk.attempt  # pinned: a retry is never read from this attempt's offset
        if not follow:
            return
        job = service.get(jid)
        if attempt is None and current is not None and job.attempt > current:
            if chunk.complete:  # the old attempt is read to its end: on to the next one, from its start
                current, offset = current + 1, 0
                yield f"\n[quantfleet: attempt {current}]\n"
                continue
        elif chunk.complete and (attempt is not None or job.terminal):
            return
        threading.Event().wait(poll)


@app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="The job id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing as the log grows, until the job ends."),
    attempt: int | None = typer.Option(None, "--attempt", help="Show this attempt (default: the latest)."),
) -> None:
    """Print a job's log (its stdout, stderr and strategy log lines)."""
    if (qf := remote.client()) is not None:
        return remote.logs(qf, job_id, follow=follow, attempt=attempt)
    for text in follow_log(_service(), job_id, attempt=attempt, follow=follow):
        out.out(text, end="", highlight=False)


@app.command("cancel")
def cancel(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Cancel a job (a running one stops within a couple of seconds)."""
    if (qf := remote.client()) is not None:
        return remote.cancel(qf, job_id)
    service = _service()
    job = service.cancel(service.resolve(job_id), by=_owner(None))
    out.print(f"{job.id} {_state(job.state)}" + (" (cancel requested)" if job.state is JobState.RUNNING else ""))


@app.command("artifacts")
def artifacts(
    job_id: str = typer.Argument(..., help="The job id."),
    download: Path | None = typer.Option(None, "--download", help="Copy every artifact into this folder."),
) -> None:
    """List a job's artifacts (metrics, equity, trades, tearsheet, ...), or download them."""
    service = _service()
    jid = service.resolve(job_id)
    table = Table(title=f"artifacts of {jid}")
    for col in ("name", "size", "sha256"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for a in service.artifacts(jid):
        table.add_row(a.name, f"{a.size:,}", a.sha256[:16])
        if download is not None:
            target = download / a.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(service.artifact_bytes(jid, a.name))
    out.print(table)
    if download is not None:
        out.print(f"downloaded to [bold]{download}[/bold]")


def verify_identical(service: JobService, first: str, second: str) -> list[str]:
    """Return the differences between two jobs' metrics.json and equity.parquet bytes (empty: identical)."""
    problems = []
    for name in ("metrics.json", "equity.parquet"):
        a = service.artifact_bytes(service.resolve(first), name)
        b = service.artifact_bytes(service.resolve(second), name)
        if a != b:
            ha, hb = hashlib.sha256(a).hexdigest()[:16], hashlib.sha256(b).hexdigest()[:16]
            problems.append(f"{name}: {len(a):,} bytes sha256 {ha}… vs {len(b):,} bytes sha256 {hb}…")
            if name == "metrics.json":
                ma, mb = json.loads(a), json.loads(b)
                diff = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
                problems.append(f"  metrics that differ: {', '.join(diff[:20])}")
    return problems


@app.command("rerun")
def rerun(
    job_id: str = typer.Argument(..., help="The job to run again."),
    verify: bool = typer.Option(False, "--verify", help="Wait, then check metrics and equity are byte-identical."),
    local: bool = typer.Option(False, "--local", help="Run it here (a one-slot worker), not on the pool."),
) -> None:
    """Run a job's exact spec again (same code, parameters and snapshot); --verify checks reproducibility."""
    if (qf := remote.client()) is not None:
        return remote.rerun(qf, job_id, verify=verify, local=local)
    service = _service()
    original = service.get(service.resolve(job_id))
    job = service.submit(original.spec.model_copy(update={"parent": None}))  # a sweep's child reruns on its own
    out.print(job.id)
    if not (verify or local):
        return
    if local:
        run_local(_settings(), service, [job.id])
    job = wait_for(service, job.id)
    if not verify:
        return
    if job.state is not JobState.SUCCEEDED or original.state is not JobState.SUCCEEDED:
        err.print(f"cannot compare: the original is {original.state.value}, the rerun {job.state.value}")
        raise typer.Exit(1)
    problems = verify_identical(service, original.id, job.id)
    if problems:
        err.print("[bold red]not reproducible:[/bold red]")
        for line in problems:
            err.print(line, highlight=False)
        raise typer.Exit(1)
    out.print(f"[green]identical:[/green] metrics.json and equity.parquet of {original.id} and {job.id}")


# -- worker -------------------------------------------------------------------------------------


def _serve(
    slots: int | None, name: str | None, launcher: str | None, grace: float, what: str, broker: str | None = None
) -> None:
    from quantfleet.dispatch.pool import run_worker, worker_from_settings

    settings = _settings()
    if broker or settings.broker_url:  # a Celery fleet worker: configuration decides, not code
        from quantfleet.dispatch.celery_worker import run_celery_worker

        url = (broker or settings.broker_url or "").split("@")[-1]
        err.print(f"[bold]{what}[/bold]: Celery worker on {url}; Ctrl-C stops (running jobs get {grace:g} s)")
        fleet = run_celery_worker(settings, broker_url=broker, slots=slots, name=name, launcher=launcher, grace=grace)
        err.print(f"stopped; {fleet.completed} attempts ran")
        return
    pool = worker_from_settings(settings, slots=slots, name=name, launcher=launcher)
    stop = threading.Event()
    hurry = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            hurry.set()  # a second Ctrl-C: re-queue running jobs now
            pool.abandon()
            err.print("stopping now: running jobs go back to the queue")
        else:
            err.print(f"stopping: running jobs get {grace:g} s to finish; Ctrl-C again re-queues them now")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    err.print(
        f"[bold]{what}[/bold]: worker {pool.config.name} with {pool.config.slots} slots on "
        f"{settings.resolved_database_url.split('@')[-1]}; Ctrl-C stops (running jobs get {grace:g} s, "
        "a second Ctrl-C re-queues them)"
    )
    started = time.monotonic()
    run_worker(pool, stop, grace=lambda: 0.0 if hurry.is_set() else grace)
    err.print(f"stopped after {time.monotonic() - started:.0f} s; {pool.completed} attempts ran")


def worker(
    slots: int | None = typer.Option(None, "--slots", "-n", help="Jobs at once (default: the number of cores)."),
    name: str | None = typer.Option(None, "--name", help="Worker name (default: host/pid)."),
    launcher: str | None = typer.Option(
        None, "--launcher", help="forkserver (fast start), subprocess, or bubblewrap (the sandbox); "
        "default QUANTFLEET_WORKER_LAUNCHER."
    ),
    grace: float = typer.Option(30.0, "--grace", help="Seconds running jobs get to finish on shutdown."),
    broker: str | None = typer.Option(
        None, "--broker", help="Celery broker URL (redis://..., amqp://...); default QUANTFLEET_BROKER_URL, else local."
    ),
    log_format: LogFormat = typer.Option(
        LogFormat.TEXT, "--log-format", envvar="QUANTFLEET_LOG_FORMAT", help="text, or json lines."
    ),
) -> None:
    """Run a worker: claim queued jobs and run each in a child process, until Ctrl-C."""
    configure_logging(json=log_format is LogFormat.JSON)
    _serve(slots, name, launcher, grace, "quantfleet worker", broker)


# -- make demo ----------------------------------------------------------------------------------

DEMO_JOBS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("sma_crossover.py", {"fast": 10, "slow": 30}),
    ("momentum.py", {}),
    ("mean_reversion.py", {}),
)


def demo_jobs(settings: Settings, examples: Path | None = None) -> list[Job]:
    """Submit the examples as jobs (on the demo data), run them here on two slots, and list them."""
    state.settings = settings
    service = _service()
    root = examples or Path(__file__).resolve().parents[3] / "examples"
    jobs = []
    for name, params in DEMO_JOBS:
        if not (root / name).is_file():
            continue
        spec = build_spec(
            service, root / name, symbols="AAA,BBB,CCC", start="2018-01-01", end="2024-12-31",
            params=params, engine=EngineConfig(warmup=60), owner="demo",
        )  # fmt: skip
        jobs.append(service.submit(spec, idempotency_key=f"demo-{name}-{spec.fingerprint()[:12]}"))
        err.print(f"submitted {name} as job {jobs[-1].id}")
    run_local(settings, service, [j.id for j in jobs], slots=2)
    ls(state_=[], owner="demo", parent=None, limit=len(jobs) or 10)
    return [service.get(j.id) for j in jobs]
