"""``quantfleet backtest``: run a strategy file on versioned data and show its metrics."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import webbrowser
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError
from quantfleet.core.types import Adjustment, Frequency
from quantfleet.engine import (
    BpsCommission,
    EngineConfig,
    FixedBpsSlippage,
    NoCommission,
    NoSlippage,
    PerShareCommission,
    VolumeShareSlippage,
)
from quantfleet.sandbox import BacktestSpec, RunOutcome, run_spec
from quantfleet.strategy.loader import load_strategy

__all__ = [
    "backtest",
    "open_in_browser",
    "parse_commission", "parse_params", "parse_slippage", "print_metrics", "run_and_report"]

out = Console()
err = Console(stderr=True)


def parse_params(items: list[str]) -> dict[str, str]:
    """Return ``--param k=v`` pairs as a dict (values are coerced by the strategy's declared types)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: write NAME=VALUE, e.g. --param fast=5")
        params[key.strip()] = value.strip()
    return params


def parse_commission(text: str) -> Any:
    """Return a commission model from 'none', '5bps' or '0.005/share[,min=1]'."""
    t = text.strip().lower()
    if t in ("none", "0", ""):
        return NoCommission()
    if m := re.fullmatch(r"([0-9.]+)\s*bps", t):
        return BpsCommission(bps=float(m[1]))
    if m := re.fullmatch(r"([0-9.]+)\s*/\s*share(?:\s*,\s*min\s*=\s*([0-9.]+))?", t):
        return PerShareCommission(rate=float(m[1]), minimum=float(m[2] or 0.0))
    raise ConfigError(f"--commission {text!r}: use none, 5bps, or 0.005/share[,min=1]")


def parse_slippage(text: str) -> Any:
    """Return a slippage model from 'none', '5bps' or 'volume:0.1'."""
    t = text.strip().lower()
    if t in ("none", "0", ""):
        return NoSlippage()
    if m := re.fullmatch(r"([0-9.]+)\s*bps", t):
        return FixedBpsSlippage(bps=float(m[1]))
    if m := re.fullmatch(r"volume\s*:\s*([0-9.]+)", t):
        return VolumeShareSlippage(impact=float(m[1]))
    raise ConfigError(f"--slippage {text!r}: use none, 5bps, or volume:0.1")


_SHOWN = (
    ("total_return", "pct"),
    ("cagr", "pct"),
    ("annual_volatility", "pct"),
    ("sharpe", "ratio"),
    ("sortino", "ratio"),
    ("calmar", "ratio"),
    ("max_drawdown", "pct"),
    ("max_drawdown_days", "days"),
    ("alpha", "pct"),
    ("beta", "ratio"),
    ("trades", "int"),
    ("win_rate", "pct"),
    ("profit_factor", "ratio"),
    ("exposure", "pct"),
    ("turnover", "ratio"),
    ("final_equity", "money"),
    ("commission", "money"),
    ("slippage", "money"),
)


def _shown(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind in ("int", "days"):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def print_metrics(outcome: RunOutcome) -> None:
    """Print the metrics table (strategy beside benchmark), the run folder and the tearsheet."""
    m = outcome.metrics
    bench = m.get("benchmark") or {}
    table = Table(title=f"{outcome.manifest['strategy']['name']} · snapshot {outcome.manifest['snapshot']}")
    table.add_column("metric")
    table.add_column("strategy", justify="right")
    if bench:
        table.add_column(f"{bench['symbol']} buy & hold", justify="right", style="dim")
    for key, kind in _SHOWN:
        row = [key.replace("_", " "), _shown(m.get(key), kind)]
        if bench:
            row.append(_shown(bench.get(key), kind) if key in bench else "")
        table.add_row(*row)
    out.print(table)
    out.print(f"run folder: [bold]{outcome.run_dir}[/bold]")
    out.print(f"tearsheet:  [bold]{outcome.run_dir / 'tearsheet.html'}[/bold]")


def run_and_report(spec: BacktestSpec, run_dir: Path) -> RunOutcome:
    """Run ``spec`` with a progress bar, then print its metrics."""
    # Fail fast on a broken file or bad parameters, before any data is read.
    load_strategy(spec.strategy, class_name=spec.class_name).instantiate(spec.params)
    with Progress(
        TextColumn("[bold]backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task("bars", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        outcome = run_spec(spec, state.store(), run_dir, progress=advance, log_stream=sys.stderr)
    print_metrics(outcome)
    return outcome


def _run_dir(spec: BacktestSpec) -> Path:
    settings = state.settings
    home = settings.home if settings else Path(".quantfleet")
    key = (
        json.dumps(spec.model_dump(mode="json"), sort_keys=True)
        + hashlib.sha256(spec.strategy.read_bytes()).hexdigest()
    )
    return home / "runs" / f"{spec.strategy.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def backtest(
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
    fill_at: str = typer.Option("next_open", "--fill-at", help="next_open (default) or close (optimistic)."),
    volume_limit: float | None = typer.Option(None, "--volume-limit", help="Max share of a bar's volume per fill."),
    no_short: bool = typer.Option(False, "--no-short", help="Disable short selling."),
    leverage: float = typer.Option(1.0, "--max-leverage", help="Max gross exposure / equity."),
    fractional: bool = typer.Option(False, "--fractional", help="Trade fractional units."),
    adjustment: Adjustment = typer.Option(Adjustment.RAW, "--adjustment", help="Prices: raw, splits or all."),
    warmup: int = typer.Option(0, "--warmup", help="Bars before --start that indicators see."),
    seed: int = typer.Option(0, "--seed", help="Seed of ctx.random."),
    class_name: str | None = typer.Option(None, "--class", help="Strategy class, when the file has several."),
    benchmark: str | None = typer.Option(
        None, "--benchmark", help="Buy-and-hold benchmark symbol (default: the first of --symbols; 'none' for none)."
    ),
    calendar: str | None = typer.Option(
        None, "--calendar", help="Exchange calendar for annualizing intraday returns (default: QUANTFLEET_CALENDAR)."
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="Run folder (default: .quantfleet/runs/NAME-HASH)."),
    open_report: bool = typer.Option(False, "--open", help="Open the tearsheet in the browser when done."),
    simulator: str = typer.Option(
        "event", "--engine", help="event (any strategy) or vectorized (signals() strategies, compiled)."
    ),
) -> None:
    """Backtest a strategy file and write its run folder."""
    if simulator not in ("event", "vectorized"):
        raise ConfigError(f"--engine {simulator!r}: use event or vectorized")
    if fill_at not in ("next_open", "close"):
        raise ConfigError(f"--fill-at {fill_at!r}: use next_open or close")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    store = state.store()
    if benchmark is not None and benchmark.strip().lower() == "none":
        benchmark = ""
    spec = BacktestSpec(
        strategy=strategy,
        class_name=class_name,
        symbols=tuple(names),
        start=start,
        end=end,
        frequency=Frequency.parse(frequency),
        snapshot=int(store.resolve(snapshot)),
        params=parse_params(param),
        engine=EngineConfig(
            cash=cash,
            commission=parse_commission(commission),
            slippage=parse_slippage(slippage),
            fill_at=fill_at,  # type: ignore[arg-type]
            volume_limit=volume_limit,
            allow_short=not no_short,
            max_leverage=leverage,
            fractional=fractional,
            adjustment=adjustment,
            warmup=warmup,
            seed=seed,
        ),
        benchmark=benchmark.strip().upper() if benchmark is not None else None,
        calendar=calendar or (state.settings.calendar if state.settings else "XNYS"),
        simulator=simulator,  # type: ignore[arg-type]
    )
    if not strategy.is_file():
        raise ConfigError(f"{strategy}: no such strategy file")
    outcome = run_and_report(spec, out_dir or _run_dir(spec))
    if open_report:
        open_in_browser(outcome.run_dir / "tearsheet.html")


def open_in_browser(path: Path) -> None:
    """Open a report in the default browser, or say where it is when there is none."""
    if not webbrowser.open(path.resolve().as_uri()):
        err.print(f"no browser found; open {path} yourself")
