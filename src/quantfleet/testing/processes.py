"""Processes seen in /proc, for tests that check what a command started and that it left nothing behind."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

__all__ = ["live_pids"]


def live_pids(match: Callable[[list[bytes]], bool]) -> list[int]:
    """Return the pids (ascending) of processes, zombies aside, whose argv ``match`` accepts."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # a process may end between the listing and the read
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if match(argv) and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)
