"""The ``quantfleet`` command: parse, call one service function, render.

Domain errors become exit codes here and only here: 2 for a user error (the
message says how to fix it), 3 for an infrastructure error (retrying may help).
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import typer
from rich.console import Console

from quantfleet import __version__
from quantfleet.cli import data as data_cli
from quantfleet.cli import db as db_cli
from quantfleet.cli import deploy as deploy_cli
from quantfleet.cli import jobs as jobs_cli
from quantfleet.cli import report as report_cli
from quantfleet.cli import schedule as schedule_cli
from quantfleet.cli import sweep as sweep_cli
from quantfleet.cli import users as users_cli
from quantfleet.cli.api import api as api_cmd
from quantfleet.cli.backtest import backtest, run_and_report
from quantfleet.cli.common import state
from quantfleet.cli.doctor import doctor
from quantfleet.cli.up import up
from quantfleet.cli.web import web as web_cmd
from quantfleet.core.errors import ConfigError, InfrastructureError, QuantfleetError, UserError
from quantfleet.core.settings import load_settings
from quantfleet.core.types import Adjustment
from quantfleet.engine import BpsCommission, EngineConfig
from quantfleet.sandbox import BacktestSpec

__all__ = ["app", "main"]

app = typer.Typer(
    name="quantfleet",
    help="Backtest Python trading strategies on versioned market data, at scale.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_cli.app.add_typer(schedule_cli.app, name="schedule")
app.add_typer(data_cli.app, name="data")
app.add_typer(report_cli.app, name="report")
app.command("backtest")(backtest)
app.command("sweep")(sweep_cli.sweep)
app.command("walkforward")(sweep_cli.walkforward)
app.command("submit")(jobs_cli.submit)
app.add_typer(jobs_cli.app, name="jobs")
app.command("worker")(jobs_cli.worker)
app.command("up")(up)
app.command("doctor")(doctor)
app.add_typer(db_cli.app, name="db")
app.command("api")(api_cmd)
app.command("web")(web_cmd)
app.add_typer(users_cli.users_app, name="users")
app.add_typer(users_cli.token_app, name="token")
app.command("deploy")(deploy_cli.deploy)
app.add_typer(deploy_cli.app, name="deployments")
app.command("scheduler")(deploy_cli.scheduler)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"quantfleet {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Backtest Python trading strategies on versioned market data, at scale."""
    state.settings = load_settings()


@app.command()
def demo() -> None:
    """Ingest the sample data (once), show the catalog, and backtest the SMA-crossover example on it."""
    store = state.store()
    if store.latest() is None:
        data_cli.ingest_vendor_data(
            store,
            "synthetic",
            lambda symbols: data_cli.synthetic(symbols, start=date(2015, 1, 1), end=date(2024, 12, 31)),
            symbols=list(data_cli.DEMO_SYMBOLS),
            frequency="1d",
            calendar="XNYS",
        )
        data_cli.ingest_vendor_data(
            store,
            "synthetic",
            lambda symbols: data_cli.synthetic(symbols, start=date(2024, 1, 1), end=date(2024, 12, 31), frequency="1m"),
            symbols=["AAA"],
            frequency="1m",
            calendar="XNYS",
        )
    else:
        err.print(f"[dim]sample data already in {store.url}; showing it (delete .quantfleet to start over)[/dim]")
    data_cli.print_catalog(store, None)
    data_cli.print_snapshots(store)
    example = _example("sma_crossover.py")
    err.print(
        f"\n[bold]Backtesting {example} on AAA, BBB, CCC (2018-2024, daily, split-adjusted, 5 bps commission)[/bold]"
    )
    spec = BacktestSpec(
        strategy=example,
        symbols=("AAA", "BBB", "CCC"),
        start="2018-01-01",
        end="2024-12-31",
        snapshot=int(store.resolve(None)),
        engine=EngineConfig(commission=BpsCommission(bps=5), warmup=30, adjustment=Adjustment.SPLITS),
    )
    run_and_report(spec, (state.settings.home if state.settings else Path(".quantfleet")) / "runs" / "demo")
    err.print("\n[bold]Submitting the examples as jobs to a local worker pool[/bold]")
    jobs_cli.demo_jobs(state.settings or load_settings(), examples=example.parent)


def _example(name: str) -> Path:
    """Return the path of a shipped example strategy."""
    here = Path(__file__).resolve()
    for root in (Path.cwd(), *here.parents):
        candidate = root / "examples" / name
        if candidate.is_file():
            return candidate
    raise ConfigError(f"cannot find examples/{name}; run the demo from the quantfleet checkout")


def main() -> None:
    """Run the CLI, mapping quantfleet errors to messages and exit codes."""
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n, not raised
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except InfrastructureError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(3)
    except QuantfleetError as exc:  # pragma: no cover - every error is one of the two
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
