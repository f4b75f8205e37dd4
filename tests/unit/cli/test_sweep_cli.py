"""quantfleet sweep and quantfleet walkforward, end to end through Typer."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from quantfleet.cli import sweep as sweep_cli
from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import load_settings
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars

ROOT = Path(__file__).resolve().parents[3]
SMA = str(ROOT / "examples" / "sma_crossover.py")
COMMON = ["--symbols", "AAA,BBB", "--start", "2019-03-01", "--end", "2021-12-31", "--workers", "1"]


def make_app() -> typer.Typer:
    """Return the CLI as cli/app.py registers these commands."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        state.settings = load_settings()
        state._store = None

    app.command("sweep")(sweep_cli.sweep)
    app.command("walkforward")(sweep_cli.walkforward)
    return app


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / ".quantfleet"
    store = MarketDataStore(str(root / "data"))
    data = synthetic_bars(["AAA", "BBB"], start=date(2019, 1, 1), end=date(2021, 12, 31), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="test")
    return root


@pytest.fixture
def run(home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUANTFLEET_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(make_app(), list(args))

    yield invoke
    state.settings = None
    state._store = None


def test_sweep_writes_the_folder_and_prints_the_leaderboard(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    done = run(
        "sweep", SMA, *COMMON, "--grid", "fast=5:15:5", "--grid", "slow=20,40", "--where", "fast < slow",
        "--metric", "cagr", "--top", "1",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "6 combinations" in done.output
    assert "sweep folder:" in done.output
    folders = list((home / "sweeps").iterdir())
    assert len(folders) == 1
    assert folders[0].name.startswith("sma_crossover-")
    summary = json.loads((folders[0] / "sweep.json").read_text())
    assert summary["search"]["metric"] == "cagr"
    assert (folders[0] / "top" / "1" / "tearsheet.html").is_file()
    assert (folders[0] / "report.html").is_file()


def test_random_and_optimize_with_an_explicit_folder(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    grid = ["--grid", "fast=2:20:2", "--grid", "slow=20:60:10", "--where", "fast * 2 <= slow", "--top", "0"]
    done = run("sweep", SMA, *COMMON, *grid, "--random", "5", "--seed", "1", "--out", str(tmp_path / "r"))
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "r" / "sweep.json").read_text())["combinations"] == 5
    done = run("sweep", SMA, *COMMON, *grid, "--optimize", "6", "--out", str(tmp_path / "o"))
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "o" / "sweep.json").read_text())["search"]["method"] == "optimize"


def test_walkforward_prints_the_windows(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = run(
        "walkforward", SMA, *COMMON, "--train", "1y", "--test", "6m", "--grid", "fast=5,10", "--grid", "slow=20,40",
        "--out", str(tmp_path / "wf"),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "walk-forward (rolling 1y / 6m)" in done.output
    assert "stitched out-of-sample:" in done.output
    assert (tmp_path / "wf" / "windows.parquet").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "fast=5-10"], "--grid 'fast=5-10': parameter fast must be int"),
        (["--grid", "fats=5:10:1"], "the strategy has no parameter 'fats'; it takes: fast: int = 10"),
        (["--grid", "fast=5:10:1", "--where", "__import__('os')"], "a function call is not allowed"),
        (["--grid", "fast=5:10:1", "--where", "fast.real > 1"], "attribute access ('.real') is not allowed"),
        (["--grid", "fast=5:10:1", "--where", "fast < slow"], "'slow' is not a parameter of this sweep"),
        (["--grid", "fast=5,10", "--metric", "sharp"], "--metric 'sharp' is not a metric of a run; choose one of:"),
        (["--grid", "fast=5,10", "--random", "3", "--optimize", "3"], "--random and --optimize exclude each other"),
        (["--grid", "fast=5,10", "--heatmap", "fast"], "--heatmap 'fast': name two swept parameters"),
        ([], "nothing to sweep: add --grid NAME=START:STOP:STEP"),
    ],
)
def test_bad_options_name_the_fix(run, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    done = run("sweep", SMA, *COMMON, "--top", "0", *args)
    assert isinstance(done.exception, ConfigError), done.output
    assert message in str(done.exception)


def test_bad_walkforward_periods_name_the_fix(run) -> None:  # type: ignore[no-untyped-def]
    done = run("walkforward", SMA, *COMMON, "--train", "2 years", "--test", "6m", "--grid", "fast=5,10")
    assert isinstance(done.exception, ConfigError)
    assert "--train '2 years': write a positive length" in str(done.exception)
