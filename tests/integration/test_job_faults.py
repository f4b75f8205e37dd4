"""Faults injected for real into the job system: killed children and workers, crashes, leases, a locked database.

Every test runs real child processes on SQLite and waits on conditions with a
deadline, never on a bare sleep. The counting strategy appends one line per
execution to a file, so "never run twice" is counted, not assumed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.settings import Settings
from quantfleet.dispatch.pool import worker_from_settings
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import Job, JobService, JobSpec, JobState, Limits
from quantfleet.testing.jobs import (
    COUNTING_STRATEGY,
    FIRST_RUN_SLOW,
    RUN_FOLDER,
    alive,
    tiny_market,
    wait_until,
    write_strategy,
)


class Home:
    """A home with a tiny market, its job service, and workers that are shut down after the test."""

    def __init__(self, root: Path, *, lease: float) -> None:
        self.root = root
        self.settings = Settings(home=root / "home", lease_seconds=lease)
        self.snapshot = tiny_market(self.settings)
        self.service = JobService.from_settings(self.settings)
        self.workers: list[Worker] = []
        self.counter = root / "count.txt"

    def worker(self, slots: int = 1, *, own_service: bool = False) -> Worker:
        service = JobService.from_settings(self.settings) if own_service else self.service
        worker = worker_from_settings(self.settings, slots=slots, service=service)
        self.workers.append(worker)
        return worker

    def submit(self, source: str, name: str = "s.py", *, limits: Limits | None = None, **params: Any) -> Job:
        path = write_strategy(self.root, name, source)
        code = self.service.put_code(path.read_bytes(), path.name)
        spec = JobSpec(
            code=code, universe=("AAA",), snapshot=self.snapshot, owner="faults",
            params={"counter": str(self.counter), **params}, limits=limits or Limits(),
        )  # fmt: skip
        return self.service.submit(spec)

    def executions(self) -> list[list[str]]:
        return [line.split() for line in self.counter.read_text().splitlines()] if self.counter.exists() else []

    def in_background(self, worker: Worker) -> threading.Thread:
        thread = threading.Thread(target=worker.run_until_empty, kwargs={"timeout": 240}, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(tmp_path, lease=30.0)
    yield h
    for w in h.workers:
        w.shutdown(grace=0)


@pytest.fixture
def short_lease(tmp_path: Path) -> Iterator[Home]:
    h = Home(tmp_path, lease=2.0)
    yield h
    for w in h.workers:
        w.shutdown(grace=0)


def test_kill_9_of_a_slots_child_reruns_the_job_and_records_one_set_of_artifacts(home: Home) -> None:
    job = home.submit(FIRST_RUN_SLOW)
    thread = home.in_background(home.worker())
    first = wait_until(home.executions, timeout=60, what="the first execution")
    os.kill(int(first[0][1]), signal.SIGKILL)
    thread.join(120)
    done = home.service.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.attempt == 2
    assert len(home.executions()) == 2
    recorded = home.service.artifacts(job.id)
    assert sorted(a.name for a in recorded) == sorted(RUN_FOLDER)  # one set, no duplicates
    assert {a.attempt for a in recorded} == {2}
    assert "SIGKILL" in (home.service.attempts(job.id)[0].error or "")


def test_kill_9_of_the_whole_worker_requeues_the_job_once_its_lease_expires(short_lease: Home) -> None:
    home = short_lease
    job = home.submit(FIRST_RUN_SLOW)
    env = {**os.environ, "QUANTFLEET_HOME": str(home.settings.home), "QUANTFLEET_LEASE_SECONDS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantfleet.dispatch.pool", "--slots", "1"],
        env=env, cwd=home.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        first = wait_until(home.executions, timeout=60, what="the worker process to start the job")
        proc.kill()  # SIGKILL: no shutdown, no release; only the lease can tell
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    orphan = int(first[0][1])
    wait_until(lambda: not alive(orphan), timeout=10, what="the orphaned child to kill itself")
    wait_until(
        lambda: home.service.reap() or home.service.get(job.id).state is JobState.QUEUED,
        timeout=15,
        what="the lease to expire and the job to be re-queued",
    )
    assert home.service.get(job.id).state is JobState.QUEUED
    home.worker().run_until_empty(timeout=120)
    done = home.service.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.attempt == 2
    assert len(home.executions()) == 2


def test_a_job_that_crashes_its_process_every_time_ends_dead_with_every_attempts_log(home: Home) -> None:
    job = home.submit(
        """
        import os, signal

        def run(ctx, counter: str = ""):
            print("about to crash", flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        """
    )
    home.worker().run_until_empty(timeout=120)
    done = home.service.get(job.id)
    assert done.state is JobState.DEAD
    assert done.attempt == 3
    assert "SIGSEGV" in (done.error or "")
    for attempt in (1, 2, 3):
        assert "about to crash" in home.service.read_log(job.id, attempt=attempt).text


def test_a_job_longer_than_its_lease_is_never_started_twice(short_lease: Home) -> None:
    home = short_lease
    job = home.submit(COUNTING_STRATEGY, tag=1, seconds=5.0)  # 2.5 leases
    threads = [home.in_background(home.worker(own_service=True)) for _ in range(2)]
    wait_until(lambda: home.service.get(job.id).terminal, timeout=60, what="the job to end")
    for t in threads:
        t.join(60)
    assert home.service.get(job.id).state is JobState.SUCCEEDED
    assert home.service.get(job.id).attempt == 1
    assert len(home.executions()) == 1


def test_workers_wait_out_a_locked_database_and_lose_or_duplicate_nothing(home: Home) -> None:
    jobs = [home.submit(COUNTING_STRATEGY, tag=i, seconds=0.3) for i in range(6)]
    thread = home.in_background(home.worker(slots=2))
    wait_until(home.executions, timeout=60, what="the first job to start")
    path = home.settings.resolved_database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    threading.Event().wait(3.0)  # the fault: the database is unavailable for 3 s
    lock.execute("COMMIT")
    lock.close()
    thread.join(120)
    assert [home.service.get(j.id).state for j in jobs] == [JobState.SUCCEEDED] * 6
    assert sorted(int(tag) for tag, _ in home.executions()) == list(range(6))


@pytest.mark.timeout(300)  # about 100 s on 2 busy cores; the margin is for a machine far busier than that
def test_200_jobs_on_2_workers_all_succeed_none_twice_none_lost(home: Home) -> None:
    jobs = [home.submit(COUNTING_STRATEGY, tag=i) for i in range(200)]
    threads = [home.in_background(home.worker(own_service=True)) for _ in range(2)]
    for t in threads:
        t.join(250)
    states = [home.service.get(j.id).state for j in jobs]
    assert states.count(JobState.SUCCEEDED) == 200
    tags = [int(tag) for tag, _ in home.executions()]
    retried = {j.id: [a.error for a in home.service.attempts(j.id)] for j in jobs if home.service.get(j.id).attempt > 1}
    assert sorted(tags) == list(range(200)), f"retried jobs and their attempts' errors: {retried}"  # each once
    assert retried == {}  # no fault was injected: no attempt may be taken for an infrastructure failure
    assert all(w.completed > 0 for w in home.workers), [w.completed for w in home.workers]  # both shared the work


SLOW_ONCE = """
import time

_done = False


def run(ctx, counter: str = "", seconds: float = 3.0):
    global _done
    if _done:
        return
    _done = True
    with open(counter, "a") as f:
        f.write("started\\n")
    time.sleep(seconds)
"""


def _up(home: Home, log: Path, *grace: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QUANTFLEET_HOME": str(home.settings.home), "COLUMNS": "200"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "quantfleet.cli.app", "up", "--slots", "1", "--api-port", "0", "--no-web", *grace],
            env=env, cwd=home.root, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


@pytest.mark.parametrize("second_ctrl_c", [False, True])
def test_ctrl_c_on_up_lets_the_running_job_finish_or_requeues_it(home: Home, second_ctrl_c: bool) -> None:
    job = home.submit(SLOW_ONCE)
    log = home.root / "up.log"
    proc = _up(home, log, "--grace", "60")
    try:
        wait_until(home.executions, timeout=60, what="quantfleet up to start the job")
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "Ctrl-C again" in log.read_text(), timeout=10, what="up to say it is stopping")
        if second_ctrl_c:
            proc.send_signal(signal.SIGINT)  # a second Ctrl-C: re-queue now, don't wait out the grace
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    after = home.service.get(job.id)
    if second_ctrl_c:
        assert after.state is JobState.QUEUED  # re-queued for the next worker, not lost
        home.worker().run_until_empty(timeout=120)
        assert home.service.get(job.id).state is JobState.SUCCEEDED
    else:
        assert after.state is JobState.SUCCEEDED, after.error  # the running job finished within the grace
        assert len(home.executions()) == 1
