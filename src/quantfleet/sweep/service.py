"""Run a sweep or a walk-forward end to end and write its folder.

A sweep folder holds::

    sweep.json            what reproduces it: strategy hash, data, engine, space, constraints, metric, seed
    leaderboard.parquet   one row per combination: rank, combo, parameters, metrics
                          (a walk-forward: every window's in-sample rows, with a ``window`` column)
    report.html           leaderboard, heat map, and for a walk-forward the windows and the stitched equity
    top/1/, top/2/, ...   full run folders (tearsheet included) of the best combinations (a sweep)
    windows.parquet       a walk-forward's windows: bounds, winner, in- and out-of-sample metrics
    oos_equity.parquet    a walk-forward's stitched out-of-sample equity

The same inputs (seed included) write the same bytes whatever the number of
workers: nothing depends on completion order or the clock. The folder appears
whole or not at all (written aside, then renamed into place).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quantfleet import __version__
from quantfleet.analytics.sweep_report import SweepReportData, WindowRow, write_sweep_report
from quantfleet.core.errors import ConfigError
from quantfleet.data import MarketDataStore
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.strategy.loader import load_strategy
from quantfleet.sweep.evaluator import EventTarget, StoreRef, make_evaluator
from quantfleet.sweep.pool import LocalPool
from quantfleet.sweep.search import Leaderboard, Method, Search, run_search
from quantfleet.sweep.walkforward import WalkForward, run_walkforward

__all__ = ["SweepJob", "SweepOutcome", "WalkForwardSpec", "run_sweep", "sweep_dir_name"]

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, kw_only=True)
class WalkForwardSpec:
    """Walk-forward settings: training and test lengths (``2y``, ``6m``), rolling or anchored."""

    train: str
    test: str
    anchored: bool = False


@dataclass(frozen=True, kw_only=True)
class SweepJob:
    """A sweep: the backtest to vary (its ``params`` are fixed overrides), the search, and what to keep."""

    backtest: BacktestSpec
    search: Search
    top: int = 3
    heatmap: tuple[str, str] | None = None
    walkforward: WalkForwardSpec | None = None

    def __post_init__(self) -> None:
        if self.top < 0:
            raise ConfigError(f"--top {self.top}: give 0 or more")
        names = self.search.space.names
        clash = sorted(set(names) & set(self.backtest.params))
        if clash:
            raise ConfigError(f"{', '.join(clash)} is both swept (--grid) and fixed (--param); drop one of them")
        if self.heatmap is not None:
            for name in self.heatmap:
                if name not in names:
                    raise ConfigError(f"--heatmap {name!r} is not swept; choose two of: {', '.join(names)}")
            if self.heatmap[0] == self.heatmap[1]:
                raise ConfigError("--heatmap: name two different parameters, e.g. --heatmap fast,slow")

    @property
    def heatmap_axes(self) -> tuple[str, str] | None:
        """Return the heat map's parameters: as given, else the first two swept ones (None with one)."""
        names = self.search.space.names
        return self.heatmap or ((names[0], names[1]) if len(names) >= 2 else None)

    def to_json(self, strategy_sha: str) -> dict[str, Any]:
        """Return the job as sweep.json records it (no worker count, no clock)."""
        spec = self.backtest.model_dump(mode="json")
        spec["strategy"] = Path(spec["strategy"]).name
        return {
            "kind": "walkforward" if self.walkforward else "sweep",
            "strategy_sha256": strategy_sha,
            "backtest": spec,
            "search": self.search.to_json(),
            "top": self.top,
            "heatmap": list(self.heatmap_axes) if self.heatmap_axes else None,
            "walkforward": (
                {"train": self.walkforward.train, "test": self.walkforward.test, "anchored": self.walkforward.anchored}
                if self.walkforward
                else None
            ),
            "engine_version": __version__,
        }


def sweep_dir_name(job: SweepJob) -> str:
    """Return the default folder name of a sweep: the strategy's name and a hash of the job."""
    sha = hashlib.sha256(job.backtest.strategy.read_bytes()).hexdigest()
    key = json.dumps(job.to_json(sha), sort_keys=True)
    return f"{job.backtest.strategy.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class SweepOutcome:
    """Where a sweep was written and what it found."""

    out_dir: Path
    leaderboard: Leaderboard
    walkforward: WalkForward | None
    summary: dict[str, Any]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def run_sweep(
    job: SweepJob,
    store: MarketDataStore,
    out_dir: Path,
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    phase: Callable[[str], None] | None = None,
) -> SweepOutcome:
    """Run ``job`` on ``workers`` processes and write its folder to ``out_dir`` (replaced if it exists).

    ``progress(done, total)`` follows the evaluations; ``phase(text)`` names each later step.
    """
    spec = job.backtest
    loaded = load_strategy(spec.strategy, class_name=spec.class_name)
    # The evaluator reads the data once here, so a broken strategy fails before any pool starts.
    # Compiled evaluations take milliseconds: they run in forks of this process (which already holds the
    # data and the compiled code, so they start at once), in bigger chunks; event-driven ones in spawned workers.
    evaluator = make_evaluator(spec, store)
    vectorized = spec.simulator == "vectorized"
    factory = EventTarget(spec, StoreRef.of(store))
    with LocalPool(
        factory, workers=workers, evaluator=evaluator, chunk=16 if vectorized else 4, fork=vectorized
    ) as pool:
        if job.walkforward is not None:
            wf = job.walkforward
            walk = run_walkforward(
                job.search, pool, train=wf.train, test=wf.test, anchored=wf.anchored, progress=progress
            )
            board = walk.boards[-1]
        else:
            walk = None
            board = run_search(job.search, pool, progress=progress)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        summary = job.to_json(loaded.sha256)
        summary["strategy"] = {"file": loaded.path.name, "name": loaded.name, "kind": str(loaded.kind)}
        summary["snapshot"] = evaluator.feed.snapshot
        summary["bars"] = len(evaluator.ts)
        top: list[tuple[int, str]] = []
        if walk is None:
            summary["combinations"] = len(board)
            summary["best"] = {"params": board.best.params, "metrics": board.best.metrics}
            _write_parquet(board.to_arrow(), work / "leaderboard.parquet")
            for rank, entry in enumerate(board.entries[: job.top], start=1):
                if phase is not None:
                    phase(f"full run of #{rank} of {min(job.top, len(board))}")
                run = spec.model_copy(update={"params": {**spec.params, **entry.params}})
                run_spec(run, store, work / "top" / str(rank))
                top.append((rank, f"top/{rank}/tearsheet.html"))
            summary["top"] = [{"rank": r, "params": board.entries[r - 1].params, "run": f"top/{r}"} for r, _ in top]
        else:
            summary["combinations"] = sum(len(b) for b in walk.boards)
            summary["walkforward_result"] = walk.to_json()
            _write_walkforward(walk, work)
        _write_json(work / "sweep.json", summary)
        if phase is not None:
            phase("report")
        write_sweep_report(_report_data(job, summary, board, walk, top), work / "report.html")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return SweepOutcome(out_dir, board, walk, summary)


def _write_walkforward(walk: WalkForward, work: Path) -> None:
    tables = []
    for w, b in zip(walk.windows, walk.boards, strict=True):
        t = b.to_arrow()
        tables.append(t.add_column(0, "window", pa.array([w.window.index] * t.num_rows, pa.int64())))
    _write_parquet(pa.concat_tables(tables, promote_options="default"), work / "leaderboard.parquet")
    rows = walk.to_json()["windows"]
    metric_keys = sorted({k for r in rows for k in (*r["in_sample"], *r["out_of_sample"])})
    param_keys = list(walk.windows[0].params) if walk.windows else []
    columns: dict[str, pa.Array] = {
        "window": pa.array([r["index"] for r in rows], pa.int64()),
        **{k: pa.array([r[k] for r in rows], pa.string()) for k in ("train_start", "train_end", "test_end")},
        **{p: pa.array([r["params"][p] for r in rows]) for p in param_keys},
    }
    for side in ("in_sample", "out_of_sample"):
        for k in metric_keys:
            columns[f"{side}.{k}"] = pa.array([r[side].get(k) for r in rows], pa.float64())
    _write_parquet(pa.table(columns), work / "windows.parquet")
    equity = pa.table(
        {
            "ts": pa.array(np.asarray(walk.ts, dtype="datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "equity": walk.equity,
        }
    )
    _write_parquet(equity, work / "oos_equity.parquet")


def _report_data(
    job: SweepJob, summary: dict[str, Any], board: Leaderboard, walk: WalkForward | None, top: list[tuple[int, str]]
) -> SweepReportData:
    spec, search = job.backtest, job.search
    method = search.method.value + (
        f" ({search.trials} trials, seed {search.seed})" if search.method is not Method.GRID else ""
    )
    facts = {
        "strategy": f"{summary['strategy']['file']} · {summary['strategy_sha256'][:12]}",
        "universe": ", ".join(spec.symbols),
        "period": f"{spec.start or 'first bar'} → {spec.end or 'last bar'} · {spec.frequency.value}",
        "snapshot": str(summary["snapshot"]),
        "search": method,
        "space": "; ".join(
            f"{a.name}={a.values[0]}:{a.values[-1]}:{a.step}"
            if a.step is not None
            else f"{a.name}={','.join(map(str, a.values))}"
            for a in search.space.axes
        ),
        "constraints": " and ".join(c.text for c in search.space.constraints) or "none",
        "combinations": f"{summary['combinations']:,}",
    }
    if walk is not None:
        kind = "anchored" if walk.anchored else "rolling"
        facts["walk-forward"] = f"train {walk.train}, test {walk.test}, {kind}, {len(walk.windows)} windows"
        facts["heat map"] = "in-sample, last window"
    windows = (
        [
            WindowRow(
                index=w.window.index,
                train_start=str(j["train_start"]),
                train_end=str(j["train_end"]),
                test_end=str(j["test_end"]),
                params=w.params,
                in_sample=w.in_sample,
                out_of_sample=w.out_of_sample,
            )
            for w, j in zip(walk.windows, walk.to_json()["windows"], strict=True)
        ]
        if walk is not None
        else []
    )
    return SweepReportData(
        title=str(summary["strategy"]["name"]),
        facts=facts,
        metric=search.metric,
        minimize=search.minimize,
        params=search.space.names,
        leaderboard=board.to_arrow(),
        heatmap=job.heatmap_axes,
        top=top,
        windows=windows,
        oos_ts=walk.ts if walk is not None else None,
        oos_equity=walk.equity if walk is not None else None,
        oos_metrics=walk.out_of_sample if walk is not None else {},
    )
