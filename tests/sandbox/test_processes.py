"""Hostile jobs against their own processes and the worker: kill the parent, kill(-1), threads, fds, a huge mmap."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from quantfleet.sandbox.isolation import Sandbox

from .conftest import FAST


@pytest.fixture
def same_uid_decoy(sandbox: Sandbox) -> Iterator[subprocess.Popen[bytes]]:
    """Return a host process running as slot 0's uid (the job's uid): the easiest victim of a kill(-1)."""
    uid = sandbox.slot_uid(0)
    proc = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_killing_the_parent_and_kill_minus_one_hurt_only_the_job(run_job, same_uid_decoy) -> None:
    job = run_job(
        """
        import os, signal, sys
        for target in (1, os.getppid(), int(sys.argv[1]), int(sys.argv[2])):
            try:
                os.kill(target, signal.SIGKILL)
                print("sent", target)
            except OSError as exc:
                print("refused", target, type(exc).__name__)
        sibling = os.fork()
        if sibling == 0:
            signal.pause()
            os._exit(0)
        os.kill(-1, signal.SIGKILL)  # every process it may signal, but itself and the namespace's init
        print("sibling", os.waitstatus_to_exitcode(os.waitpid(sibling, 0)[1]))
        print("still here")
        """,
        args=(str(os.getpid()), str(same_uid_decoy.pid)),
    )
    assert "still here" in job.text, job.text
    assert f"sibling {-signal.SIGKILL}" in job.text  # kill(-1) reached the job's own processes
    # Host pids do not exist in its pid namespace; the sandbox's init ignores the signal.
    assert f"refused {os.getpid()} ProcessLookupError" in job.text
    assert f"refused {same_uid_decoy.pid} ProcessLookupError" in job.text
    assert same_uid_decoy.poll() is None  # the host process of the same uid survived
    assert job.group_emptied
    assert "next" in run_job("print('next')").text  # and the sandbox runs the next job


def test_a_thread_bomb_stops_at_the_process_limit(run_job) -> None:
    job = run_job("""
        import threading, time
        stop = threading.Event()
        threads = []
        try:
            while len(threads) < 10000:
                t = threading.Thread(target=stop.wait, daemon=True)
                t.start()
                threads.append(t)
        except RuntimeError as exc:
            print("refused", len(threads), exc)
        stop.set()
    """)  # fmt: skip
    assert "refused" in job.text, job.text
    started = int(job.text.split("refused", 1)[1].split()[0])
    assert 0 < started < FAST.pids  # threads count against pids.max
    assert job.result.verdict.kind.value == "ok", job.result.verdict  # it caught the refusal and ended


def test_exhausting_file_descriptors_stops_at_the_open_files_limit(run_job) -> None:
    job = run_job("""
        import os
        fds = []
        try:
            while True:
                fds.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as exc:
            print("refused", len(fds), exc.strerror)
    """)  # fmt: skip
    assert "Too many open files" in job.text, job.text
    assert int(job.text.split("refused", 1)[1].split()[0]) <= FAST.open_files


def test_a_huge_untouched_mmap_is_not_killed(run_job) -> None:
    # 64 GiB reserved, far over the 256 MiB memory limit: only touched memory counts (no address-space limit).
    job = run_job("""
        import ctypes, mmap
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
        size = 64 * 1024**3
        MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE = 0x02, 0x20, 0x4000
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        address = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        ctypes.memset(address, 1, 16 * 1024**2)  # touch 16 MiB of it
        python_map = mmap.mmap(-1, 1024**3)  # 1 GiB through Python's own mmap, also untouched
        python_map[:4096] = b"x" * 4096
        print("mapped", size // 1024**3, "GiB")
    """)  # fmt: skip
    assert "mapped 64 GiB" in job.text, job.text
    assert job.result.verdict.kind.value == "ok", job.result.verdict
