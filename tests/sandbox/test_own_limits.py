"""A job cannot lift its own limits: not its rlimits, not its cgroup's, not its /work's size."""

from __future__ import annotations

from tests.sandbox.conftest import FAST

RAISE = """
import os, resource
for name in ("RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CORE"):
    kind = getattr(resource, name)
    soft, hard = resource.getrlimit(kind)
    try:
        resource.setrlimit(kind, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("RAISED", name)
    except (ValueError, OSError):
        print("refused", name, hard)
for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max", "/proc/self/cgroup"):
    try:
        open(path, "w").write("max")
        print("RAISED", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
import subprocess
try:
    subprocess.run(["mount", "-o", "remount,size=100g", "/work"], check=True, capture_output=True)
    print("RAISED /work")
except (OSError, subprocess.CalledProcessError) as exc:
    print("refused /work", type(exc).__name__)
print("work size", os.statvfs("/work").f_blocks * os.statvfs("/work").f_frsize)
"""


def test_raising_its_own_limits_is_refused_at_every_layer(run_job) -> None:
    job = run_job(RAISE)
    assert "RAISED" not in job.text, job.text
    assert f"refused RLIMIT_FSIZE {FAST.file_size_bytes}" in job.text
    assert f"refused RLIMIT_NPROC {FAST.pids}" in job.text
    assert f"refused RLIMIT_NOFILE {FAST.open_files}" in job.text
    assert job.text.count("refused /") == 4
    assert f"work size {FAST.work_bytes}" in job.text
