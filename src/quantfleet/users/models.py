"""Value objects of the user service: frozen, safe to hand to any face."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["TOKEN_PREFIX", "TokenInfo", "User"]

TOKEN_PREFIX = "qf_"
"""Every API token starts with this, so secret scanners and humans can recognize one."""


@dataclass(frozen=True)
class User:
    """A user: its name (the ``owner`` of its jobs), admin flag and quotas (None: no limit)."""

    name: str
    admin: bool
    max_running: int | None
    max_queued: int | None
    created_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """What is kept of an API token: never the secret, only a public id and its first characters."""

    id: str
    user: str
    prefix: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Return whether the token still authenticates."""
        return self.revoked_at is None
