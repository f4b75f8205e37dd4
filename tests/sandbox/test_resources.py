"""Hostile jobs that try to exhaust the host: each is contained, with the right verdict."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from tests.sandbox.conftest import FAST

from quantfleet.sandbox.isolation import VerdictKind
from quantfleet.sandbox.isolation.limits import MIB


def test_fork_bomb_is_contained_by_the_process_limit(run_job) -> None:
    job = run_job(
        """
        import os, time
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError as exc:
            print("refused after", n, exc.errno)
        """,
        limits=dataclasses.replace(FAST, pids=32),
    )
    assert "refused after" in job.text
    assert int(job.text.split()[2]) < 32
    assert job.result.verdict.kind is VerdictKind.OK
    assert job.group_emptied is True  # the 30-odd sleeping children were killed with the group


def test_memory_bomb_is_killed_by_the_cgroup_with_a_verdict_naming_the_limit(run_job) -> None:
    job = run_job(
        """
        chunks = []
        while True:
            chunks.append(bytearray(16 * 1024 * 1024))
        """,
        limits=dataclasses.replace(FAST, memory_bytes=96 * MIB),
    )
    assert job.result.verdict.kind is VerdictKind.MEMORY, job.text
    assert "memory limit of 96 MiB" in job.result.verdict.message


def test_cpu_spin_ends_at_the_cpu_time_limit(run_job) -> None:
    started = time.monotonic()
    job = run_job("while True: pass", limits=dataclasses.replace(FAST, cpu_seconds=1))
    assert job.result.verdict.kind is VerdictKind.CPU, (job.result, job.text)
    assert "CPU-time limit of 1 s" in job.result.verdict.message
    assert time.monotonic() - started < 15


def test_endless_sleep_ends_at_the_wall_clock(run_job) -> None:
    started = time.monotonic()
    job = run_job("import time; time.sleep(3600)", limits=dataclasses.replace(FAST, wall_seconds=1.5))
    assert job.result.verdict.kind is VerdictKind.WALL
    assert "wall-clock limit of 1.5 s" in job.result.verdict.message
    assert time.monotonic() - started < 8


FILL = """
import errno, os, sys
folder = sys.argv[1]
written = 0
try:
    for i in range(10_000):
        with open(os.path.join(folder, f"fill{i}"), "wb") as f:
            for _ in range(64):
                f.write(b"x" * 65536)
                f.flush()
                written += 65536
except OSError as exc:
    print("stopped", errno.errorcode[exc.errno], written)
"""


def test_disk_fill_of_work_stops_at_its_size(run_job) -> None:
    sizes: list[int] = []

    def host_size(work: Path) -> None:
        sizes.append(sum(p.stat().st_size for p in work.iterdir()))

    job = run_job(FILL, args=("/work",), inspect=host_size)
    assert "stopped ENOSPC" in job.text, job.text
    assert sizes[0] <= FAST.work_bytes  # the host saw at most the cap, on a tmpfs of its own


def test_disk_fill_of_tmp_and_dev_shm_stops_at_their_size(run_job) -> None:
    for folder, cap in (("/tmp", FAST.tmp_bytes), ("/dev/shm", FAST.shm_bytes)):
        job = run_job(FILL, args=(folder,))
        assert "stopped ENOSPC" in job.text, job.text
        assert int(job.text.split()[-1]) <= cap


def test_too_many_files_in_work_stop_at_the_inode_cap(run_job) -> None:
    job = run_job(
        """
        import errno, os
        n = 0
        try:
            while True:
                open(f"/work/f{n}", "w").close()
                n += 1
        except OSError as exc:
            print("stopped", errno.errorcode[exc.errno], n)
        """
    )
    assert "stopped ENOSPC" in job.text
    assert int(job.text.split()[-1]) <= FAST.work_inodes


def test_one_huge_file_stops_at_the_file_size_limit(run_job) -> None:
    def file_size(work: Path) -> None:
        assert (work / "huge").stat().st_size == 4 * MIB

    job = run_job(
        """
        import errno
        with open("/work/huge", "wb") as f:
            try:
                for _ in range(16):
                    f.write(b"x" * 1024 * 1024)
                    f.flush()
            except OSError as exc:
                print("stopped", errno.errorcode[exc.errno])
        """,
        limits=dataclasses.replace(FAST, file_size_bytes=4 * MIB),
        inspect=file_size,
    )
    assert "stopped EFBIG" in job.text, job.text


def test_a_daemon_that_double_forks_and_ignores_sigterm_dies_with_the_group(run_job) -> None:
    job = run_job(
        """
        import os, signal, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                time.sleep(3600)
            os._exit(0)
        time.sleep(0.2)
        print("parent done")
        """
    )
    assert "parent done" in job.text
    assert job.group_emptied is True  # and host_unharmed checks no slot-uid process is left


def test_nothing_persists_between_two_jobs(run_job) -> None:
    first = run_job("open('/work/left', 'w').write('x'); open('/tmp/left', 'w').write('x'); print('wrote')")
    assert "wrote" in first.text
    second = run_job("import os; print(os.path.exists('/work/left'), os.path.exists('/tmp/left'))")
    assert second.text.strip() == "False False"


def test_raising_its_own_limits_is_refused(run_job) -> None:
    job = run_job(
        """
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))
            print("raised")
        except (ValueError, OSError):
            print("refused", hard, resource.getrlimit(resource.RLIMIT_CORE))
        """
    )
    assert job.text.split()[:2] == ["refused", str(FAST.open_files)]
    assert "(0, 0)" in job.text
    assert os.getuid() == 0  # the worker itself kept its identity


def test_a_job_runs_below_the_workers_cpu_priority_and_cannot_climb_back(run_job) -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    job = run_job(
        """
        import os
        print("nice", os.getpriority(os.PRIO_PROCESS, 0))
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
            print("raised")
        except OSError:
            print("refused")
        """
    )
    assert job.text.split() == ["nice", str(max(ours, FAST.nice)), "refused"]
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the worker (and the API beside it) kept its priority
