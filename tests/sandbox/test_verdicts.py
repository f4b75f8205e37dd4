"""Every ending of a sandboxed job, end to end through the worker: the right state, a message naming the limit.

Each test submits a hostile strategy as a job and runs it on a worker whose
launcher is the real sandbox. The job's own failures are not retried
(attempt 1); a sandbox that cannot start is the infrastructure's, retried.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quantfleet.core.settings import Settings
from quantfleet.dispatch.launcher import child_environment
from quantfleet.dispatch.pool import default_worker_name
from quantfleet.dispatch.sandboxed import BubblewrapLauncher
from quantfleet.dispatch.task import DataRef
from quantfleet.dispatch.worker import Worker, WorkerConfig
from quantfleet.jobs import Job, JobService, JobSpec, JobState, Limits
from quantfleet.sandbox.isolation import IsolationConfig
from quantfleet.testing.jobs import tiny_market, write_strategy


@dataclass
class Fleet:
    settings: Settings
    service: JobService
    snapshot: int
    folder: Path

    def worker(self, launcher: BubblewrapLauncher) -> Worker:
        config = WorkerConfig(
            data=DataRef.from_settings(self.settings), work_root=(self.settings.home / "work").resolve(),
            name=default_worker_name(), slots=1, poll_seconds=0.05, lease_seconds=self.settings.lease_seconds,
        )  # fmt: skip
        return Worker(self.service, config, launcher=launcher)

    def submit(self, name: str, code: str | bytes, **limits: object) -> Job:
        if isinstance(code, str):
            path = write_strategy(self.folder, name, code)
            data = path.read_bytes()
        else:
            data = code
        ref = self.service.put_code(data, name)
        spec = JobSpec(code=ref, universe=("AAA",), snapshot=self.snapshot, owner="t", limits=Limits(**limits))  # type: ignore[arg-type]
        return self.service.submit(spec)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    folder = tmp_path_factory.mktemp("verdicts")
    settings = Settings(home=folder / "home", lease_seconds=30.0, max_attempts=2)
    snapshot = tiny_market(settings)
    return Fleet(settings, JobService.from_settings(settings), snapshot, folder)


@pytest.fixture(scope="module")
def sandboxed(fleet: Fleet, sandbox: object) -> Iterator[Worker]:
    """Return a worker whose children run in the real sandbox (its self-test passed)."""
    launcher = BubblewrapLauncher(child_environment({"TZ": "UTC"}))
    launcher.start()
    worker = fleet.worker(launcher)
    yield worker
    worker.shutdown(grace=0)


def run(fleet: Fleet, worker: Worker, job: Job) -> Job:
    worker.run_jobs([job.id], timeout=120)
    return fleet.service.get(job.id)


def test_a_memory_bomb_is_killed_by_the_cgroup_and_fails_naming_the_limit(fleet: Fleet, sandboxed: Worker) -> None:
    job = fleet.submit("hog.py", """
        def run(ctx):
            hog = []
            while True:
                hog.append(bytearray(32 * 1024 * 1024))
                hog[-1][::4096] = b"x" * len(hog[-1][::4096])
    """, memory_mb=384)  # fmt: skip
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.FAILED, done.error
    assert "exceeded its memory limit of 384 MiB (swap included)" in (done.error or ""), done.error
    assert "MemoryError" not in (done.error or "")  # the cgroup's doing, not a data-segment limit's
    assert done.reason == "memory"
    assert done.attempt == 1


def test_a_file_over_the_file_size_limit_fails_naming_the_limit(fleet: Fleet, sandboxed: Worker) -> None:
    job = fleet.submit("big.py", """
        def run(ctx):
            with open("/work/big.bin", "wb") as f:
                for _ in range(4):
                    f.write(b"x" * 1024 * 1024)
    """, file_size_mb=1)  # fmt: skip
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.FAILED, done.error
    assert "file larger than its file-size limit of 1 MiB (limits.file_size_mb)" in (done.error or ""), done.error
    assert done.reason == "file_size"
    assert done.attempt == 1


def test_cpu_spin_times_out_at_the_cpu_time_limit(fleet: Fleet, sandboxed: Worker) -> None:
    job = fleet.submit("spin.py", "def run(ctx):\n    while True:\n        pass\n", cpu_time_s=1)
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.TIMED_OUT, done.error
    assert "CPU-time limit of 1 s" in (done.error or "")
    assert done.attempt == 1


def test_an_endless_sleep_times_out_at_the_wall_clock(fleet: Fleet, sandboxed: Worker) -> None:
    job = fleet.submit("sleep.py", "import time\n\ndef run(ctx):\n    time.sleep(3600)\n", wall_time_s=4)
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.TIMED_OUT, done.error
    assert "wall-clock limit of 4 s" in (done.error or "")
    assert done.reason == "wall"


def test_a_job_killed_by_a_signal_fails_naming_it_and_is_not_retried(fleet: Fleet, sandboxed: Worker) -> None:
    job = fleet.submit("crash.py", "import os, signal\n\ndef run(ctx):\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.FAILED, done.error
    assert "killed by SIGSEGV" in (done.error or "")
    assert done.reason == "crash"
    assert done.attempt == 1


def test_an_unbounded_stdout_is_cut_at_the_log_cap_and_fails_the_job(fleet: Fleet, sandboxed: Worker) -> None:
    job = fleet.submit("chatty.py", """
        import sys

        def run(ctx):
            line = "x" * 1023 + "\\n"
            while True:
                sys.stdout.write(line)
    """, log_mb=1)  # fmt: skip
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.FAILED, done.error
    assert "more than its output limit of 1 MiB" in (done.error or "")
    assert done.reason == "output"
    log = fleet.service.read_log(job.id).text
    assert 1024 * 1024 <= len(log.encode()) < 1024 * 1024 + 4096  # the cap and the marker, nothing past it
    assert done.attempt == 1


PLANT = """
import glob, os

def run(ctx):
    if ctx.bar_index == 0:
        out = glob.glob("/work/.out.*")[0]  # the run folder being written, renamed to out/ at the end
        {plant}
"""


def test_planted_symlinks_and_hard_links_among_the_artifacts_fail_the_job(fleet: Fleet, sandboxed: Worker) -> None:
    link = fleet.submit("link.py", PLANT.format(plant='os.symlink("/etc/shadow", out + "/shadow.json")'))
    hard = fleet.submit("hard.py", PLANT.format(plant='os.link("/work/hard.py", out + "/copy.py")'))
    sandboxed.run_jobs([link.id, hard.id], timeout=120)
    done_link, done_hard = fleet.service.get(link.id), fleet.service.get(hard.id)
    assert done_link.state is JobState.FAILED, done_link.error
    assert "out/shadow.json, which is a symbolic link" in (done_link.error or "")
    assert done_hard.state is JobState.FAILED, done_hard.error
    assert "out/copy.py, which has 2 links" in (done_hard.error or "")
    assert fleet.service.artifacts(link.id) == [] == fleet.service.artifacts(hard.id)


def _archive(members: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_archives_unpack_in_the_sandbox_and_bombs_and_traversal_are_refused(fleet: Fleet, sandboxed: Worker) -> None:
    strategy = b"from helpers.values import WANT\n\ndef run(ctx):\n    assert WANT == 1\n"
    good = fleet.submit("good.zip", _archive({"strategy.py": strategy, "helpers/values.py": b"WANT = 1\n"}))
    bomb_bytes = _archive({"strategy.py": b"def run(ctx): pass\n", "zeros.bin": b"\0" * (300 * 1024 * 1024)})
    assert len(bomb_bytes) < 1024 * 1024
    bomb = fleet.submit("bomb.zip", bomb_bytes)
    escape = fleet.submit("escape.zip", _archive({"strategy.py": b"def run(ctx): pass\n", "../../x.py": b"owned"}))
    sandboxed.run_jobs([good.id, bomb.id, escape.id], timeout=180)
    done = {name: fleet.service.get(job.id) for name, job in (("good", good), ("bomb", bomb), ("escape", escape))}
    assert done["good"].state is JobState.SUCCEEDED, done["good"].error
    assert done["bomb"].state is JobState.FAILED
    assert "bomb.zip refused: it unpacks to 314,572,8" in (done["bomb"].error or ""), done["bomb"].error
    assert done["escape"].state is JobState.FAILED
    assert "member '../../x.py' points outside" in (done["escape"].error or "")
    assert not (fleet.settings.home / "x.py").exists()


def test_a_sandbox_that_cannot_start_is_an_infrastructure_failure_and_is_retried(fleet: Fleet) -> None:
    launcher = BubblewrapLauncher({}, config=IsolationConfig(bwrap="/bin/false"))  # bubblewrap fails at once
    worker = fleet.worker(launcher)
    try:
        job = fleet.submit("fine.py", "def run(ctx):\n    pass\n")
        done = run(fleet, worker, job)
    finally:
        worker.shutdown(grace=0)
    assert done.state is JobState.DEAD, done.error
    assert done.attempt == 2  # retried up to max_attempts, then dead for inspection
    assert "exit code 1" in (done.error or "")


@pytest.mark.parametrize(
    ("code", "limits", "message", "reason"),
    [
        (
            "def run(ctx):\n    with open('/work/fill', 'wb') as f:\n"
            "        while True:\n            f.write(b'x' * 65536)\n",
            {"work_mb": 8},
            "the job filled its /work (limits.work_mb = 8 MiB, limits.work_files = 10,000 files)",
            "work_full",
        ),
        (
            "def run(ctx):\n    kept = [open('/work/task.json') for _ in range(10_000)]\n",
            {"open_files": 64},
            "the job opened more files than its limit of 64 (limits.open_files)",
            "open_files",
        ),
    ],
    ids=["work-full", "open-files"],
)
def test_a_job_stopped_by_a_per_process_limit_fails_naming_it(
    fleet: Fleet, sandboxed: Worker, code: str, limits: dict[str, int], message: str, reason: str
) -> None:
    job = fleet.submit("limited.py", code, **limits)
    done = run(fleet, sandboxed, job)
    assert done.state is JobState.FAILED, done.error
    assert message in (done.error or ""), done.error
    assert done.reason == reason
    assert done.attempt == 1
