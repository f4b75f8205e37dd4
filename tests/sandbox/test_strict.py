"""Strict mode (no exec, no fork once started), and the seccomp layer failing closed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import quantfleet.sandbox.isolation.process as process
from quantfleet.core.errors import InfrastructureError
from quantfleet.core.settings import Settings
from quantfleet.dispatch.pool import worker_from_settings
from quantfleet.dispatch.sandboxed import BubblewrapLauncher
from quantfleet.jobs import JobService, JobSpec, JobState, Limits
from quantfleet.sandbox.isolation import Sandbox, require_sandbox, sandbox_self_test, seccomp
from quantfleet.testing.jobs import tiny_market, write_strategy

from .conftest import FAST

STRICT = """
import os, subprocess, threading
from quantfleet.sandbox.isolation.seccomp import enter_strict_mode
def attempts(tag):
    for name, fn in (
        ("fork", lambda: _fork()),
        ("exec", lambda: subprocess.run(["/bin/true"], check=True)),
        ("spawn", lambda: os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)),
    ):
        try:
            fn()
            print(tag, name, "ok", flush=True)
        except OSError as exc:
            print(tag, name, type(exc).__name__, flush=True)
def _fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
attempts("before")
ready, go = threading.Event(), threading.Event()
def older_thread():
    ready.set()
    go.wait()
    attempts("older-thread")
older = threading.Thread(target=older_thread)
older.start()
ready.wait()
enter_strict_mode()
attempts("after")
go.set()
older.join()
t = threading.Thread(target=lambda: print("new thread ok", flush=True))
t.start()
t.join()
"""


def run_python(sandbox: Sandbox, work: Path, code: str) -> str:
    """Run ``code`` with the site packages (quantfleet importable) in the sandbox; return its output."""
    work.mkdir()
    sandbox.mount_work(work, limits=FAST, slot=1)
    try:
        argv = [sandbox.runtime.python, "-c", code]
        return sandbox.spawn(argv, work=work, limits=FAST, slot=1).run(timeout=30).output.decode(errors="replace")
    finally:
        sandbox.unmount_work(work)


def test_strict_mode_forbids_exec_and_fork_on_every_thread_but_not_threads(sandbox: Sandbox, tmp_path: Path) -> None:
    text = run_python(sandbox, tmp_path / "strict", STRICT)
    for name in ("fork", "exec", "spawn"):
        assert f"before {name} ok" in text, text  # the same calls work until strict mode is entered
        assert f"after {name} PermissionError" in text, text
        assert f"older-thread {name} PermissionError" in text, text  # TSYNC: threads started before too
    assert "new thread ok" in text


def test_the_strict_setting_reaches_the_child_entry_point(sandbox: Sandbox, tmp_path: Path) -> None:
    strict = Sandbox(process.IsolationConfig(strict=True), runtime=sandbox.runtime)
    try:
        code = "import os; print('flag', os.environ.get('QUANTFLEET_SANDBOX_STRICT'))"
        assert "flag 1" in run_python(strict, tmp_path / "on", code)
    finally:
        strict.close()
    assert "flag None" in run_python(sandbox, tmp_path / "off", code)


def test_a_sandbox_without_the_filter_fails_the_self_test(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    real = process.bwrap_command

    def without_seccomp(argv: list[str], **kw: object) -> list[str]:
        command = real(argv, **kw)  # type: ignore[arg-type]
        at = command.index("--seccomp")
        return command[:at] + command[at + 2 :]

    monkeypatch.setattr(process, "bwrap_command", without_seccomp)
    report = sandbox_self_test(sandbox)
    assert not report.ok
    assert report.checks["seccomp"] == "failed: mode 0"
    assert report.checks["ptrace"] == "reached"
    assert report.checks["netlink"] == "reached"
    with pytest.raises(InfrastructureError, match=r"seccomp: failed: mode 0; .*--seccomp FD"):
        require_sandbox(report)


def test_a_missing_libseccomp_fails_closed_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    seccomp.sandbox_program.cache_clear()
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # as on a host without libseccomp.so.2
    try:
        launcher = BubblewrapLauncher({})
        with pytest.raises(InfrastructureError, match=r"sandbox layer 'seccomp'.*apt-get install libseccomp2"):
            launcher.start()
        assert launcher.self_test is not None
        assert not launcher.self_test.ok
        launcher.close()
    finally:
        monkeypatch.undo()
        seccomp.sandbox_program.cache_clear()
    assert seccomp.sandbox_program()  # back for the next tests


EXEC_IN_RUN = """
import subprocess

def run(ctx):
    if ctx.bar_index == 1:
        try:
            subprocess.run(["/bin/true"], check=True)
            print("exec REACHED")
        except OSError as exc:
            print("exec refused", type(exc).__name__)
"""


def test_a_backtest_runs_in_strict_mode_and_its_strategy_cannot_exec(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", lease_seconds=30.0, worker_launcher="bubblewrap", sandbox_strict=True)
    snapshot = tiny_market(settings)
    service = JobService.from_settings(settings)
    worker = worker_from_settings(settings, slots=1, service=service)
    try:
        path = write_strategy(tmp_path, "execs.py", EXEC_IN_RUN)
        code = service.put_code(path.read_bytes(), path.name)
        job = service.submit(JobSpec(code=code, universe=("AAA",), snapshot=snapshot, owner="t", limits=Limits()))
        worker.run_until_empty(timeout=120)
        done = service.get(job.id)
        log = service.read_log(job.id).text
        assert done.state is JobState.SUCCEEDED, (done.error, log[-2000:])  # the engine needs neither
        assert "exec refused PermissionError" in log, log[-2000:]
        assert done.metrics is not None
    finally:
        worker.shutdown(grace=0)
