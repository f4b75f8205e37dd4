"""``quantfleet sweep`` and ``quantfleet walkforward``: search a strategy's parameters, rank, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from quantfleet.cli.backtest import open_in_browser, parse_commission, parse_params, parse_slippage
from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError
from quantfleet.core.types import Adjustment, Frequency
from quantfleet.engine import EngineConfig
from quantfleet.sandbox import BacktestSpec
from quantfleet.strategy.loader import StrategyKind, load_strategy
from quantfleet.sweep import Method, Search, SweepJob, SweepOutcome, WalkForwardSpec, parse_space, run_sweep
from quantfleet.sweep.service import sweep_dir_name
from quantfleet.sweep.walkforward import parse_period

__all__ = ["print_leaderboard", "sweep", "walkforward"]

out = Console()
err = Console(stderr=True)
_SHOWN = ("total_return", "cagr", "sharpe", "max_drawdown", "trades")
_PCT = ("total_return", "cagr", "max_drawdown", "annual_volatility", "win_rate", "exposure")


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and key in _PCT:
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:,.0f}" if key == "trades" else f"{value:.3f}"
    return str(value)


def print_leaderboard(outcome: SweepOutcome, *, rows: int = 10) -> None:
    """Print the best rows of the leaderboard, then where the sweep folder is."""
    board = outcome.leaderboard
    metrics = [board.metric, *(m for m in _SHOWN if m != board.metric)]
    title = "walk-forward: last window, in-sample" if outcome.walkforward else f"{len(board):,} combinations"
    table = Table(title=f"{outcome.summary['strategy']['name']} · {title}")
    table.add_column("rank", justify="right")
    for name in board.names:
        table.add_column(name, justify="right", style="cyan")
    for m in metrics:
        table.add_column(m.replace("_", " "), justify="right", style="bold" if m == board.metric else "")
    for rank, entry in enumerate(board.entries[:rows], start=1):
        cells = [str(rank), *(str(entry.params[n]) for n in board.names)]
        cells += [_fmt(m, entry.metrics.get(m)) for m in metrics]
        table.add_row(*cells)
    out.print(table)
    if outcome.walkforward is not None:
        _print_windows(outcome)
    out.print(f"sweep folder: [bold]{outcome.out_dir}[/bold]")
    out.print(f"report:       [bold]{outcome.out_dir / 'report.html'}[/bold]")


def _print_windows(outcome: SweepOutcome) -> None:
    walk = outcome.walkforward
    assert walk is not None
    metric = outcome.leaderboard.metric
    table = Table(title=f"walk-forward ({'anchored' if walk.anchored else 'rolling'} {walk.train} / {walk.test})")
    for col in ("window", "test", *outcome.leaderboard.names, f"in-sample {metric}", f"out-of-sample {metric}"):
        table.add_column(col, justify="right")
    for w in walk.windows:
        bounds = w.window.to_json()
        table.add_row(
            str(w.window.index + 1),
            f"{bounds['test_start'][:10]} → {bounds['test_end'][:10]}",
            *(str(w.params[n]) for n in outcome.leaderboard.names),
            _fmt(metric, w.in_sample.get(metric)),
            _fmt(metric, w.out_of_sample.get(metric)),
        )
    out.print(table)
    stitched = "  ".join(f"{k.replace('_', ' ')} {_fmt(k, walk.out_of_sample.get(k))}" for k in _SHOWN)
    out.print(f"stitched out-of-sample: {stitched}")


def _run(job: SweepJob, out_dir: Path | None, workers: int | None, open_report: bool) -> SweepOutcome:
    target = out_dir or _home() / "sweeps" / sweep_dir_name(job)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task("sweep", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=max(total, done))

        def phase(text: str) -> None:
            progress.update(task, description=text)

        outcome = run_sweep(job, state.store(), target, workers=workers, progress=advance, phase=phase)
    print_leaderboard(outcome)
    if open_report:
        open_in_browser(outcome.out_dir / "report.html")
    return outcome


def _home() -> Path:
    return state.settings.home if state.settings else Path(".quantfleet")


def _job(
    strategy: Path,
    *,
    symbols: str,
    start: str | None,
    end: str | None,
    frequency: str,
    param: list[str],
    snapshot: str | None,
    cash: float,
    commission: str,
    slippage: str,
    warmup: int,
    adjustment: Adjustment,
    class_name: str | None,
    calendar: str | None,
    grid: list[str],
    where: list[str],
    metric: str,
    minimize: bool,
    random: int | None,
    optimize: int | None,
    seed: int,
    top: int,
    heatmap: str | None,
    engine: str = "auto",
    walkforward: WalkForwardSpec | None = None,
) -> SweepJob:
    if not strategy.is_file():
        raise ConfigError(f"{strategy}: no such strategy file; pass the path of a .py file")
    if random is not None and optimize is not None:
        raise ConfigError("--random and --optimize exclude each other; choose one (or neither, for the whole grid)")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if not names:
        raise ConfigError("--symbols: name at least one symbol, e.g. --symbols AAA,BBB")
    loaded = load_strategy(strategy, class_name=class_name)
    if engine not in ("auto", "event", "vectorized"):
        raise ConfigError(f"--engine {engine!r}: use auto, event or vectorized")
    if engine == "auto":
        engine = "vectorized" if loaded.kind is StrategyKind.SIGNALS else "event"
    space = parse_space(grid, where, loaded.parameters)
    method = Method.RANDOM if random is not None else Method.OPTIMIZE if optimize is not None else Method.GRID
    search = Search(
        space=space, metric=metric.strip(), method=method, trials=random or optimize, seed=seed, minimize=minimize
    )
    axes = None
    if heatmap is not None:
        parts = [p.strip() for p in heatmap.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"--heatmap {heatmap!r}: name two swept parameters, e.g. --heatmap fast,slow")
        axes = (parts[0], parts[1])
    store = state.store()
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
            adjustment=adjustment,
            warmup=warmup,
        ),
        calendar=calendar or (state.settings.calendar if state.settings else "XNYS"),
        simulator=engine,  # type: ignore[arg-type]
    )
    return SweepJob(backtest=spec, search=search, top=top, heatmap=axes, walkforward=walkforward)


_STRATEGY = typer.Argument(..., help="The strategy file (.py).")
_SYMBOLS = typer.Option(..., "--symbols", help="Comma-separated universe, e.g. AAA,BBB.")
_START = typer.Option(None, "--start", help="First date to trade (YYYY-MM-DD).")
_END = typer.Option(None, "--end", help="Last date (inclusive).")
_FREQ = typer.Option("1d", "--frequency", "-f", help="Bar frequency: 1m, 5m, 15m, 30m, 1h, 1d.")
_GRID = typer.Option(
    [], "--grid", "-g", help="A swept parameter: NAME=START:STOP:STEP (stop included) or NAME=a,b,c (repeatable)."
)
_WHERE = typer.Option([], "--where", "-w", help="A constraint on combinations, e.g. 'fast < slow' (repeatable).")
_METRIC = typer.Option("sharpe", "--metric", "-m", help="The metric to rank by (e.g. sharpe, cagr, calmar).")
_MINIMIZE = typer.Option(False, "--minimize", help="Rank the lowest metric first (e.g. annual_volatility).")
_RANDOM = typer.Option(None, "--random", help="Evaluate N combinations drawn at random (seeded) instead of the grid.")
_OPTIMIZE = typer.Option(None, "--optimize", help="Run N trials of Optuna's TPE optimizer instead of the grid.")
_SEED = typer.Option(0, "--seed", help="Seed of --random and --optimize.")
_WORKERS = typer.Option(None, "--workers", "-j", help="Worker processes (default: the CPU count).")
_HEATMAP = typer.Option(
    None, "--heatmap", help="Two swept parameters for the report's heat map (default: the first two)."
)
_PARAM = typer.Option([], "--param", "-p", help="Fix a parameter that is not swept: NAME=VALUE (repeatable).")
_SNAPSHOT = typer.Option(None, "--snapshot", "-s", help="Data snapshot id or tag (default: newest).")
_CASH = typer.Option(100_000.0, "--cash", help="Starting cash.")
_COMMISSION = typer.Option("none", "--commission", help="none, 5bps, or 0.005/share[,min=1].")
_SLIPPAGE = typer.Option("none", "--slippage", help="none, 5bps, or volume:0.1.")
_WARMUP = typer.Option(0, "--warmup", help="Bars before each evaluated period that indicators see.")
_ADJUST = typer.Option(Adjustment.RAW, "--adjustment", help="Prices: raw, splits or all.")
_CLASS = typer.Option(None, "--class", help="Strategy class, when the file has several.")
_CALENDAR = typer.Option(None, "--calendar", help="Exchange calendar for annualizing intraday returns.")
_OUT = typer.Option(None, "--out", help="Sweep folder (default: .quantfleet/sweeps/NAME-HASH).")
_OPEN = typer.Option(False, "--open", help="Open the report in the browser when done.")
_ENGINE = typer.Option(
    "auto", "--engine", help="auto (vectorized for signals() strategies, else event), event or vectorized."
)


def sweep(
    strategy: Path = _STRATEGY,
    symbols: str = _SYMBOLS,
    start: str | None = _START,
    end: str | None = _END,
    grid: list[str] = _GRID,
    where: list[str] = _WHERE,
    metric: str = _METRIC,
    minimize: bool = _MINIMIZE,
    random: int | None = _RANDOM,
    optimize: int | None = _OPTIMIZE,
    seed: int = _SEED,
    top: int = typer.Option(3, "--top", help="Write full run folders (with tearsheets) of the best N."),
    workers: int | None = _WORKERS,
    heatmap: str | None = _HEATMAP,
    frequency: str = _FREQ,
    param: list[str] = _PARAM,
    snapshot: str | None = _SNAPSHOT,
    cash: float = _CASH,
    commission: str = _COMMISSION,
    slippage: str = _SLIPPAGE,
    warmup: int = _WARMUP,
    adjustment: Adjustment = _ADJUST,
    class_name: str | None = _CLASS,
    calendar: str | None = _CALENDAR,
    out_dir: Path | None = _OUT,
    open_report: bool = _OPEN,
    engine: str = _ENGINE,
) -> None:
    """Sweep a strategy's parameters over a grid, a random draw or an optimizer; rank by a metric."""
    job = _job(
        strategy, symbols=symbols, start=start, end=end, frequency=frequency, param=param, snapshot=snapshot,
        cash=cash, commission=commission, slippage=slippage, warmup=warmup, adjustment=adjustment,
        class_name=class_name, calendar=calendar, grid=grid, where=where, metric=metric, minimize=minimize,
        random=random, optimize=optimize, seed=seed, top=top, heatmap=heatmap, engine=engine,
    )  # fmt: skip
    _run(job, out_dir, workers, open_report)


def walkforward(
    strategy: Path = _STRATEGY,
    symbols: str = _SYMBOLS,
    start: str | None = _START,
    end: str | None = _END,
    train: str = typer.Option(..., "--train", help="Training window: 2y, 18m, 26w, 180d."),
    test: str = typer.Option(..., "--test", help="Test window (and the step between windows): 6m, 3m, 90d."),
    anchored: bool = typer.Option(False, "--anchored", help="Grow the training window from the start (default: roll)."),
    grid: list[str] = _GRID,
    where: list[str] = _WHERE,
    metric: str = _METRIC,
    minimize: bool = _MINIMIZE,
    random: int | None = _RANDOM,
    optimize: int | None = _OPTIMIZE,
    seed: int = _SEED,
    workers: int | None = _WORKERS,
    heatmap: str | None = _HEATMAP,
    frequency: str = _FREQ,
    param: list[str] = _PARAM,
    snapshot: str | None = _SNAPSHOT,
    cash: float = _CASH,
    commission: str = _COMMISSION,
    slippage: str = _SLIPPAGE,
    warmup: int = _WARMUP,
    adjustment: Adjustment = _ADJUST,
    class_name: str | None = _CLASS,
    calendar: str | None = _CALENDAR,
    out_dir: Path | None = _OUT,
    open_report: bool = _OPEN,
    engine: str = _ENGINE,
) -> None:
    """Walk forward: optimize on each training window, trade the winner on the test window after it."""
    parse_period(train, option="--train")  # fail before any data is read
    parse_period(test, option="--test")
    job = _job(
        strategy, symbols=symbols, start=start, end=end, frequency=frequency, param=param, snapshot=snapshot,
        cash=cash, commission=commission, slippage=slippage, warmup=warmup, adjustment=adjustment,
        class_name=class_name, calendar=calendar, grid=grid, where=where, metric=metric, minimize=minimize,
        random=random, optimize=optimize, seed=seed, top=0, heatmap=heatmap, engine=engine,
        walkforward=WalkForwardSpec(train=train, test=test, anchored=anchored),
    )  # fmt: skip
    _run(job, out_dir, workers, open_report)
