"""A worker survives what jobs throw at it: poison jobs, hostile out/ folders, exits, secrets, slow uploads."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from quantfleet.core.errors import StorageUnavailable
from quantfleet.core.settings import Settings
from quantfleet.dispatch.launcher import ChildProcess, ForkServerLauncher, _kill_tree, child_environment
from quantfleet.dispatch.pool import worker_from_settings
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import Job, JobKind, JobService, JobSpec, JobState, Limits
from quantfleet.store import ObjectStore
from quantfleet.store.models import jobs as jobs_table
from quantfleet.testing.jobs import COUNTING_STRATEGY, tiny_market, write_strategy

Submit = Callable[..., Job]

BAD_NAME = """
import glob

def run(ctx):
    if ctx.bar_index == 0:
        out = glob.glob(".out.*")[0]  # the run folder being written, renamed to out/ at the end
        with open(f"{out}/bad name?.txt", "w") as f:
            f.write("x")
"""

LINKS = """
import glob
import os

def run(ctx):
    if ctx.bar_index == 0:
        out = glob.glob(".out.*")[0]  # the run folder being written, renamed to out/ at the end
        os.makedirs(out + "/extra", exist_ok=True)
        os.symlink({secret!r}, out + "/extra/stolen.json")
        os.symlink({folder!r}, out + "/folder")
        with open(out + "/extra/honest.txt", "w") as f:
            f.write("mine")
"""

STUBBORN = """
import signal

def run(ctx):
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # outlives the soft limit: the hard one kills it
    while True:
        pass
"""


# -- 1. a poison job never takes the worker down ------------------------------------------------------


def test_a_job_whose_stored_spec_cannot_be_read_does_not_end_the_worker_loop(
    service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    job = submit(counting)
    with service.db.write() as conn:
        conn.execute(sa.update(jobs_table).where(jobs_table.c.id == job.id).values(spec={"kind": "nonsense"}))
    worker = make_worker(slots=1)
    assert worker.tick() is False  # the claim raised: logged, and the loop goes on
    assert worker.tick() is False


def test_a_bad_artifact_name_from_the_child_fails_the_job_at_once(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "badname.py", BAD_NAME)
    job = submit(path)
    make_worker(slots=1).run_until_empty(timeout=60)
    done = service.get(job.id)
    assert done.state is JobState.FAILED, done.error
    assert "bad name?.txt" in (done.error or "")
    assert done.attempt == 1
    assert service.artifacts(job.id) == []


# -- 5. uploads never follow a symlink out of out/: a planted link fails the job ----------------------------


def test_symlinks_in_out_fail_the_job_and_nothing_is_uploaded(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("the worker's private key")
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "inside.txt").write_text("the worker's private folder")
    path = write_strategy(tmp_path, "links.py", LINKS.format(secret=str(secret), folder=str(folder)))
    job = submit(path)
    make_worker(slots=1).run_until_empty(timeout=60)
    done = service.get(job.id)
    assert done.state is JobState.FAILED, done.error
    assert "out/extra/stolen.json, which is a symbolic link" in (done.error or "")
    assert done.attempt == 1  # the job's own doing: not retried
    assert service.artifacts(job.id) == []


# -- 6. and 4. the child's environment: a whitelist, applied in the child --------------------------------

ENV_STRATEGY = """
import json
import multiprocessing.forkserver
import os

def run(ctx, dump: str = ""):
    if ctx.bar_index == 0:
        with open(dump, "w") as f:
            json.dump(dict(os.environ), f)
"""

SECRET = "fake-secret-0xdeadbeef"


@pytest.mark.parametrize("launcher", ["forkserver", "subprocess"])
def test_no_secret_reaches_the_childs_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    service: JobService,
    submit: Submit,
    launcher: str,
) -> None:
    for name in (
        "QUANTFLEET_DATABASE_URL", "QUANTFLEET_BROKER_URL", "QUANTFLEET_OBJECTS_URL", "QUANTFLEET_S3_ACCESS_KEY",
        "QUANTFLEET_S3_SECRET_KEY", "QUANTFLEET_API_TOKEN", "DATABASE_URL", "PGPASSWORD", "QF_DATABASE_DSN",
    ):  # fmt: skip
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("QUANTFLEET_HOME", SECRET)  # locates the SQLite database
    dump = tmp_path / "env.json"
    job = submit(write_strategy(tmp_path, "env.py", ENV_STRATEGY), params={"dump": str(dump)})
    worker = worker_from_settings(settings, slots=1, service=service, launcher=launcher)
    try:
        worker.run_until_empty(timeout=60)
    finally:
        worker.shutdown(grace=0)
    assert service.get(job.id).state is JobState.SUCCEEDED, service.get(job.id).error
    env = json.loads(dump.read_text())
    assert SECRET not in json.dumps(env)
    assert not [k for k in env if k.startswith("QUANTFLEET_") and "DATA" not in k and "CACHE" not in k], env
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["HOME"] != os.environ.get("HOME")  # a private one: the job's work folder


def test_a_forked_child_runs_in_its_launchers_environment_not_the_fork_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings, service: JobService, submit: Submit
) -> None:
    ForkServerLauncher({**child_environment(os.environ), "TZ": "Etc/GMT-5"}).start()  # the server, if not running
    monkeypatch.setenv("TZ", "Etc/GMT+3")
    before = dict(os.environ)
    dump = tmp_path / "env.json"
    job = submit(write_strategy(tmp_path, "env.py", ENV_STRATEGY), params={"dump": str(dump)})
    worker = worker_from_settings(settings, slots=1, service=service)
    try:
        worker.run_until_empty(timeout=60)
    finally:
        worker.shutdown(grace=0)
    assert service.get(job.id).state is JobState.SUCCEEDED, service.get(job.id).error
    assert json.loads(dump.read_text())["TZ"] == "Etc/GMT+3"
    assert dict(os.environ) == before  # launching never touched the worker's environment


# -- 7. the lease is renewed from the claim to the finish ----------------------------------------------


class SlowObjects(ObjectStore):
    """A local object store whose uploads take ``seconds`` each (a slow S3)."""

    seconds = 0.4

    def put_file(self, key: str, source: Path) -> str:
        threading.Event().wait(self.seconds)
        return super().put_file(key, source)


def test_a_slow_upload_longer_than_the_lease_is_not_reaped_or_rerun(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", lease_seconds=1.0)
    snapshot = tiny_market(settings)
    base = JobService.from_settings(settings)
    service = JobService(base.db, SlowObjects(str(settings.resolved_objects_url)), lease_seconds=1.0)
    counter = tmp_path / "count.txt"
    strategy = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    code = service.put_code(strategy.read_bytes(), strategy.name)
    job = service.submit(
        JobSpec(code=code, universe=("AAA",), snapshot=snapshot, owner="t", params={"counter": str(counter)})
    )
    worker = worker_from_settings(settings, slots=1, service=service)
    try:
        worker.run_until_empty(timeout=120)
    finally:
        worker.shutdown(grace=0)
    done = service.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.attempt == 1
    assert len(counter.read_text().splitlines()) == 1  # never run twice
    assert [e.event for e in service.events(job.id)].count("lease_expired") == 0


# -- 8. killing a reaped child never signals a stranger ------------------------------------------------


class ReapedChild:
    """A child that has exited and been reaped; its pid now belongs to an unrelated process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.output = -1

    def wait(self, timeout: float | None) -> int | None:
        return 0

    def kill_tree(self, *, grace: float = 1.0) -> None:
        _kill_tree(self, grace)

    def close(self) -> None:
        pass


def test_kill_tree_after_the_child_was_reaped_spares_a_process_that_reused_its_pid() -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # not a group leader
    try:
        ReapedChild(stranger.pid).kill_tree(grace=0)
        with pytest.raises(subprocess.TimeoutExpired):  # a SIGKILL would have ended it well within a second
            stranger.wait(timeout=1.0)
    finally:
        stranger.kill()
        stranger.wait()


# -- 8b. a child's exit code is read by its own slot, even while another slot launches --------------------


def _ended(launcher: ForkServerLauncher, work: Path) -> ChildProcess:
    """Launch a child on an empty work folder (no task.json: it exits 3 at once); return it once its output ended."""
    work.mkdir()
    child = launcher.launch(work)
    while os.read(child.output, 65536):
        pass
    return child


def test_a_childs_exit_code_survives_another_slot_launching_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI run saw a job run twice: its child exited 0, but the slot read 255 and retried it.

    The fork server sends an exit code once; a launch in another slot (every
    Process.start() polls the children it knows first) read it, and the slot
    that waited found the pipe empty. Here the waiting slot is descheduled at
    the worst moment, as on a loaded machine: just before it reads the code.
    """
    launcher = ForkServerLauncher(child_environment(os.environ))
    launcher.start()
    child = _ended(launcher, tmp_path / "first")
    read_signed = multiprocessing.forkserver.read_signed
    waiter = threading.current_thread()
    others: list[ChildProcess] = []

    def descheduled(fd: int) -> int:
        if threading.current_thread() is waiter and not others:  # meanwhile, another slot launches its job
            slot = threading.Thread(target=lambda: others.append(_ended(launcher, tmp_path / "second")))
            slot.start()
            slot.join(30)
        return read_signed(fd)

    monkeypatch.setattr(multiprocessing.forkserver, "read_signed", descheduled)
    try:
        assert child.wait(10) == 3  # the child's own code (an infrastructure failure), not 255
        assert len(others) == 1  # the other slot's launch ran while this slot was about to read
        assert others[0].wait(10) == 3
    finally:
        for c in (child, *others):
            c.kill_tree(grace=0)
            c.close()


# -- 9. user errors are failures, not infrastructure retries --------------------------------------------


def test_sys_exit_in_a_strategy_fails_the_job_with_a_clear_message(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(
        tmp_path,
        "quitter.py",
        """
        import sys

        def run(ctx):
            if ctx.bar_index == 1:
                sys.exit(3)
    """,
    )
    job = submit(path)
    make_worker(slots=1).run_until_empty(timeout=60)
    done = service.get(job.id)
    assert done.state is JobState.FAILED, done.error
    assert "sys.exit(3)" in (done.error or "")
    assert "return from run()" in (done.error or "")
    assert done.attempt == 1


def test_invalid_engine_settings_fail_the_job_without_retries(
    service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    job = submit(counting, engine={"cash": -5, "no_such_setting": 1})
    make_worker(slots=1).run_until_empty(timeout=60)
    done = service.get(job.id)
    assert done.state is JobState.FAILED, done.error
    assert "no_such_setting" in (done.error or "")
    assert done.attempt == 1


def test_a_child_killed_at_its_hard_cpu_limit_times_out(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "stubborn.py", STUBBORN)
    job = submit(path, limits=Limits(cpu_time_s=1.0, wall_time_s=60.0))
    make_worker(slots=1).run_until_empty(timeout=120)
    done = service.get(job.id)
    assert done.state is JobState.TIMED_OUT, done.error
    assert "CPU-time limit of 1 s" in (done.error or "")
    assert done.attempt == 1


# -- 14. a random draw is capped like a grid ------------------------------------------------------------


def test_a_random_sweep_of_more_than_the_cap_fails_naming_the_fix(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    sweep = {"grid": ["tag=1:1000000:1"], "where": [], "metric": "total_return", "method": "random",
             "trials": 1_000_000, "seed": 0}  # fmt: skip
    parent = submit(counting, kind=JobKind.SWEEP, sweep=sweep)
    make_worker(slots=1).run_until_empty(timeout=120)
    done = service.get(parent.id)
    assert done.state is JobState.FAILED, done.error
    assert "--optimize" in (done.error or "")
    assert "quantfleet sweep" in (done.error or "")
    assert service.children(parent.id) == []


# -- 13. a log store that fails is noted, not silently dropped ------------------------------------------


class NoLogs(ObjectStore):
    """A local object store whose log parts cannot be written (the log bucket is down)."""

    def put(self, key: str, data: bytes) -> str:
        if key.startswith("logs/"):
            raise StorageUnavailable("the log bucket is down")
        return super().put(key, data)


def test_a_log_that_could_not_be_stored_is_noted_in_the_jobs_outcome(tmp_path: Path, settings: Settings) -> None:
    base = JobService.from_settings(settings)
    service = JobService(base.db, NoLogs(str(settings.resolved_objects_url)), lease_seconds=30.0)
    strategy = write_strategy(tmp_path, "count.py", COUNTING_STRATEGY)
    code = service.put_code(strategy.read_bytes(), strategy.name)
    job = service.submit(JobSpec(code=code, universe=("AAA",), snapshot=tiny_market(settings), owner="t"))
    worker = worker_from_settings(settings, slots=1, service=service)
    try:
        worker.run_until_empty(timeout=120)
    finally:
        worker.shutdown(grace=0)
    done = service.get(job.id)
    assert done.state is JobState.SUCCEEDED
    assert "the job's log is incomplete" in (done.error or "")
