"""The hostile-test harness: every test here runs its program in the REAL sandbox, or not at all.

The session first runs the sandbox self-test; if it fails (no bubblewrap, not
root, no cgroups, a layer leaking), every test here fails under ``CI=true``
and skips elsewhere with the self-test's reason. After each test the host is
checked: no process of a slot uid left, no job cgroup left.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quantfleet.core.errors import InfrastructureError
from quantfleet.sandbox.isolation import Bind, Sandbox, SandboxLimits, SandboxResult, sandbox_self_test
from quantfleet.sandbox.isolation.limits import MIB

IN_CI = os.environ.get("CI", "").lower() == "true"
FAST = SandboxLimits(
    wall_seconds=20,
    memory_bytes=256 * MIB,
    pids=64,
    work_bytes=16 * MIB,
    work_inodes=1000,
    tmp_bytes=8 * MIB,
    shm_bytes=8 * MIB,
    file_size_bytes=64 * MIB,
)


def _refuse(reason: str) -> None:
    message = f"the sandbox is not sound on this host, so no hostile test may run: {reason}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """Return the sandbox, after its self-test passed (else fail in CI, skip elsewhere)."""
    try:
        box = Sandbox()
    except InfrastructureError as exc:
        _refuse(str(exc))
        raise
    report = sandbox_self_test(box)
    if not report.ok:
        box.close()
        _refuse(report.summary())
    yield box
    box.close()
    assert _mounts_of(str(box.state)) == [], "a stage of the sandbox is still mounted on the host"
    assert not box.state.exists()


def _mounts_of(fragment: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if fragment in line]


def _slot_processes(box: Sandbox) -> list[int]:
    uids = range(box.config.uid_base, box.config.uid_base + box.config.slots)
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                # A dead sandbox's pid 1 is reparented to the host's init as a zombie until it reaps it: not alive.
                alive = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
                if alive and os.stat(f"/proc/{pid}").st_uid in uids:
                    found.append(int(pid))
            except OSError:
                pass
    return found


def _job_cgroups(box: Sandbox) -> list[Path]:
    parents = [*box.layout.parents.values(), box.layout.kill_parent, box.layout.freezer_parent]
    prefix = f"quantfleet-{os.getpid()}-"
    return [c for p in parents if p is not None for c in p.glob(f"{prefix}*")]


@pytest.fixture(autouse=True)
def host_unharmed(sandbox: Sandbox) -> Iterator[None]:
    """Check after each test: no slot-uid process, no job cgroup, the host still forks and writes /tmp."""
    yield
    deadline = time.monotonic() + 3  # killed processes may be zombies for a moment, until their reaper runs
    while _slot_processes(sandbox) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _slot_processes(sandbox) == [], "a sandboxed process outlived its job"
    assert _job_cgroups(sandbox) == [], "a job cgroup was left behind"
    assert _mounts_of("quantfleet-work") == [], "a job's /work tmpfs is still mounted"
    probe = Path(f"/tmp/quantfleet-host-probe-{os.getpid()}")
    probe.write_text("ok")
    probe.unlink()
    assert os.spawnv(os.P_WAIT, "/bin/true", ["true"]) == 0


@dataclass
class Job:
    """A finished hostile job: the result, its output as text, and its host work folder (unmounted)."""

    result: SandboxResult
    text: str
    group_emptied: bool | None


@pytest.fixture
def run_job(sandbox: Sandbox, tmp_path: Path) -> object:
    """Return ``run(code, limits=..., args=..., env=..., binds=..., inspect=...)``: run Python code in the sandbox."""
    counter = iter(range(1000))

    def run(
        code: str,
        *,
        limits: SandboxLimits = FAST,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        binds: tuple[Bind, ...] = (),
        slot: int = 0,
        inspect: object = None,
    ) -> Job:
        work = tmp_path / f"job{next(counter)}"
        work.mkdir()
        sandbox.mount_work(work, limits=limits, slot=slot)
        try:
            argv = [sandbox.runtime.python, "-I", "-S", "-c", textwrap.dedent(code), *args]
            process = sandbox.spawn(argv, work=work, limits=limits, env=env, binds=binds, slot=slot)
            result = process.run(timeout=limits.wall_seconds)
            if callable(inspect):
                inspect(work)
        finally:
            sandbox.unmount_work(work)
        assert not work.exists()
        return Job(result, result.output.decode(errors="replace"), process.group_emptied)

    return run


@pytest.fixture
def secrets_file() -> Iterator[Path]:
    """Write a fake Alpaca secrets file outside /tmp (which the sandbox replaces anyway), as a user would."""
    folder = Path(f"/var/tmp/quantfleet-live-test-{os.getpid()}")
    folder.mkdir(exist_ok=True)
    path = folder / "alpaca.env"
    path.write_text("ALPACA_API_KEY=PKFAKEKEY\nALPACA_SECRET_KEY=fake-secret\n")
    yield path
    shutil.rmtree(folder)
