"""quantfleet submit, jobs ls/show/logs/cancel/artifacts/rerun, end to end through Typer with a local worker."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quantfleet.cli import jobs as jobs_cli
from quantfleet.cli.common import state
from quantfleet.core.settings import load_settings
from quantfleet.jobs import Job, JobId, JobService, JobSpec, JobState, Outcome
from quantfleet.testing.jobs import COUNTING_STRATEGY, tiny_market, wait_until, write_strategy

ROOT = Path(__file__).resolve().parents[3]


def make_app() -> typer.Typer:
    """Return the CLI as cli/app.py registers these commands."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        state.settings = load_settings()
        state._store = None

    app.command("submit")(jobs_cli.submit)
    app.add_typer(jobs_cli.app, name="jobs")
    app.command("worker")(jobs_cli.worker)
    return app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    tiny_market(load_settings())
    return CliRunner()


def invoke(cli: CliRunner, *args: str) -> str:
    done = cli.invoke(make_app(), list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def service() -> JobService:
    return JobService.from_settings(load_settings())


def test_submit_local_wait_runs_the_job_and_shows_its_metrics(cli: CliRunner, tmp_path: Path) -> None:
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    output = invoke(cli, "submit", str(path), "--symbols", "AAA", "--param", "tag=5", "--local", "--wait")
    job_id = output.split()[0]
    assert len(job_id) == 32
    assert "total return" in output
    job = service().get(job_id)  # type: ignore[arg-type]
    assert job.state is JobState.SUCCEEDED
    assert job.spec.snapshot == 0  # pinned at submission
    assert job.spec.params == {"tag": "5"}
    listed = invoke(cli, "jobs", "ls")
    assert job_id[:8] in listed  # ids are shortened in the table
    assert "succeeded" in listed
    shown = invoke(cli, "jobs", "show", job_id)
    assert "claimed" in shown
    assert "finished" in shown
    assert "job 5 runs" in invoke(cli, "jobs", "logs", job_id, "--follow")
    download = tmp_path / "down"
    invoke(cli, "jobs", "artifacts", job_id, "--download", str(download))
    assert json.loads((download / "metrics.json").read_text())["trades"] == 0
    assert (download / "equity.parquet").is_file()


def test_rerun_verify_finds_the_same_bytes(cli: CliRunner) -> None:
    example = ROOT / "examples" / "sma_crossover.py"
    output = invoke(cli, "submit", str(example), "--symbols", "AAA,BBB", "--param", "fast=3", "--param", "slow=8",
                    "--commission", "5bps", "--local")  # fmt: skip
    job_id = output.split()[0]
    again = invoke(cli, "jobs", "rerun", job_id, "--verify", "--local")
    assert "identical" in again


def test_idempotency_key_returns_the_same_job_and_cancel_ends_a_queued_one(cli: CliRunner, tmp_path: Path) -> None:
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    first = invoke(cli, "submit", str(path), "--symbols", "AAA", "--idempotency-key", "k1").split()[0]
    second = invoke(cli, "submit", str(path), "--symbols", "AAA", "--idempotency-key", "k1").split()[0]
    assert first == second
    assert "cancelled" in invoke(cli, "jobs", "cancel", first)
    assert service().get(first).state is JobState.CANCELLED  # type: ignore[arg-type]


def test_submit_with_the_celery_broker_down_says_the_job_waits_for_it(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: a broker that is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("QUANTFLEET_BROKER_URL", f"redis://fleet:s3cret@127.0.0.1:{port}/0")
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    done = cli.invoke(make_app(), ["submit", str(path), "--symbols", "AAA"], catch_exceptions=False)
    assert done.exit_code == 0, done.output  # the job is queued: it will run once the broker is back
    job_id = done.stdout.strip()  # stdout: the id alone, for scripts
    assert service().get(JobId(job_id)).state is JobState.QUEUED
    told = " ".join(done.stderr.split())
    assert f"job {job_id} is queued, but the fleet was not told" in told
    assert f"redis://127.0.0.1:{port}/0 is unreachable" in told
    assert "once the broker is back" in told
    assert "QUANTFLEET_BROKER_URL" in told
    assert "s3cret" not in told
    assert "Traceback" not in done.output


def test_submit_refuses_a_missing_file_and_a_bad_grid(cli: CliRunner, tmp_path: Path) -> None:
    from quantfleet.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no such strategy file"):
        cli.invoke(make_app(), ["submit", str(tmp_path / "nope.py"), "--symbols", "AAA"], catch_exceptions=False)
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    with pytest.raises(ConfigError):
        cli.invoke(make_app(), ["submit", str(path), "--symbols", "AAA", "--grid", "nope=1,2"], catch_exceptions=False)


def test_a_sweep_submitted_with_grid_runs_as_child_jobs(cli: CliRunner, tmp_path: Path) -> None:
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    output = invoke(cli, "submit", str(path), "--symbols", "AAA", "--grid", "tag=1,2", "--metric", "total_return",
                    "--local", "--wait")  # fmt: skip
    parent = output.split()[0]
    assert "combinations" in output
    children = service().children(parent)  # type: ignore[arg-type]
    assert [c.state for c in children] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    assert parent[:8] in invoke(cli, "jobs", "ls")
    assert parent in invoke(cli, "jobs", "show", parent[:8])  # a unique prefix names the job


def test_submit_local_runs_only_the_submitted_job_not_the_whole_queue(cli: CliRunner, tmp_path: Path) -> None:
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    theirs = invoke(cli, "submit", str(path), "--symbols", "AAA", "--owner", "someone-else").split()[0]
    mine = invoke(cli, "submit", str(path), "--symbols", "AAA", "--param", "tag=2", "--local").split()[0]
    assert service().get(mine).state is JobState.SUCCEEDED  # type: ignore[arg-type]
    assert service().get(theirs).state is JobState.QUEUED  # type: ignore[arg-type]
    again = invoke(cli, "jobs", "rerun", mine, "--local").split()[0]
    assert service().get(again).state is JobState.SUCCEEDED  # type: ignore[arg-type]
    assert service().get(theirs).state is JobState.QUEUED  # type: ignore[arg-type]


class Watched:
    """The job service, telling when ``follow_log`` has looked at the job (it then waits ``poll`` seconds)."""

    def __init__(self, inner: JobService) -> None:
        self._inner = inner
        self.looked = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get(self, job_id: JobId) -> Job:
        job = self._inner.get(job_id)
        self.looked.set()
        return job


def test_logs_follow_pins_the_attempt_and_marks_a_retry(cli: CliRunner, tmp_path: Path) -> None:
    jobs = service()
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    code = jobs.put_code(path.read_bytes(), path.name)
    job = jobs.submit(JobSpec(code=code, universe=("AAA",), snapshot=0, owner="t"))
    first = jobs.claim("w1")
    assert first is not None
    with jobs.log_writer(first) as log:
        log.write("attempt one: " + "x" * 200 + "\n")
    watched = Watched(jobs)
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(jobs_cli.follow_log(watched, job.id, follow=True, poll=2.0)),  # type: ignore[arg-type]
        daemon=True,
    )
    reader.start()
    wait_until(watched.looked.is_set, timeout=10, what="the follower to read attempt 1 and wait")
    # A retry starts while the follower waits: attempt 1 is released, attempt 2 claimed and run.
    assert jobs.release(first, reason="the worker died")
    second = jobs.claim("w2")
    assert second is not None
    assert second.attempt == 2
    with jobs.log_writer(second) as log:
        log.write("attempt two starts\n")
    assert jobs.finish(second, Outcome(state=JobState.SUCCEEDED))
    reader.join(30)
    assert not reader.is_alive()
    text = "".join(seen)
    assert text.startswith("attempt one: ")
    assert "[quantfleet: attempt 2]" in text
    assert text.endswith("[quantfleet: attempt 2]\nattempt two starts\n")


def test_rerun_of_a_sweeps_child_runs_on_its_own(cli: CliRunner, tmp_path: Path) -> None:
    path = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    parent = JobId(invoke(cli, "submit", str(path), "--symbols", "AAA").split()[0])
    jobs = service()
    claim = jobs.claim_job("w1", parent)
    assert claim is not None
    kids = jobs.submit_children(claim, [jobs.get(parent).spec])
    assert kids is not None
    again = JobId(invoke(cli, "jobs", "rerun", kids[0].id).split()[0])
    assert jobs.get(again).parent is None
    assert jobs.get(again).spec.params == kids[0].spec.params
    assert [c.id for c in jobs.children(parent)] == [kids[0].id]  # the old sweep is unchanged
