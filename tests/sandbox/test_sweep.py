"""A worker SIGKILLed mid-job leaves its job's cgroup and mounts behind; the next sandbox to start removes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from quantfleet.sandbox.isolation import Sandbox
from quantfleet.testing.jobs import wait_until

DOOMED_WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from quantfleet.sandbox.isolation import Sandbox, SandboxLimits
    from quantfleet.sandbox.isolation.limits import MIB

    box = Sandbox()
    work = Path(sys.argv[1])
    work.mkdir()
    limits = SandboxLimits(wall_seconds=120, memory_bytes=128 * MIB, work_bytes=4 * MIB, work_inodes=100)
    box.mount_work(work, limits=limits, slot=5)
    code = "import time; open('/work/started', 'w').write('x'); time.sleep(600)"
    job = box.spawn([box.runtime.python, "-I", "-S", "-c", code], work=work, limits=limits, slot=5)
    print(job.cgroup.name, box.state, flush=True)
    time.sleep(600)
""")


def _mounts(fragment: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if fragment in line]


def test_the_cgroup_and_mounts_of_a_sigkilled_worker_are_swept_at_the_next_start(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    work = tmp_path / "job"
    worker = subprocess.Popen(
        [sys.executable, "-c", DOOMED_WORKER, str(work)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert worker.stdout is not None
    name, state = worker.stdout.readline().split()
    wait_until(lambda: (work / "started").exists(), timeout=30, what="the job to start")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    worker.stdout.close()

    parents = [p for p in sandbox.layout.parents.values()]
    left = [p / name for p in parents if (p / name).is_dir()]
    assert left, "the dead worker's job cgroup should still be there"
    mark = f"quantfleet-work-{worker.pid}"
    assert len(_mounts(mark)) == 2, "its job tmpfs should be mounted on its stage and its work folder"
    assert Path(state).is_dir()

    fresh = Sandbox()  # what a worker restarting on this host does first
    try:
        assert f"cgroup {name}" in fresh.swept
        assert any(str(work) in s for s in fresh.swept)
    finally:
        fresh.close()
    assert not any(folder.exists() for folder in left)
    assert _mounts(mark) == []
    assert not Path(state).exists()
    assert not work.exists()  # the emptied work folder is gone with its tmpfs
    # and the autouse host_unharmed fixture checks no process of a slot uid is left
