"""quantfleet backtest and quantfleet demo, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def qf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("QUANTFLEET_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("demo")
    done = qf(cwd, "demo")
    assert done.returncode == 0, done.stderr
    assert "sharpe" in done.stdout
    assert "run folder" in done.stdout
    return cwd


def test_demo_ingests_and_backtests(demo_dir: Path) -> None:
    run = demo_dir / ".quantfleet" / "runs" / "demo"
    assert json.loads((run / "metrics.json").read_text())["trades"] > 0
    assert (run / "tearsheet.html").stat().st_size > 1_000_000  # plotly.js inlined: opens offline
    again = qf(demo_dir, "demo")  # a second demo reuses the data
    assert again.returncode == 0
    assert "already in" in again.stderr


def test_backtest_with_params_and_costs(demo_dir: Path) -> None:
    done = qf(
        demo_dir,
        "backtest",
        str(ROOT / "examples" / "momentum.py"),
        "--symbols",
        "AAA,BBB,CCC,DDD,EEE",
        "--start",
        "2019-01-01",
        "--end",
        "2020-12-31",
        "--warmup",
        "60",
        "--param",
        "top=3",
        "--commission",
        "0.005/share,min=1",
        "--slippage",
        "5bps",
        "--out",
        "runs/m",
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((demo_dir / "runs" / "m" / "manifest.json").read_text())
    assert manifest["parameters"]["top"] == 3
    assert manifest["engine"]["slippage"] == {"kind": "bps", "bps": 5.0}
    assert "backtest" in done.stderr  # the progress bar


def test_backtest_errors_name_the_fix(demo_dir: Path, tmp_path: Path) -> None:
    example = str(ROOT / "examples" / "sma_crossover.py")
    bad_param = qf(demo_dir, "backtest", example, "--symbols", "AAA", "--param", "fastt=3")
    assert bad_param.returncode == 2
    assert "this strategy takes: fast: int = 10" in bad_param.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("def run(ctx):\n    return undefined_name\n")
    done = qf(demo_dir, "backtest", str(broken), "--symbols", "AAA", "--start", "2020-01-01", "--end", "2020-03-01")
    assert done.returncode == 2
    assert "NameError" in done.stderr
    assert "broken.py:2 in run" in done.stderr
    bad_cost = qf(demo_dir, "backtest", example, "--symbols", "AAA", "--commission", "cheap")
    assert bad_cost.returncode == 2
    assert "use none, 5bps, or 0.005/share" in bad_cost.stderr


def test_backtest_writes_a_tearsheet_against_the_named_benchmark(demo_dir: Path) -> None:
    example = str(ROOT / "examples" / "sma_crossover.py")
    common = ["--symbols", "AAA,BBB", "--start", "2020-01-01", "--end", "2021-12-31", "--warmup", "30"]
    done = qf(demo_dir, "backtest", example, *common, "--benchmark", "CCC", "--out", "runs/bench")
    assert done.returncode == 0, done.stderr
    assert "CCC buy & hold" in done.stdout  # the benchmark column of the metrics table
    assert "tearsheet:" in done.stdout
    assert (demo_dir / "runs" / "bench" / "tearsheet.html").is_file()
    alone = qf(demo_dir, "backtest", example, *common, "--benchmark", "none", "--out", "runs/alone")
    assert alone.returncode == 0, alone.stderr
    assert json.loads((demo_dir / "runs" / "alone" / "metrics.json").read_text())["benchmark"] is None
    missing = qf(demo_dir, "backtest", example, *common, "--benchmark", "NOPE")
    assert missing.returncode == 2
    assert "--benchmark" in missing.stderr


def test_report_compare_puts_runs_side_by_side(demo_dir: Path) -> None:
    example = str(ROOT / "examples" / "sma_crossover.py")
    for fast in ("5", "20"):
        done = qf(demo_dir, "backtest", example, "--symbols", "AAA", "--start", "2020-01-01", "--end",
                  "2021-12-31", "--param", f"fast={fast}", "--out", f"runs/fast{fast}")  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = qf(demo_dir, "report", "compare", "runs/fast5", "runs/fast20", "--out", "cmp.html")
    assert done.returncode == 0, done.stderr
    page = (demo_dir / "cmp.html").read_text()
    assert "fast5" in page
    assert "fast20" in page
    not_a_run = qf(demo_dir, "report", "compare", "runs/fast5", ".quantfleet")
    assert not_a_run.returncode == 2
    assert "not a run folder" in not_a_run.stderr
    one = qf(demo_dir, "report", "compare", "runs/fast5")
    assert one.returncode == 2
    assert "at least two" in one.stderr
