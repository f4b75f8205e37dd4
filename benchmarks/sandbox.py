"""Start-up cost of the sandbox: a child that does nothing, sandboxed vs. a plain subprocess.

Run ``python benchmarks/sandbox.py`` as root on a host where the sandbox
self-test passes (``--runs 50`` by default). Each run starts the same
interpreter with ``-c pass``: plainly (``subprocess``, the
``SubprocessLauncher``'s way), and in the sandbox with everything a job gets:
its ``/work`` tmpfs mounted, its cgroup created, the limits, the uid drop and
bubblewrap; then the group killed and checked empty, the cgroup and the tmpfs
removed. Prints the medians side by side, the difference (goal: under 50 ms
added per job), and where the sandbox's time goes (set-up, run, tear-down).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantfleet.sandbox.isolation import Sandbox, SandboxLimits, require_sandbox, sandbox_self_test

GOAL_MS = 50.0


def _plain(python: str, flags: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([python, *flags, "-c", "pass"], env={}, check=True)
    return time.perf_counter() - started


def _sandboxed(sandbox: Sandbox, work: Path, flags: list[str]) -> tuple[float, float, float]:
    """Return the seconds of set-up (mount, cgroup, spawn), run and tear-down (kill, check, remove)."""
    limits = SandboxLimits(wall_seconds=30)
    t0 = time.perf_counter()
    work.mkdir()
    sandbox.mount_work(work, limits=limits, slot=0)
    process = sandbox.spawn([sandbox.runtime.python, *flags, "-c", "pass"], work=work, limits=limits, slot=0)
    t1 = time.perf_counter()
    code = process.wait(30)
    t2 = time.perf_counter()
    process.close()
    sandbox.unmount_work(work)
    t3 = time.perf_counter()
    if code != 0 or not process.group_emptied:
        raise SystemExit(f"the sandboxed child failed: {process.verdict().message}")
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with Sandbox() as sandbox, tempfile.TemporaryDirectory(prefix="quantfleet-bench-") as tmp:
        require_sandbox(sandbox_self_test(sandbox))
        header = (
            f"{'child':<24} {'plain':>7} {'sandboxed':>10} {'added':>7}   {'set-up':>7} {'run':>7} {'tear-down':>9}"
        )
        print(header + "   (ms, medians)")
        for label, flags in (("python -I -S -c pass", ["-I", "-S"]), ("python -c pass (site)", [])):
            plain = [_plain(sys.executable, flags) for _ in range(args.runs)]
            parts = [_sandboxed(sandbox, Path(tmp) / f"{len(flags)}-{i}", flags) for i in range(args.runs)]
            p = statistics.median(plain) * 1000
            b = statistics.median(sum(x) for x in parts) * 1000
            setup, run, down = (statistics.median(x[k] for x in parts) * 1000 for k in range(3))
            verdict = "ok" if b - p < GOAL_MS else f"over the {GOAL_MS:g} ms goal"
            print(
                f"{label:<24} {p:>7.1f} {b:>10.1f} {b - p:>7.1f}   {setup:>7.1f} {run:>7.1f} {down:>9.1f}   {verdict}"
            )
        print(f"median of {args.runs} runs each; {sandbox.layout.describe()}")


if __name__ == "__main__":
    main()
