"""The BubblewrapLauncher runs real jobs through the worker, and a worker refuses to start on a broken sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.settings import Settings
from quantfleet.dispatch.launcher import child_environment
from quantfleet.dispatch.pool import default_worker_name
from quantfleet.dispatch.sandboxed import BubblewrapLauncher
from quantfleet.dispatch.task import DataRef
from quantfleet.dispatch.worker import Worker, WorkerConfig
from quantfleet.jobs import JobService, JobSpec, JobState, Limits
from quantfleet.sandbox.isolation import IsolationConfig, Sandbox, require_sandbox, sandbox_self_test
from quantfleet.testing.jobs import tiny_market, write_strategy


def test_the_self_test_passes_every_check(sandbox: Sandbox) -> None:
    report = sandbox_self_test(sandbox)
    assert report.ok, report.summary()
    assert set(report.checks) >= {"network_tcp", "network_unix", "host_file", "host_environ", "work_writable"}


def test_a_missing_bubblewrap_fails_closed_naming_the_fix() -> None:
    launcher = BubblewrapLauncher({}, config=IsolationConfig(bwrap="/nonexistent/bwrap"))
    with pytest.raises(InfrastructureError, match="apt-get install bubblewrap"):
        launcher.start()
    assert launcher.self_test is not None
    assert not launcher.self_test.ok


def test_a_backtest_job_runs_through_the_worker_in_the_sandbox(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", lease_seconds=30.0)
    snapshot = tiny_market(settings)
    service = JobService.from_settings(settings)
    launcher = BubblewrapLauncher(child_environment({"AWS_SECRET_ACCESS_KEY": "hunter2", "TZ": "UTC"}))
    launcher.start()
    launcher_state = launcher.sandbox.state
    data = DataRef.from_settings(settings)
    config = WorkerConfig(
        data=data, work_root=(settings.home / "work").resolve(), name=default_worker_name(), slots=1,
        poll_seconds=0.05, lease_seconds=settings.lease_seconds,
    )  # fmt: skip
    worker = Worker(service, config, launcher=launcher)
    good = write_strategy(tmp_path, "good.py", """
        import os, socket

        def run(ctx):
            if ctx.bar_index == 1:
                print("uid", os.getuid(), "cwd", os.getcwd(), "secret" , "hunter2" in repr(os.environ))
                try:
                    socket.create_connection(("1.1.1.1", 443), timeout=1)
                    print("network REACHED")
                except OSError:
                    print("network blocked")
    """)  # fmt: skip
    code = service.put_code(good.read_bytes(), good.name)
    job = service.submit(JobSpec(code=code, universe=("AAA",), snapshot=snapshot, owner="t", limits=Limits()))
    try:
        assert worker.run_until_empty(timeout=120) == 1
        done = service.get(job.id)
        log = service.read_log(job.id).text
        assert done.state is JobState.SUCCEEDED, (done.error, log[-2000:])
        uid = int(log.split()[1])
        assert 61000 <= uid < 61064
        assert "cwd /work secret False" in log
        assert "network blocked" in log
        assert done.metrics is not None
    finally:
        worker.shutdown(grace=0)
        launcher.close()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "quantfleet-work" not in mounts
    assert str(launcher_state) not in mounts
    assert os.getuid() == 0


def test_the_self_test_fails_when_a_layer_leaks(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    import quantfleet.sandbox.isolation.process as process

    real = process.bwrap_command

    def leaky(argv: list[str], **kw: object) -> list[str]:
        command = real(argv, **kw)  # type: ignore[arg-type]
        return [*command[:2], "--share-net", *command[2:]]  # after --unshare-all: a sandbox that kept the network

    monkeypatch.setattr(process, "bwrap_command", leaky)
    report = sandbox_self_test(sandbox)
    assert not report.ok
    assert report.checks["network_tcp"] == "reached"
    with pytest.raises(InfrastructureError, match="network_tcp: reached; the job reached a host TCP listener"):
        require_sandbox(report)
