"""Choose a worker's child launcher under the sandbox policy (``QUANTFLEET_SANDBOX``), failing closed.

``on`` (the default): every job runs in the sandbox (the ``bubblewrap``
launcher); asking for an unsandboxed launcher is refused at start, naming the
fix. ``trusted``: the only bypass, for one researcher on their own machine.
The worker then runs jobs unsandboxed, logging a loud warning on every job,
and refuses to start in production or when the database has more than one
user (another user's code would run with the worker's rights).

The sandbox has no network, so a sandboxed worker refuses at start a market-data
store it could only reach over the network (``s3://...``), rather than failing
every job it takes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import Settings
from quantfleet.data.storage import is_remote
from quantfleet.dispatch.launcher import ChildLauncher, ChildProcess, default_launcher
from quantfleet.jobs import JobService
from quantfleet.store.models import users

__all__ = ["TrustedLauncher", "check_data_reachable", "check_sandbox_policy", "launcher_from_settings"]

_log = logging.getLogger(__name__)

UNSANDBOXED_WARNING = (
    "SANDBOX OFF (QUANTFLEET_SANDBOX=trusted): job %s runs with this worker's rights, network and files; "
    "only ever do this for your own code on your own machine"
)


def check_data_reachable(settings: Settings, *, kind: str) -> None:
    """Raise ConfigError if launcher ``kind``'s children could not read the market data (the sandbox on S3)."""
    url = settings.resolved_data_url
    if kind == "bubblewrap" and is_remote(url):
        raise ConfigError(
            f"the market data is at {url}, but the sandbox (the bubblewrap launcher) has no network to read it "
            "(reading remote data into the sandbox is not built yet): keep the market data in a local or shared "
            "folder (QUANTFLEET_DATA_URL=/path; job objects may stay on S3), or, for your own code on your own "
            "machine only, set QUANTFLEET_SANDBOX=trusted"
        )


def check_sandbox_policy(settings: Settings, *, kind: str, user_count: int) -> None:
    """Raise ConfigError unless launcher ``kind`` is allowed by the sandbox setting (see the module docstring)."""
    check_data_reachable(settings, kind=kind)
    if kind == "bubblewrap":
        return
    if settings.sandbox == "on":
        raise ConfigError(
            f"the '{kind}' launcher runs jobs unsandboxed, and QUANTFLEET_SANDBOX is 'on' (the default): use "
            "the bubblewrap launcher (run the worker as root with bubblewrap installed), or, for your own code "
            "on your own machine only, set QUANTFLEET_SANDBOX=trusted"
        )
    if settings.environment == "production":
        raise ConfigError(
            "QUANTFLEET_SANDBOX=trusted is refused in production (QUANTFLEET_ENVIRONMENT=production): run "
            "workers with the bubblewrap launcher and unset QUANTFLEET_SANDBOX"
        )
    if user_count > 1:
        raise ConfigError(
            f"QUANTFLEET_SANDBOX=trusted is refused: the database has {user_count} users, and one user's code "
            "would run unsandboxed next to the others' jobs and secrets; run workers with the bubblewrap "
            "launcher and unset QUANTFLEET_SANDBOX (trusted is for a single user only)"
        )


def _user_count(service: JobService) -> int:
    with service.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


class TrustedLauncher:
    """An unsandboxed launcher that logs a loud warning for every job it starts."""

    sandboxed = False

    def __init__(self, inner: ChildLauncher) -> None:
        self.inner = inner

    def start(self) -> None:
        """Start the inner launcher (a fork server), if it has a start."""
        start = getattr(self.inner, "start", None)
        if start is not None:
            start()

    def launch(self, work: Path) -> ChildProcess:
        """Warn, then start the child unsandboxed."""
        _log.warning(UNSANDBOXED_WARNING, work.name)
        return self.inner.launch(work)

    def close(self) -> None:
        """Close the inner launcher."""
        self.inner.close()


def launcher_from_settings(
    settings: Settings, env: Mapping[str, str], *, service: JobService, kind: str | None = None
) -> ChildLauncher:
    """Return the worker's launcher (``kind``, else the settings'), checked against the sandbox policy."""
    chosen = kind or settings.resolved_launcher
    check_sandbox_policy(settings, kind=chosen, user_count=0 if chosen == "bubblewrap" else _user_count(service))
    launcher = default_launcher(env, kind=chosen, strict=settings.sandbox_strict)
    if chosen == "bubblewrap":
        return launcher
    return TrustedLauncher(launcher)
