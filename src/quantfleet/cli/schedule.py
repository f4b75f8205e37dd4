"""``quantfleet data schedule add|ls|rm|run``: vendor pulls on a cron schedule, run by ``quantfleet scheduler``."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.table import Table

from quantfleet.cli.common import state
from quantfleet.core.settings import load_settings
from quantfleet.jobs import JobService
from quantfleet.live.ingest import IngestBook, parse_job, pull
from quantfleet.live.triggers import check_cron

__all__ = ["app"]

app = typer.Typer(
    help="Pull from a vendor on a cron schedule into new snapshots ('quantfleet scheduler' runs them).",
    no_args_is_help=True,
)
out = Console()


def _book() -> IngestBook:
    return IngestBook(JobService.from_settings(state.settings or load_settings()).db)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="A short name for the schedule, e.g. eod."),
    vendor: str = typer.Option(..., "--vendor", help="yahoo or alpaca (keys from APCA_API_KEY_ID/SECRET_KEY)."),
    symbols: str = typer.Option(..., "--symbols", "-s", help="Comma-separated symbols, e.g. AAPL,MSFT."),
    cron: str = typer.Option(..., "--cron", help="When, in the exchange's time zone, e.g. '30 17 * * MON-FRI'."),
    calendar: str = typer.Option("XNYS", "--calendar", help="Exchange calendar: pulls fire on its session days."),
    frequency: str = typer.Option("1d", "--frequency", "-f", help="Bar frequency: 1m, 5m, 15m, 30m, 1h or 1d."),
    lookback_days: int = typer.Option(5, "--lookback-days", help="Each pull covers this many days back."),
    mode: str = typer.Option("upsert", "--mode", help="upsert (replace overlapping bars) or append."),
    off_session: str = typer.Option("error", "--off-session", help="Bars outside sessions: error, drop or keep."),
    sessions_only: bool = typer.Option(
        False, "--sessions-only", help="Fire only while the market is open (default: any time on a session day)."
    ),
) -> None:
    """Add an ingestion schedule; the scheduler pulls on it from its next fire time on."""
    check_cron(cron)
    job = parse_job(
        {
            "name": name,
            "vendor": vendor.strip().lower(),
            "symbols": tuple(s for s in symbols.replace(" ", ",").split(",") if s.strip()),
            "frequency": frequency,
            "trigger": {"cron": cron, "calendar": calendar, "sessions_only": sessions_only},
            "lookback_days": lookback_days,
            "mode": mode,
            "off_session": off_session,
        }
    )
    record = _book().add(job)
    out.print(
        f"ingestion schedule [bold]{job.name}[/bold] added: {job.vendor} {','.join(job.symbols)} "
        f"{job.frequency.value} at '{cron}' ({calendar}); first pull {record.next_at:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )


@app.command("ls")
def ls() -> None:
    """List ingestion schedules: when each pulls next, and how its last pull went."""
    table = Table(title="ingestion schedules")
    for col in ("name", "vendor", "symbols", "freq", "cron", "next (UTC)", "last (UTC)", "snapshot", "error"):
        table.add_column(col)
    for r in _book().list():
        job = r.job
        table.add_row(
            job.name,
            job.vendor,
            ",".join(job.symbols),
            job.frequency.value,
            f"{job.trigger.cron} {job.trigger.calendar}",
            f"{r.next_at:%Y-%m-%d %H:%M}" if r.next_at else "-",
            f"{r.last_run_at:%Y-%m-%d %H:%M}" if r.last_run_at else "-",
            str(r.last_snapshot) if r.last_snapshot is not None else "-",
            (r.last_error or "")[:80],
        )
    out.print(table)


@app.command("rm")
def rm(name: str = typer.Argument(..., help="The schedule's name.")) -> None:
    """Remove an ingestion schedule (the snapshots it wrote stay)."""
    _book().remove(name)
    out.print(f"ingestion schedule {name} removed")


@app.command("run")
def run(name: str = typer.Argument(..., help="The schedule's name.")) -> None:
    """Pull a schedule's window now, as the scheduler would, and record it."""
    book = _book()
    job = book.get(name).job
    now = book.clock.now()
    try:
        result = pull(job, state.store(), due=now, env=os.environ)
    except Exception as exc:
        book.record_run(name, at=now, snapshot=None, error=f"{type(exc).__name__}: {exc}")
        raise
    book.record_run(name, at=now, snapshot=int(result.snapshot), error=None)
    out.print(f"[green]snapshot {result.snapshot}[/green]: {result.rows:,} bars of {len(result.symbols)} symbol(s)")
