"""The Celery app's settings, the dispatcher (ids only), and the fleet's sweeper and duplicate guard.

These run on kombu's in-memory transport; the real Redis (and its faults) is
in tests/integration/test_celery_fleet.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import Settings, load_settings
from quantfleet.dispatch.celery_app import (
    QUEUE,
    TASK,
    CeleryDispatcher,
    QuantfleetCelery,
    celery_config,
    configure,
)
from quantfleet.dispatch.celery_worker import CeleryFleet, Ran
from quantfleet.dispatch.launcher import SubprocessLauncher
from quantfleet.dispatch.task import DataRef
from quantfleet.dispatch.worker import WorkerConfig
from quantfleet.jobs import Job, JobService, JobSpec, JobState
from quantfleet.testing import FrozenClock
from quantfleet.testing.jobs import COUNTING_STRATEGY, tiny_market, write_strategy


@pytest.fixture
def celery() -> Iterator[QuantfleetCelery]:
    """Return an app on a private in-memory broker (its own virtual host, so tests never share messages)."""
    app = QuantfleetCelery("quantfleet-unit", set_as_current=False)
    app.conf.update(celery_config(f"memory://localhost/{uuid.uuid4().hex}", visibility_timeout=60))
    yield app
    app.close()


def _drain(app: QuantfleetCelery) -> list[tuple[str, list[object]]]:
    got = []
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(QUEUE)
        while True:
            try:
                message = queue.get(timeout=0.05)
            except queue.Empty:
                break
            got.append((message.headers["task"], message.payload[0]))
            message.ack()
        queue.close()
    return got


def test_the_app_acknowledges_late_prefetches_one_and_waits_out_long_jobs() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", visibility_timeout=7200)
    app = configure(QuantfleetCelery("t", set_as_current=False), settings)
    conf = app.conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    assert conf.broker_url == "redis://127.0.0.1:6379/0"
    assert conf.accept_content == ["json"]
    assert conf.task_ignore_result is True
    app.close()


def test_the_broker_comes_from_the_environment_or_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("QUANTFLEET_VISIBILITY_TIMEOUT", "600")
    settings = load_settings()
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert settings.visibility_timeout == 600
    app = QuantfleetCelery("t", set_as_current=False)
    assert configure(app, settings, broker_url="redis://h:1/2").conf.broker_url == "redis://h:1/2"
    app.close()


def test_no_broker_is_a_config_error_that_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="QUANTFLEET_BROKER_URL"):
        configure(QuantfleetCelery("t", set_as_current=False), Settings())


def test_a_bad_visibility_timeout_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_VISIBILITY_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="QUANTFLEET_VISIBILITY_TIMEOUT"):
        load_settings()


def test_the_dispatcher_publishes_the_job_id_and_nothing_else(celery: QuantfleetCelery) -> None:
    job_id = uuid.uuid4().hex
    CeleryDispatcher(celery)(job_id)  # type: ignore[arg-type]
    assert _drain(celery) == [(TASK, [job_id])]


# -- the fleet's own loop --------------------------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def fleet(settings: Settings, celery: QuantfleetCelery, clock: FrozenClock) -> Iterator[CeleryFleet]:
    service = JobService.from_settings(settings, clock=clock)
    config = WorkerConfig(data=DataRef.from_settings(settings), work_root=settings.home / "work", slots=1)
    made = CeleryFleet(service, config, launcher=SubprocessLauncher({}), celery=celery, sweep_seconds=1.0)
    yield made
    made.shutdown(grace=0)


def _submit(fleet: CeleryFleet, settings: Settings, tmp_path: Path, tag: int) -> Job:
    path = write_strategy(tmp_path, "counting.py", COUNTING_STRATEGY)
    code = fleet.service.put_code(path.read_bytes(), path.name)
    spec = JobSpec(code=code, universe=("AAA",), snapshot=tiny_market(settings), owner="t", params={"tag": tag})
    return fleet.service.submit(spec)


def test_the_sweeper_publishes_only_jobs_queued_too_long_and_only_while_the_broker_is_empty(
    fleet: CeleryFleet, settings: Settings, tmp_path: Path, clock: FrozenClock, celery: QuantfleetCelery
) -> None:
    old = [_submit(fleet, settings, tmp_path, i).id for i in range(2)]
    clock.advance(0.5)
    young = _submit(fleet, settings, tmp_path, 9).id
    clock.advance(0.6)
    assert fleet.sweep() == old  # oldest first; the young job's message may still be on its way
    assert fleet.broker_backlog() == 2
    clock.advance(5)
    assert fleet.sweep() == []  # messages wait in the broker: every queued job may be among them
    assert sorted(job_id for _, (job_id,) in _drain(celery)) == sorted(old)  # type: ignore[misc]
    assert fleet.sweep() == [young]  # published again at most once per sweep_seconds per job
    assert fleet.service.get(young).state is JobState.QUEUED


def test_a_delivery_of_a_job_that_is_not_queued_does_nothing(
    fleet: CeleryFleet, settings: Settings, tmp_path: Path
) -> None:
    job = _submit(fleet, settings, tmp_path, 1)
    claim = fleet.service.claim("someone-else")
    assert claim is not None
    assert fleet.run_job(job.id) is Ran.SKIPPED
    assert fleet.executions == 0
    assert fleet.service.get(job.id).attempt == 1


def test_submitters_publish_to_the_fleet_only_when_a_broker_is_configured(tmp_path: Path) -> None:
    from quantfleet.dispatch.celery_app import CeleryDispatcher
    from quantfleet.dispatch.notify import submit_notifier

    assert submit_notifier(Settings(home=tmp_path)) is None  # the local pool polls the database
    notify = submit_notifier(Settings(home=tmp_path, broker_url="redis://127.0.0.1:6399/0"))
    assert isinstance(notify, CeleryDispatcher)
    assert notify.app.conf.broker_url == "redis://127.0.0.1:6399/0"
