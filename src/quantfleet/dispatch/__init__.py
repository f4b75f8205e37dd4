"""Dispatch: run queued jobs on a local pool of worker slots, each job in a child process.

The public surface is small: :class:`Worker` and :class:`WorkerConfig` (the
claim loop and its step mode), the :class:`ChildLauncher` port where the
sandbox plugs in, and :func:`worker_from_settings`. Names load lazily, so a
job's child (``quantfleet.dispatch.child``) never imports the job service or
the database layer through this package.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ChildLauncher",
    "ForkServerLauncher",
    "Limits",
    "SubprocessLauncher",
    "Worker",
    "WorkerConfig",
    "worker_from_settings",
]

_WHERE = {
    "ChildLauncher": "quantfleet.dispatch.launcher",
    "ForkServerLauncher": "quantfleet.dispatch.launcher",
    "SubprocessLauncher": "quantfleet.dispatch.launcher",
    "Limits": "quantfleet.dispatch.limits",
    "Worker": "quantfleet.dispatch.worker",
    "WorkerConfig": "quantfleet.dispatch.worker",
    "worker_from_settings": "quantfleet.dispatch.pool",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'quantfleet.dispatch' has no attribute {name!r}")
