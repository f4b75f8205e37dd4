"""quantfleet deploy, deployments ls/show/pause/resume/stop/kill/run/supervise, and scheduler: faces over live."""

from __future__ import annotations

import getpass
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from quantfleet.cli import remote
from quantfleet.cli.common import state
from quantfleet.core.settings import Settings, load_settings
from quantfleet.core.types import Frequency
from quantfleet.data import MarketDataStore
from quantfleet.jobs import JobService
from quantfleet.jobs.clock import Clock, SystemClock
from quantfleet.live.brokers import open_broker
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.ingest import IngestBook, scheduled
from quantfleet.live.models import DeploymentSpec, DeploymentStatus
from quantfleet.live.mqtt import BarFeed, run_on_bars
from quantfleet.live.risk import kill as kill_switch
from quantfleet.live.runner import LiveRunner
from quantfleet.live.scheduler import Scheduler
from quantfleet.live.session import DeploymentSession
from quantfleet.live.supervisor import EventFleet, Supervisor
from quantfleet.live.triggers import check_cron
from quantfleet.strategy.loader import load_strategy

__all__ = ["app", "build_scheduler", "deploy", "event_command", "scheduler"]

app = typer.Typer(help="List, pause, resume, stop and kill deployments.", no_args_is_help=True)
out = Console()


def _settings() -> Settings:
    return state.settings or load_settings()


def _service() -> DeploymentService:
    return DeploymentService(JobService.from_settings(_settings()))


def deploy(
    strategy: Path = typer.Argument(..., help="The strategy file (the same file you backtest)."),
    symbols: str = typer.Option(..., "--symbols", "-s", help="Comma-separated symbols to trade."),
    schedule: str | None = typer.Option(None, "--schedule", help="Cron expression in the exchange's time zone."),
    on_bars: bool = typer.Option(False, "--on-bars", help="Run on each bar arriving on the MQTT feed instead."),
    calendar: str = typer.Option("XNYS", "--calendar", help="Exchange calendar of the schedule."),
    half_days: str = typer.Option("skip", "--half-days", help="A run due after an early close: skip or move."),
    broker: str = typer.Option("paper", "--broker", help="paper or alpaca."),
    account: str = typer.Option("", "--account", help="Broker account (paper: its name; default: the deployment's)."),
    frequency: str = typer.Option("1d", "--frequency", "-f", help="Bar frequency the strategy trades on."),
    param: list[str] = typer.Option([], "--param", "-p", help="Parameter NAME=VALUE (repeatable)."),
    name: str | None = typer.Option(None, "--name", help="A short name (default: the file's)."),
    cash: float = typer.Option(100_000.0, "--cash", help="Starting cash of a new paper account."),
    max_position: float | None = typer.Option(None, "--max-position", help="Largest quantity held per symbol."),
    max_order_value: float | None = typer.Option(None, "--max-order-value", help="Largest value of one order."),
    max_daily_loss: float | None = typer.Option(None, "--max-daily-loss", help="Pause past this loss in a day."),
    max_orders_per_day: int | None = typer.Option(None, "--max-orders-per-day", help="Orders per day at most."),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Remote mode: deploying again with this key returns the same deployment."
    ),
) -> None:
    """Deploy a strategy file to paper or live trading on a schedule or on market events."""
    if (schedule is None) == (not on_bars):
        raise typer.BadParameter("give either --schedule CRON or --on-bars")
    if schedule is not None:
        check_cron(schedule)
    loaded = load_strategy(strategy)  # your own file, on your machine: it must load before it is deployed
    params = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param {item!r}: write NAME=VALUE")
        params[key] = value
    trigger = (
        {"kind": "cron", "cron": schedule, "calendar": calendar, "half_days": half_days}
        if schedule
        else {"kind": "bars"}
    )
    fields = {
        "name": name or strategy.stem.replace(" ", "_"),
        "class_name": loaded.name if loaded.kind.value == "class" else None,
        "params": params,
        "frequency": Frequency.parse(frequency).value,
        "broker": broker,
        "account": account,
        "trigger": trigger,
        "risk": {
            "max_position": max_position,
            "max_order_value": max_order_value,
            "max_daily_loss": max_daily_loss,
            "max_orders_per_day": max_orders_per_day,
        },
        "engine": {"cash": cash},
    }
    universe = [s.strip() for s in symbols.split(",") if s.strip()]
    if (qf := remote.client()) is not None:  # remote mode: QUANTFLEET_API_URL names a server
        return remote.deploy(qf, strategy, spec={"symbols": universe, **fields}, idempotency_key=idempotency_key)
    service = _service()
    sha = service.put_code(strategy.read_bytes(), strategy.name)
    spec = DeploymentSpec.model_validate(
        {
            **fields,
            "owner": getpass.getuser(),
            "code_sha256": sha,
            "code_name": strategy.name,
            "universe": tuple(universe),
        }
    )
    dep = service.create(spec)
    out.print(f"{dep.id} deployed ({spec.name}, {broker}, {schedule or 'on bars'}); 'quantfleet scheduler' runs it")


@app.command("ls")
def ls(status: str | None = typer.Option(None, "--status", help="active, paused or stopped.")) -> None:
    """List deployments."""
    if (qf := remote.client()) is not None:
        return remote.deployments(qf, status=status)
    service = _service()
    table = Table("id", "name", "status", "broker", "trigger", "runs", "next run")
    for dep in service.list(status=DeploymentStatus(status) if status else None):
        trigger = dep.spec.trigger
        table.add_row(
            dep.id[:8],
            dep.spec.name,
            dep.status.value,
            dep.spec.broker,
            getattr(trigger, "cron", "on bars"),
            str(dep.runs),
            f"{dep.next_run_at:%Y-%m-%d %H:%M}" if dep.next_run_at else "-",
        )
    out.print(table)


@app.command("show")
def show(deployment: str = typer.Argument(..., help="Deployment id (or 6+ leading digits).")) -> None:
    """Show a deployment: status, positions, recent orders."""
    service = _service()
    dep = service.get(deployment)
    out.print(
        f"{dep.id}  {dep.spec.name}  [bold]{dep.status.value}[/bold]" + (f" ({dep.reason})" if dep.reason else "")
    )
    broker = open_broker(dep, service.db, now=SystemClock().now())
    for symbol, pos in broker.positions().items():
        out.print(f"  {symbol}: {pos.quantity:g} at {pos.average_cost:,.4f}")
    account = broker.account()
    out.print(f"  cash {account.cash:,.2f}  equity {account.equity:,.2f}")
    for row in service.orders(dep.id, limit=20):
        out.print(f"  {row['client_id']}  {row['symbol']}  {row['status']}  {row['reason']}")


@app.command("pause")
def pause(deployment: str = typer.Argument(..., help="Deployment id.")) -> None:
    """Hold a deployment: runs are skipped and orders refused until resumed."""
    if (qf := remote.client()) is not None:
        return remote.change_deployment(qf, deployment, "pause")
    out.print(f"{_service().pause(deployment).id} paused")


@app.command("resume")
def resume(deployment: str = typer.Argument(..., help="Deployment id.")) -> None:
    """Let a paused deployment trade again."""
    if (qf := remote.client()) is not None:
        return remote.change_deployment(qf, deployment, "resume")
    out.print(f"{_service().resume(deployment).id} active")


@app.command("stop")
def stop(deployment: str = typer.Argument(..., help="Deployment id.")) -> None:
    """End a deployment for good (its records stay)."""
    if (qf := remote.client()) is not None:
        return remote.change_deployment(qf, deployment, "stop")
    out.print(f"{_service().stop(deployment).id} stopped")


@app.command("kill")
def kill(
    deployment: str = typer.Argument(..., help="Deployment id."),
    flatten: bool = typer.Option(False, "--flatten", help="Also close the deployment's positions at market."),
) -> None:
    """Kill switch: pause at once, cancel open orders, optionally flatten."""
    if (qf := remote.client()) is not None:
        return remote.change_deployment(qf, deployment, "kill", flatten=flatten)
    service = _service()
    dep = service.get(deployment)
    now = SystemClock().now()
    report = kill_switch(service, open_broker(dep, service.db, now=now), dep.id, now=now, flatten=flatten)
    out.print(f"{dep.id} paused; {len(report.cancelled)} order(s) cancelled, {len(report.flattened)} flattening")


@app.command("run")
def run_events(
    deployment: str = typer.Argument(..., help="Deployment id of an --on-bars deployment."),
    mqtt_host: str = typer.Option("127.0.0.1", "--mqtt-host", help="MQTT broker host."),
    mqtt_port: int = typer.Option(1883, "--mqtt-port", help="MQTT broker port."),
) -> None:
    """Run an event deployment in the foreground: each bar on quantfleet/bars/{frequency}/{symbol} calls on_bar."""
    service = _service()
    dep = service.get(deployment)
    clock = SystemClock()
    run = service.start_run(dep.id, due_at=clock.now())
    assert run is not None
    session = DeploymentSession(
        service, dep, open_broker(dep, service.db, now=clock.now()), run=run.number, clock=clock
    )
    feed = BarFeed(mqtt_host, mqtt_port, dep.spec.frequency, dep.spec.universe)
    stop_event = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    out.print(f"{dep.id} run {run.number}: waiting for bars of {', '.join(dep.spec.universe)}")
    try:
        run_on_bars(session, feed, stop_event)
    finally:
        feed.close()
        session.close()


@app.command("supervise")
def supervise(
    deployment: str = typer.Argument(..., help="Deployment id of an --on-bars deployment."),
    stale_after: float = typer.Option(30.0, "--stale-after", help="Restart after this many seconds without a beat."),
) -> None:
    """Keep 'deployments run ID' running: restart it when it dies or stops beating."""
    service = _service()
    dep = service.get(deployment)
    command = [sys.executable, "-m", "quantfleet.cli.app", "deployments", "run", dep.id]
    sup = Supervisor(command, service, dep.id, clock=SystemClock(), stale_after=stale_after)
    stop_event = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    sup.serve(stop_event)


def build_scheduler(
    service: DeploymentService,
    store: MarketDataStore,
    *,
    clock: Clock,
    env: Mapping[str, str],
    events: EventFleet | None = None,
    settings: Settings | None = None,
) -> Scheduler:
    """Return the scheduler ``quantfleet scheduler`` runs: cron deployments, stored ingestion schedules, events.

    With ``settings``, scheduled runs' children start as those settings' workers' do (the sandbox unless
    ``QUANTFLEET_SANDBOX=trusted``), and the sandbox's self-test runs now: a broken sandbox stops the start.
    """
    if settings is not None:
        runner = LiveRunner.from_settings(service, settings, store=lambda: store, clock=clock)
    else:
        runner = LiveRunner(service, store=lambda: store, clock=clock)
    ingest = scheduled(IngestBook(service.db, clock=clock), store, env=env)
    return Scheduler(runner, ingest=ingest, events=events)


def event_command(dep_id: str, *, mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883) -> list[str]:
    """Return the argv of an event deployment's process: ``quantfleet deployments run ID``."""
    return [sys.executable, "-m", "quantfleet.cli.app", "deployments", "run", dep_id,
            "--mqtt-host", mqtt_host, "--mqtt-port", str(mqtt_port)]  # fmt: skip


def scheduler(
    once: bool = typer.Option(False, "--once", help="Tick once (fire what is due now) and exit."),
    events: bool = typer.Option(
        True, "--events/--no-events", help="Also run and supervise the --on-bars deployments' processes."
    ),
    mqtt_host: str = typer.Option("127.0.0.1", "--mqtt-host", help="MQTT broker of the event deployments."),
    mqtt_port: int = typer.Option(1883, "--mqtt-port", help="Its port."),
    stale_after: float = typer.Option(30.0, "--stale-after", help="Restart an event process silent this long (s)."),
) -> None:
    """Run the scheduler until Ctrl-C: cron runs as live jobs, ingestion schedules, event deployments' processes."""
    service = _service()
    clock = SystemClock()
    fleet = None
    if events and not once:  # a single tick would start the processes only to kill them
        fleet = EventFleet(
            lambda dep_id: event_command(dep_id, mqtt_host=mqtt_host, mqtt_port=mqtt_port),
            service, clock=clock, stale_after=stale_after,
        )  # fmt: skip
    sched = build_scheduler(
        service, state.store(), clock=clock, env=dict(os.environ), events=fleet, settings=_settings()
    )
    try:
        if once:
            for fired in sched.tick(clock.now()):
                out.print(f"fired {fired}")
            return
        stop_event = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop_event.set())
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        out.print("scheduler running; Ctrl-C stops it")
        sched.serve(stop_event, clock=clock.now)
    finally:
        sched.runner.close()
