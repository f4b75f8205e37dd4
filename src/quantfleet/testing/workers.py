"""Workers for tests of the layers above the sandbox (API, client, metrics) that need several users.

The sandbox policy refuses an unsandboxed worker when the database has more
than one user (:mod:`quantfleet.dispatch.trusted`). Tests of other layers set
up several users and still run their jobs unsandboxed, for speed and without
root: they build the worker here, with a launcher they vouch for. Never in
production code.
"""

from __future__ import annotations

import os

from quantfleet.core.settings import Settings
from quantfleet.dispatch.launcher import ForkServerLauncher, child_environment
from quantfleet.dispatch.pool import worker_from_settings
from quantfleet.dispatch.trusted import TrustedLauncher
from quantfleet.dispatch.worker import Worker
from quantfleet.jobs import JobService

__all__ = ["unsandboxed_worker"]


def unsandboxed_worker(settings: Settings, *, service: JobService, slots: int = 1) -> Worker:
    """Return a worker whose jobs run unsandboxed in forked children (a warning on each), whatever the users."""
    launcher = TrustedLauncher(ForkServerLauncher(child_environment(os.environ)))
    return worker_from_settings(settings, slots=slots, service=service, launcher=launcher)
