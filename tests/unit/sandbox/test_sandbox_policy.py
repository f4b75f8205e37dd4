"""The sandbox fails closed: unsandboxed only when asked for (trusted), warned on every job, never multi-user."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import Settings, load_settings
from quantfleet.dispatch.pool import worker_from_settings
from quantfleet.dispatch.trusted import check_sandbox_policy
from quantfleet.jobs import JobService, JobSpec, JobState
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService

CODE = b"def run(ctx):\n    pass\n"


def test_the_sandbox_is_on_unless_asked_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUANTFLEET_SANDBOX", raising=False)
    settings = load_settings(home=tmp_path)
    assert settings.sandbox == "on"
    assert settings.resolved_launcher == "bubblewrap"
    assert load_settings(home=tmp_path, sandbox="trusted").resolved_launcher == "forkserver"


@pytest.mark.parametrize("launcher", ["forkserver", "subprocess"])
def test_an_unsandboxed_launcher_is_refused_while_the_sandbox_is_on(tmp_path: Path, launcher: str) -> None:
    settings = Settings(home=tmp_path, sandbox="on")
    with pytest.raises(ConfigError, match=f"the '{launcher}' launcher runs jobs unsandboxed") as caught:
        worker_from_settings(settings, launcher=launcher, slots=1)
    assert "QUANTFLEET_SANDBOX=trusted" in str(caught.value)
    assert "bubblewrap" in str(caught.value)


def test_a_sandboxed_worker_refuses_market_data_it_could_only_reach_over_the_network(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, sandbox="on", data_url="s3://market/prices", objects_url="s3://market/jobs")
    with pytest.raises(ConfigError, match=r"the sandbox .* has no network to read it") as caught:
        worker_from_settings(settings, launcher="bubblewrap", slots=1)  # at start, before any job is taken
    message = str(caught.value)
    assert "s3://market/prices" in message
    assert "QUANTFLEET_DATA_URL=/path" in message
    assert "QUANTFLEET_SANDBOX=trusted" in message
    local = Settings(home=tmp_path, sandbox="on", objects_url="s3://market/jobs")  # objects on S3 are fine
    check_sandbox_policy(local, kind="bubblewrap", user_count=0)
    trusted = Settings(home=tmp_path, sandbox="trusted", data_url="s3://market/prices")
    check_sandbox_policy(trusted, kind="forkserver", user_count=1)  # unsandboxed children have the network


def test_trusted_is_refused_in_production(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, sandbox="trusted", environment="production")
    with pytest.raises(ConfigError, match="QUANTFLEET_SANDBOX=trusted is refused in production"):
        check_sandbox_policy(settings, kind="forkserver", user_count=1)
    with pytest.raises(ConfigError, match="QUANTFLEET_SANDBOX=trusted runs every job unsandboxed"):
        settings.check_production()  # the API and every server refuse it at start too


def test_trusted_is_refused_with_more_than_one_user(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, sandbox="trusted")
    users = UserService.from_settings(settings)
    users.add_user("alice")
    worker_from_settings(settings, slots=1).shutdown(grace=0)  # one user: allowed
    users.add_user("bob")
    with pytest.raises(ConfigError, match="the database has 2 users"):
        worker_from_settings(settings, slots=1)


def test_trusted_logs_a_loud_warning_on_every_job(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(home=tmp_path, sandbox="trusted")
    snapshot = tiny_market(settings)
    service = JobService.from_settings(settings)
    worker = worker_from_settings(settings, slots=1, service=service)
    try:
        ref = service.put_code(CODE, "s.py")
        jobs = [service.submit(JobSpec(code=ref, universe=("AAA",), snapshot=snapshot, owner="me")) for _ in range(2)]
        with caplog.at_level(logging.WARNING, logger="quantfleet.dispatch.trusted"):
            assert worker.run_until_empty(timeout=120) == 2
    finally:
        worker.shutdown(grace=0)
    assert all(service.get(job.id).state is JobState.SUCCEEDED for job in jobs)
    warnings = [r.getMessage() for r in caplog.records if "SANDBOX OFF" in r.getMessage()]
    assert len(warnings) == 2
    for job in jobs:
        assert any(job.id in w for w in warnings)
