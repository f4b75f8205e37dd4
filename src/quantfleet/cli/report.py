"""``quantfleet report``: pages built from finished run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import typer
from rich.console import Console

from quantfleet.analytics.compare import CompareRun, write_compare
from quantfleet.cli.backtest import open_in_browser
from quantfleet.core.errors import ConfigError

__all__ = ["app", "load_run"]

app = typer.Typer(help="Reports over finished runs.", no_args_is_help=True)
out = Console()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path.parent} is not a run folder (no {path.name}); pass folders written by "
            "'quantfleet backtest', e.g. .quantfleet/runs/NAME-HASH"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); rerun the backtest to rewrite it") from None


def load_run(run_dir: Path) -> CompareRun:
    """Return what the compare page needs from one run folder."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; 'quantfleet backtest' prints where it writes one")
    manifest = _read_json(run_dir / "manifest.json")
    metrics = _read_json(run_dir / "metrics.json")
    try:
        equity = pq.read_table(run_dir / "equity.parquet", columns=["ts", "equity"])
    except FileNotFoundError:
        raise ConfigError(f"{run_dir} has no equity.parquet; rerun the backtest to rewrite the folder") from None
    ts = equity.column("ts").cast("int64").to_numpy()
    return CompareRun(
        name=run_dir.name,
        manifest=manifest,
        metrics=metrics,
        ts=np.asarray(ts, dtype=np.int64),
        equity=equity.column("equity").to_numpy(),
    )


@app.command("compare")
def compare(
    runs: list[Path] = typer.Argument(..., help="Two or more run folders."),
    out_file: Path = typer.Option(Path("compare.html"), "--out", "-o", help="The page to write."),
    open_report: bool = typer.Option(False, "--open", help="Open the page in the browser when done."),
) -> None:
    """Write one page with the runs' equity curves overlaid and their metrics side by side."""
    if len(runs) < 2:
        raise ConfigError("compare needs at least two run folders, e.g. quantfleet report compare RUN_A RUN_B")
    loaded = [load_run(r) for r in runs]
    names = [r.name for r in loaded]
    if len(set(names)) < len(names):
        # Same folder name under different parents: tell them apart by their path.
        loaded = [CompareRun(str(p), r.manifest, r.metrics, r.ts, r.equity) for p, r in zip(runs, loaded, strict=True)]
    path = write_compare(loaded, out_file)
    out.print(f"compare page: [bold]{path}[/bold]")
    if open_report:
        open_in_browser(path)
