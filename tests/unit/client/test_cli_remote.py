"""With QUANTFLEET_API_URL set, ``quantfleet submit`` and ``quantfleet jobs ...`` go through a live server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantfleet.cli.app import app
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import wait_until


@pytest.fixture
def remote(url: str, tokens: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Return a runner whose environment points the CLI at the server (and at an empty local home)."""
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("QUANTFLEET_API_URL", url)
    monkeypatch.setenv("QUANTFLEET_API_TOKEN", tokens["alice"])
    return CliRunner()


def test_submit_wait_shows_progress_and_metrics(
    remote: CliRunner, strategy: Path, worker: Worker, service: JobService
) -> None:
    def run_when_queued() -> None:
        wait_until(lambda: service.queue_depth() > 0, timeout=60, what="the submission")
        worker.run_until_empty(timeout=120)

    runner = threading.Thread(target=run_when_queued)
    runner.start()
    try:
        result = remote.invoke(app, ["submit", str(strategy), "--symbols", "AAA", "--start", "2024-01-01",
                                     "--end", "2024-03-31", "--wait"])  # fmt: skip
    finally:
        runner.join(timeout=120)
    assert result.exit_code == 0, result.output
    (job,) = service.list().items
    assert job.owner == "alice"  # the token's user, not the local one
    assert job.id in result.output
    assert "succeeded" in result.output
    assert "sharpe" in result.output
    assert not (Path(str(service.db.url).split("///")[-1]).parent / "elsewhere").exists()


def test_jobs_ls_show_and_cancel_read_the_server(remote: CliRunner, strategy: Path, service: JobService) -> None:
    submitted = remote.invoke(app, ["submit", str(strategy), "--symbols", "AAA", "--start", "2024-01-01"])
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.strip().splitlines()[-1]
    assert service.get(job_id).state.value == "queued"
    listed = remote.invoke(app, ["jobs", "ls"])
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output
    shown = remote.invoke(app, ["jobs", "show", job_id])
    assert shown.exit_code == 0, shown.output
    assert '"AAA"' in shown.output
    cancelled = remote.invoke(app, ["jobs", "cancel", job_id])
    assert cancelled.exit_code == 0, cancelled.output
    assert service.get(job_id).state.value == "cancelled"
    missing = remote.invoke(app, ["jobs", "show", "0" * 32])
    assert missing.exit_code != 0


def test_deploy_and_deployments_go_to_the_server(remote: CliRunner, strategy: Path, service: JobService) -> None:
    """'quantfleet deploy' uploads to the server (owned by the token's user); ls, pause, resume, stop act there."""
    from quantfleet.live.deployments import DeploymentService

    made = remote.invoke(app, ["deploy", str(strategy), "--symbols", "AAA", "--schedule", "*/15 9-16 * * MON-FRI",
                               "--calendar", "XNYS", "--broker", "paper", "--max-order-value", "5000"])  # fmt: skip
    assert made.exit_code == 0, made.output
    dep_id = made.output.split()[0]
    deployments = DeploymentService(service)
    dep = deployments.get(dep_id)
    assert (dep.spec.owner, dep.spec.risk.max_order_value, dep.spec.class_name) == ("alice", 5000, "Hold")
    listed = remote.invoke(app, ["deployments", "ls"])
    assert listed.exit_code == 0, listed.output
    assert dep_id in listed.output
    for action, status in (("pause", "paused"), ("resume", "active"), ("kill", "paused"), ("stop", "stopped")):
        changed = remote.invoke(app, ["deployments", action, dep_id])
        assert changed.exit_code == 0, changed.output
        assert status in changed.output
        assert deployments.get(dep_id).status.value == status
