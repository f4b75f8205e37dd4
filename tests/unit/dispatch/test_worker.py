"""The worker runs real child processes: outcomes, artifacts, logs, limits, cancel, sweeps as jobs."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import Job, JobKind, JobService, JobState, Limits
from quantfleet.testing.jobs import RUN_FOLDER, wait_until, write_strategy

Submit = Callable[..., Job]





def test_a_backtest_job_succeeds_with_its_run_folder_as_artifacts_and_its_output_as_log(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "talk.py", """
        import sys

        def run(ctx):
            if ctx.bar_index == 3:
                print("hello from stdout")
                print("hello from stderr", file=sys.stderr)
                ctx.log.info("a strategy log line")
                ctx.order_target_percent("AAA", 0.5)
    """)
    job = submit(path)
    ran = make_worker().run_until_empty(timeout=120)
    assert ran == 1, (service.get(job.id).error, service.read_log(job.id, attempt=1).text[-3000:])
    done = service.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.metrics is not None
    assert done.metrics["trades"] >= 0
    assert {a.name for a in service.artifacts(job.id)} == RUN_FOLDER
    log = service.read_log(job.id).text
    assert "hello from stdout" in log
    assert "hello from stderr" in log
    assert "a strategy log line" in log
    assert service.read_log(job.id).complete


def test_an_exception_in_strategy_code_fails_the_job_with_the_users_traceback_first(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "broken.py", """
        def run(ctx):
            if ctx.bar_index == 2:
                1 / 0
    """)
    job = submit(path)
    make_worker().run_until_empty(timeout=120)
    done = service.get(job.id)
    assert done.state is JobState.FAILED
    assert done.error is not None
    assert done.error.startswith("your strategy failed")
    assert done.reason == "error"
    assert "broken.py" in done.error
    assert "ZeroDivisionError" in done.error
    assert "ZeroDivisionError" in service.read_log(job.id).text
    assert done.attempt == 1  # a user error is not retried


def test_a_job_cannot_pass_its_failure_off_as_the_infrastructures(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    # result.json is in the job's own work folder: its code can forge one, then exit as a user error would.
    path = write_strategy(tmp_path, "liar.py", """
        import json, os

        def run(ctx):
            forged = {"status": "user_error", "message": "not my fault", "reason": "infrastructure"}
            with open("result.json", "w") as f:
                json.dump(forged, f)
            os._exit(2)
    """)
    job = submit(path)
    make_worker().run_until_empty(timeout=120)
    done = service.get(job.id)
    assert (done.state, done.reason) == (JobState.FAILED, "error")  # a limit's name is all a child may claim
    assert done.attempt == 1


def test_an_unknown_parameter_fails_the_job_naming_the_valid_ones(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    job = submit(counting, params={"nope": 1})
    make_worker().run_until_empty(timeout=120)
    done = service.get(job.id)
    assert done.state is JobState.FAILED
    assert "nope" in (done.error or "")


def test_the_wall_clock_limit_times_the_job_out(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    job = submit(counting, params={"seconds": 60}, limits=Limits(wall_time_s=1.0))
    started = time.monotonic()
    make_worker().run_until_empty(timeout=120)
    done = service.get(job.id)
    assert done.state is JobState.TIMED_OUT
    assert "wall-clock limit of 1 s" in (done.error or "")
    assert done.reason == "wall"
    assert time.monotonic() - started < 20


def test_the_cpu_limit_times_the_job_out(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "spin.py", """
        def run(ctx):
            while True:
                pass
    """)
    job = submit(path, limits=Limits(cpu_time_s=1.0, wall_time_s=60.0))
    make_worker().run_until_empty(timeout=120)
    done = service.get(job.id)
    assert done.state is JobState.TIMED_OUT
    assert "CPU-time limit of 1 s" in (done.error or "")
    assert done.reason == "cpu"


def test_cancelling_a_running_job_kills_its_process_tree_within_two_seconds(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    counter = tmp_path / "count.txt"
    job = submit(counting, params={"counter": str(counter), "seconds": 120})
    worker = make_worker()
    runner = threading.Thread(target=worker.run_until_empty, kwargs={"timeout": 120})
    runner.start()
    wait_until(lambda: counter.exists() and counter.read_text(), timeout=60, what="the job to start")
    pid = int(counter.read_text().split()[1])
    asked = time.monotonic()
    service.cancel(job.id, by="tester")
    wait_until(lambda: service.get(job.id).terminal, timeout=10, what="the job to end")
    assert time.monotonic() - asked < 2.0
    runner.join(30)
    assert service.get(job.id).state is JobState.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_sweep_fans_out_into_child_jobs_and_gathers_a_leaderboard(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "level.py", """
        from quantfleet import Strategy

        class Level(Strategy):
            level: int = 1

            def on_bar(self, ctx, bars):
                if ctx.bar_index % (self.level + 1) == 0:
                    ctx.order_target_percent("AAA", 0.5)
                else:
                    ctx.order_target_percent("AAA", 0.0)
    """)
    sweep = {"grid": ["level=1,2,3"], "where": [], "metric": "total_return", "method": "grid"}
    parent = submit(path, kind=JobKind.SWEEP, sweep=sweep)
    make_worker(slots=2).run_until_empty(timeout=180)
    done = service.get(parent.id)
    assert done.state is JobState.SUCCEEDED, done.error
    children = service.children(parent.id)
    assert [c.spec.params["level"] for c in children] == [1, 2, 3]
    assert all(c.state is JobState.SUCCEEDED for c in children)
    names = {a.name for a in service.artifacts(parent.id)}
    assert {"leaderboard.parquet", "report.html", "sweep.json"} <= names
    board = pq.read_table(io.BytesIO(service.artifact_bytes(parent.id, "leaderboard.parquet")))
    assert board.num_rows == 3
    assert sorted(board.column("level").to_pylist()) == [1, 2, 3]
    assert done.metrics is not None
    assert done.metrics["combinations"] == 3


def test_the_subprocess_launcher_runs_a_job_in_a_fresh_interpreter(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit, counting: Path
) -> None:
    counter = tmp_path / "count.txt"
    job = submit(counting, params={"counter": str(counter), "tag": 7})
    make_worker(slots=1, launcher="subprocess").run_until_empty(timeout=120)
    assert service.get(job.id).state is JobState.SUCCEEDED
    assert counter.read_text().split()[0] == "7"
    assert "job 7 runs" in service.read_log(job.id).text


def test_a_job_runs_at_a_lower_cpu_priority_than_its_worker(
    tmp_path: Path, service: JobService, make_worker: Callable[..., Worker], submit: Submit
) -> None:
    path = write_strategy(tmp_path, "polite.py", """
        import os

        _seen = False


        def run(ctx):
            global _seen
            if not _seen:
                _seen = True
                print("priority", os.getpriority(os.PRIO_PROCESS, 0), flush=True)
    """)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    job = submit(path)
    make_worker().run_until_empty(timeout=120)
    assert service.get(job.id).state is JobState.SUCCEEDED
    # The backtest yields the cores to the worker and the API; the worker kept its own priority.
    assert f"priority {max(ours, 10)}" in service.read_log(job.id).text
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
