"""A sweep as jobs, the child's side: list the combinations, then rank the finished children.

A sweep job whose search is a grid or a seeded random draw fans out: one
child backtest job per combination, spread over every worker slot of the
fleet. The parent job runs twice, each time briefly, in a child process
(user code is loaded only there):

1. ``expand``: parse the space against the strategy's declared parameters and
   list the combinations in the sweep's deterministic order (the worker then
   submits one child job per combination and the parent waits, holding no slot);
2. ``gather``: once every child has finished, rank them by the metric with
   the sweep's own :class:`~quantfleet.sweep.Leaderboard` (ties by the
   combination's number) and write ``leaderboard.parquet``, ``report.html`` and
   ``sweep.json``.

An optimizer search (each batch learns from the last) or a walk-forward is
sequential by nature: it runs whole in one child with :func:`run_sweep`.

The request (a sweep job's spec)::

    {"backtest": {BacktestSpec, strategy: "file.py"}, "grid": ["fast=5:20:5"], "where": ["fast < slow"],
     "metric": "sharpe", "minimize": false, "method": "grid", "trials": null, "seed": 0,
     "top": 0, "heatmap": null, "walkforward": null}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from quantfleet import __version__
from quantfleet.analytics.sweep_report import SweepReportData, write_sweep_report
from quantfleet.core.errors import ConfigError
from quantfleet.data import MarketDataStore
from quantfleet.sandbox import BacktestSpec
from quantfleet.strategy.loader import load_strategy
from quantfleet.sweep import Entry, Leaderboard, Method, Search, SweepJob, WalkForwardSpec, parse_space, run_sweep

__all__ = ["MAX_CHILDREN", "expand_sweep", "gather_sweep", "numeric_metrics", "run_sweep_request"]

MAX_CHILDREN = 10_000
"""A sweep of more combinations than this is refused as jobs: sample it with --random, or sweep in one job."""


def _backtest(request: Mapping[str, Any], work: Path) -> BacktestSpec:
    spec = dict(request["backtest"])
    return BacktestSpec.model_validate({**spec, "strategy": str(work / spec["strategy"])})


def _search(request: Mapping[str, Any], spec: BacktestSpec) -> Search:
    loaded = load_strategy(spec.strategy, class_name=spec.class_name)
    space = parse_space(list(request.get("grid", [])), list(request.get("where", [])), loaded.parameters)
    return Search(
        space=space,
        metric=str(request.get("metric", "sharpe")),
        method=Method(request.get("method", "grid")),
        trials=request.get("trials"),
        seed=int(request.get("seed", 0)),
        minimize=bool(request.get("minimize", False)),
    )


def _job(request: Mapping[str, Any], work: Path) -> SweepJob:
    spec = _backtest(request, work)
    wf = request.get("walkforward")
    heatmap = request.get("heatmap")
    return SweepJob(
        backtest=spec,
        search=_search(request, spec),
        top=int(request.get("top", 0)),
        heatmap=(heatmap[0], heatmap[1]) if heatmap else None,
        walkforward=WalkForwardSpec(train=wf["train"], test=wf["test"], anchored=bool(wf.get("anchored")))
        if wf
        else None,
    )


def expand_sweep(request: Mapping[str, Any], work: Path) -> list[dict[str, Any]]:
    """Return the sweep's combinations in its deterministic order (validated: a bad space fails here)."""
    job = _job(request, work)
    space = job.search.space
    if job.search.method is Method.RANDOM:
        _check_size(job.search.trials or 0, what=f"--random {job.search.trials or 0:,} asks for")  # before drawing
        combos = space.sample(job.search.trials or 0, seed=job.search.seed)
    else:
        count = space.count()
        if count == 0:
            raise ConfigError(space._empty_message())
        _check_size(count, what="the grid has")
        combos = list(space.grid())
    _check_size(len(combos), what="the sweep has")
    return [dict(c) for c in combos]


def _check_size(count: int, *, what: str) -> None:
    if count > MAX_CHILDREN:
        raise ConfigError(
            f"{what} {count:,} combinations, more than {MAX_CHILDREN:,} child jobs; search it with --optimize N "
            "or a coarser grid (or fewer --random draws), or run it as one sweep job with 'quantfleet sweep'"
        )


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Return the flat numeric metrics of a run's metrics.json (what a leaderboard ranks)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if value is None:
            out[key] = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value) if math.isfinite(value) else None
    return out


def gather_sweep(
    request: Mapping[str, Any], children: Sequence[Mapping[str, Any]], work: Path, out: Path
) -> dict[str, Any]:
    """Rank finished children (``{"index", "params", "metrics", "state", "job_id"}``) and write the sweep folder.

    A child that did not succeed ranks last, with no metrics; the summary
    counts them. Return the summary (also written as sweep.json).
    """
    job = _job(request, work)
    search = job.search
    entries = {
        int(c["index"]): Entry(int(c["index"]), dict(c["params"]), numeric_metrics(c.get("metrics") or {}))
        for c in children
    }
    board = Leaderboard.build(search.space.names, search.metric, entries, minimize=search.minimize)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(board.to_arrow(), out / "leaderboard.parquet", compression="zstd")
    failed = sorted(int(c["index"]) for c in children if c.get("state") != "succeeded")
    best = board.entries[0] if board.entries and board.entries[0].metrics.get(search.metric) is not None else None
    loaded = load_strategy(job.backtest.strategy, class_name=job.backtest.class_name)
    summary: dict[str, Any] = {
        "kind": "sweep",
        "strategy": {"file": loaded.path.name, "name": loaded.name, "sha256": loaded.sha256},
        "search": search.to_json(),
        "snapshot": job.backtest.snapshot,
        "combinations": len(board),
        "failed": failed,
        "best": {"params": best.params, "metrics": best.metrics} if best else None,
        "children": {str(c["index"]): c.get("job_id") for c in children},
        "engine_version": __version__,
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n")
    spec = job.backtest
    facts = {
        "strategy": f"{loaded.path.name} · {loaded.sha256[:12]}",
        "universe": ", ".join(spec.symbols),
        "period": f"{spec.start or 'first bar'} → {spec.end or 'last bar'} · {spec.frequency.value}",
        "snapshot": str(spec.snapshot),
        "search": search.method.value + " (as jobs)",
        "combinations": f"{len(board):,}" + (f" ({len(failed)} failed)" if failed else ""),
    }
    write_sweep_report(
        SweepReportData(
            title=loaded.name,
            facts=facts,
            metric=search.metric,
            minimize=search.minimize,
            params=search.space.names,
            leaderboard=board.to_arrow(),
            heatmap=job.heatmap_axes,
        ),
        out / "report.html",
    )
    return {"combinations": len(board), "failed": len(failed), "best": summary["best"]}


def run_sweep_request(request: Mapping[str, Any], work: Path, store: MarketDataStore, out: Path) -> dict[str, Any]:
    """Run a whole sweep (optimizer or walk-forward) in this process and write its folder to ``out``."""
    outcome = run_sweep(_job(request, work), store, out, workers=1)
    best = outcome.summary.get("best")
    return {"combinations": outcome.summary.get("combinations"), "best": best}
