"""Jobs cannot see each other: a running job's folder is out of another's reach, and nothing carries over."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.sandbox.conftest import FAST

from quantfleet.sandbox.isolation import Sandbox
from quantfleet.testing.jobs import wait_until

PEEK = """
import os, sys
for path in sys.argv[1:]:
    for attempt in (lambda: os.listdir(path), lambda: open(os.path.join(path, "secret.txt")).read()):
        try:
            print("REACHED", path, attempt())
        except OSError as exc:
            print("blocked", type(exc).__name__)
others = [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid()) and p != "1"]
print("other processes", others)
"""


def _stages_under(state: Path) -> list[str]:
    return [
        line.split(" ")[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split(" ")[4].startswith(f"{state}/work/")
    ]


def test_a_running_jobs_folder_is_unreadable_from_another_job(sandbox: Sandbox, run_job, tmp_path: Path) -> None:
    work = tmp_path / "other"
    work.mkdir()
    sandbox.mount_work(work, limits=FAST, slot=1)
    code = "import time; open('/work/secret.txt', 'w').write('s3cret'); time.sleep(60)"
    other = sandbox.spawn([sandbox.runtime.python, "-I", "-S", "-c", code], work=work, limits=FAST, slot=1)
    try:
        wait_until(lambda: (work / "secret.txt").exists(), timeout=30, what="the other job to write its secret")
        stages = _stages_under(sandbox.state)
        assert stages, "the other job's /work stage should be mounted"
        job = run_job(textwrap.dedent(PEEK), args=(str(work), *stages, str(sandbox.state)))
    finally:
        other.kill_tree(grace=0)
        other.close()
        sandbox.unmount_work(work)
    assert "REACHED" not in job.text, job.text
    assert "s3cret" not in job.text
    assert "other processes []" in job.text  # its own pid namespace: the other job's processes are not there


def test_nothing_persists_in_work_tmp_or_dev_shm_between_two_jobs_of_the_same_slot(run_job) -> None:
    first = run_job(
        "for p in ('/work/left', '/tmp/left', '/dev/shm/left'): open(p, 'w').write('x')\nprint('wrote')", slot=2
    )
    assert "wrote" in first.text
    second = run_job(
        "import os; print([os.path.exists(p) for p in ('/work/left', '/tmp/left', '/dev/shm/left')])", slot=2
    )
    assert second.text.strip() == "[False, False, False]"
