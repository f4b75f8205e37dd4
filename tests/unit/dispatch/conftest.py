"""Fixtures of the dispatch tests: a home with a tiny market, a job service, workers with real children."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.settings import Settings
from quantfleet.dispatch.pool import worker_from_settings
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import Job, JobService, JobSpec, Limits
from quantfleet.testing.jobs import COUNTING_STRATEGY, tiny_market, write_strategy

Submit = Callable[..., Job]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Return settings of a fresh home (SQLite, local objects) holding a quarter of daily bars."""
    s = Settings(home=tmp_path / "home", lease_seconds=30.0)
    tiny_market(s)
    return s


@pytest.fixture
def service(settings: Settings) -> JobService:
    """Return the job service of the home."""
    return JobService.from_settings(settings)


@pytest.fixture
def make_worker(settings: Settings, service: JobService) -> Iterator[Callable[..., Worker]]:
    """Return a factory of workers on the home (shut down after the test)."""
    made: list[Worker] = []

    def make(slots: int = 2, **kw: Any) -> Worker:
        worker = worker_from_settings(settings, slots=slots, service=service, **kw)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.shutdown(grace=0)


@pytest.fixture
def counting(tmp_path: Path) -> Path:
    """Return the counting strategy's file (one line per execution in the counter file)."""
    return write_strategy(tmp_path, "counting.py", COUNTING_STRATEGY)


@pytest.fixture
def submit(service: JobService, settings: Settings) -> Submit:
    """Return ``submit(path, params=..., limits=..., **spec)``: upload the code and queue a job."""
    snapshot = tiny_market(settings)

    def go(path: Path, *, params: dict[str, Any] | None = None, limits: Limits | None = None, **kw: Any) -> Job:
        code = service.put_code(path.read_bytes(), path.name)
        spec = JobSpec(
            code=code, universe=("AAA",), snapshot=snapshot, owner="tester", params=params or {},
            limits=limits or Limits(), **kw,
        )  # fmt: skip
        return service.submit(spec)

    return go
