"""Run one backtest spec and write its run folder: the code a sandboxed child executes.

A run folder holds::

    manifest.json    what reproduces the run: code hash, parameters, snapshot id, engine settings, version, seed
    metrics.json     metrics of the strategy and its benchmark (stable keys, see the README)
    tearsheet.html   the report: one self-contained page that opens offline
    equity.parquet   ts, equity, cash, gross and net exposure per bar
    positions.parquet, orders.parquet, fills.parquet, trades.parquet
    log.txt          the strategy's log lines, stamped with bar time

The same spec on the same snapshot writes byte-identical files: nothing in
them depends on the wall clock or the machine. The folder appears whole or not
at all (written aside, then renamed into place).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from quantfleet import __version__
from quantfleet.analytics.tearsheet import write_tearsheet
from quantfleet.core.errors import ConfigError, UserError
from quantfleet.core.types import Frequency
from quantfleet.data import MarketDataStore
from quantfleet.engine import EngineConfig, load_feed, run_backtest
from quantfleet.engine.probe import probe_subscriptions
from quantfleet.engine.results import BacktestResult
from quantfleet.engine.vectorized import run_vectorized
from quantfleet.sandbox.report import build_report, periods_per_year, tearsheet_data
from quantfleet.strategy.loader import StrategyError, StrategyKind, load_strategy, strategy_error

__all__ = ["BacktestSpec", "RunOutcome", "periods_per_year", "run_spec"]

ProgressFn = Callable[[int, int], None]


class BacktestSpec(BaseModel):
    """Everything that defines a backtest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Path
    class_name: str | None = None
    symbols: tuple[str, ...]
    start: str | None = None
    end: str | None = None
    frequency: Frequency = Frequency.DAILY
    snapshot: int | str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    benchmark: str | None = Field(
        default=None, description="Buy-and-hold benchmark symbol; default the universe's first; '' for none."
    )
    calendar: str = Field(default="XNYS", description="Exchange calendar: annualizes intraday returns.")
    simulator: Literal["event", "vectorized"] = Field(
        default="event", description="event: the event-driven engine; vectorized: the compiled one (signals only)."
    )


@dataclass(frozen=True)
class RunOutcome:
    """Where a run was written and what it measured."""

    run_dir: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    result: BacktestResult


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def run_spec(
    spec: BacktestSpec,
    store: MarketDataStore,
    run_dir: Path,
    *,
    progress: ProgressFn | None = None,
    log_stream: Any = None,
) -> RunOutcome:
    """Load, run and record ``spec`` into ``run_dir`` (replaced if it exists)."""
    loaded = load_strategy(spec.strategy, class_name=spec.class_name)
    if spec.simulator == "vectorized" and loaded.kind is not StrategyKind.SIGNALS:
        raise ConfigError(
            f"--engine vectorized runs signals() strategies; {loaded.path.name} is in {loaded.kind} style: "
            "use --engine event, or write a signals() twin (see examples/sma_crossover_signals.py)"
        )
    # Learn what the strategy subscribes to, so only that is loaded; then start afresh.
    try:
        subs = probe_subscriptions(loaded.instantiate(spec.params), spec.symbols)
    except (UserError, StrategyError):
        raise
    except Exception as exc:
        raise strategy_error(exc, loaded.path, " in initialize") from exc
    strategy = loaded.instantiate(spec.params)
    params = (
        {name: getattr(strategy, name, None) for name in loaded.parameters}
        if loaded.kind == "class"
        else dict(getattr(strategy, "params", {}))
    )
    cfg = spec.engine
    feed, first = load_feed(
        store,
        subs.symbols or list(spec.symbols),
        start=spec.start,
        end=spec.end,
        frequency=subs.frequency or spec.frequency,
        snapshot=spec.snapshot,
        adjustment=cfg.adjustment,
        warmup=cfg.warmup,
    )
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
    try:
        logger = logging.getLogger(f"quantfleet.strategy.{loaded.sha256[:12]}.{id(work)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        handlers: list[logging.Handler] = [logging.FileHandler(work / "log.txt", encoding="utf-8")]
        if log_stream is not None:
            handlers.append(logging.StreamHandler(log_stream))
        for handler in handlers:
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
            logger.addHandler(handler)
        try:
            if spec.simulator == "vectorized":
                result = run_vectorized(loaded.target, feed, cfg, params=params, start=first, source=loaded.path)
                if progress is not None:
                    progress(feed.n_bars - first, feed.n_bars - first)
            else:
                result = run_backtest(
                    strategy,
                    feed,
                    cfg,
                    start=first,
                    source=loaded.path,
                    logger=logger,
                    progress=progress,
                    universe=tuple(s for s in spec.symbols if s in feed.symbols) or feed.symbols,
                    fields=tuple(sorted(subs.fields)) or None,
                )
        finally:
            for handler in handlers:
                handler.close()
                logger.removeHandler(handler)
        bench = spec.benchmark if spec.benchmark is not None else (spec.symbols[0] if spec.symbols else "")
        report = build_report(result, feed, store, calendar=spec.calendar, benchmark=bench.upper() or None)
        metrics = report.metrics_json()
        manifest = {
            "strategy": {
                "file": loaded.path.name,
                "sha256": loaded.sha256,
                "kind": str(loaded.kind),
                "name": loaded.name,
            },
            "parameters": params,
            "universe": list(feed.symbols),
            "start": spec.start,
            "end": spec.end,
            "frequency": feed.frequency.value,
            "snapshot": feed.snapshot,
            "engine": cfg.model_dump(mode="json"),
            "engine_version": __version__,
            "simulator": spec.simulator,
            "seed": cfg.seed,
            "benchmark": report.benchmark.symbol if report.benchmark else None,
            "calendar": spec.calendar,
            "periods_per_year": report.periods_per_year,
            "bars": len(result.ts),
            "first_bar": str(feed.time(first)),
            "last_bar": str(feed.time(feed.n_bars - 1)),
        }
        _write_json(work / "manifest.json", manifest)
        _write_json(work / "metrics.json", metrics)
        for name, table in (
            ("equity", result.equity_table()),
            ("positions", result.positions_table()),
            ("orders", result.orders_table()),
            ("fills", result.fills_table()),
            ("trades", result.trades_table()),
        ):
            pq.write_table(table, work / f"{name}.parquet", compression="zstd")
        write_tearsheet(tearsheet_data(report, result, feed, first, manifest), work / "tearsheet.html")
        if run_dir.exists():
            shutil.rmtree(run_dir)
        work.rename(run_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return RunOutcome(run_dir, metrics, manifest, result)
