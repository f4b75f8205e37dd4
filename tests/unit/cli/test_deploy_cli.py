"""quantfleet deploy and deployments ls/show/pause/resume/kill/stop, end to end through Typer."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantfleet.cli.app import app
from quantfleet.core.settings import load_settings
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentStatus

CODE = "def run(ctx):\n    ctx.order('AAA', 1)\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def invoke(cli: CliRunner, *args: str, code: int = 0) -> str:
    done = cli.invoke(app, list(args), catch_exceptions=False)
    assert done.exit_code == code, done.output
    return done.output


def test_deploy_then_pause_resume_kill_stop(cli: CliRunner, tmp_path: Path) -> None:
    """A deployed file is listed with its schedule; each command changes its status as it says."""
    path = tmp_path / "buy.py"
    path.write_text(CODE)
    output = invoke(
        cli,
        "deploy",
        str(path),
        "--symbols",
        "AAA",
        "--schedule",
        "*/15 9-16 * * MON-FRI",
        "--calendar",
        "XNYS",
        "--broker",
        "paper",
        "--max-order-value",
        "5000",
    )
    dep_id = output.split()[0]
    service = DeploymentService(JobService.from_settings(load_settings()))
    dep = service.get(dep_id)
    assert dep.spec.risk.max_order_value == 5000
    assert service.code(dep) == CODE.encode()
    listed = invoke(cli, "deployments", "ls")
    assert dep_id[:8] in listed
    assert "*/15 9-16 * * MON-FRI" in listed
    invoke(cli, "deployments", "pause", dep_id[:8])
    assert service.get(dep_id).status is DeploymentStatus.PAUSED
    invoke(cli, "deployments", "resume", dep_id[:8])
    assert service.get(dep_id).status is DeploymentStatus.ACTIVE
    assert "0 order(s) cancelled" in invoke(cli, "deployments", "kill", dep_id[:8], "--flatten")
    assert service.get(dep_id).status is DeploymentStatus.PAUSED
    assert "cash 100,000.00" in invoke(cli, "deployments", "show", dep_id[:8])
    invoke(cli, "deployments", "stop", dep_id[:8])
    assert service.get(dep_id).status is DeploymentStatus.STOPPED


def test_deploy_refuses_a_bad_schedule(cli: CliRunner, tmp_path: Path) -> None:
    """A malformed cron expression is refused with an example before anything is stored."""
    path = tmp_path / "buy.py"
    path.write_text(CODE)
    done = cli.invoke(app, ["deploy", str(path), "--symbols", "AAA", "--schedule", "often"])
    assert done.exit_code != 0
    assert "five fields" in str(done.exception) + done.output
