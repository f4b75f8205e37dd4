"""HTTP idempotency records: (owner, Idempotency-Key) -> the request body's sha256 and the response sent.

A face calls :meth:`IdempotencyStore.begin` before it acts. ``None`` means the
key is new and now reserved (in flight); otherwise the stored
:class:`IdempotencyRecord` says what happened to the first request with that
key. :meth:`complete` stores the response; :meth:`release` forgets a key whose
request failed in a way a retry may fix. Records older than the retention are
deleted as new ones are inserted; an in-flight record older than
``stale_after`` (its process died) is taken over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from quantfleet.store.db import Database
from quantfleet.store.models import http_idempotency

__all__ = ["IdempotencyRecord", "IdempotencyStore"]


@dataclass(frozen=True, kw_only=True)
class IdempotencyRecord:
    """What the first request with a key did: ``status`` None while it is still in flight."""

    body_sha256: str
    status: int | None
    response: Any
    created_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IdempotencyStore:
    """Idempotency records in the metadata database."""

    def __init__(
        self,
        db: Database,
        *,
        retention: timedelta = timedelta(hours=24),
        stale_after: timedelta = timedelta(minutes=10),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Keep records for ``retention``; take over an in-flight record after ``stale_after``."""
        self.db = db
        self.retention = retention
        self.stale_after = stale_after
        self._now = now

    def _where(self, owner: str, key: str) -> sa.ColumnElement[bool]:
        return sa.and_(http_idempotency.c.owner == owner, http_idempotency.c.key == key)

    def begin(self, owner: str, key: str, body_sha256: str) -> IdempotencyRecord | None:
        """Reserve ``key`` for ``owner`` and return None, or return the record already held for it."""
        try:
            return self._begin(owner, key, body_sha256)
        except sa_exc.IntegrityError:
            # A concurrent request with the same key inserted first (PostgreSQL): it is in flight.
            return self._begin(owner, key, body_sha256)

    def _begin(self, owner: str, key: str, body_sha256: str) -> IdempotencyRecord | None:
        now = self._now()
        with self.db.write() as conn:
            conn.execute(sa.delete(http_idempotency).where(http_idempotency.c.created_at < now - self.retention))
            row = conn.execute(sa.select(http_idempotency).where(self._where(owner, key))).mappings().first()
            if row is not None:
                stale = row["status"] is None and row["created_at"] < now - self.stale_after
                if not stale:
                    return IdempotencyRecord(
                        body_sha256=row["body_sha256"],
                        status=row["status"],
                        response=row["response"],
                        created_at=row["created_at"],
                    )
                conn.execute(sa.delete(http_idempotency).where(self._where(owner, key)))
            conn.execute(
                sa.insert(http_idempotency).values(
                    owner=owner, key=key, body_sha256=body_sha256, status=None, response=None, created_at=now
                )
            )
        return None

    def complete(self, owner: str, key: str, *, status: int, response: Any) -> None:
        """Store the response sent for the request that reserved ``key``."""
        with self.db.write() as conn:
            conn.execute(
                sa.update(http_idempotency).where(self._where(owner, key)).values(status=status, response=response)
            )

    def release(self, owner: str, key: str) -> None:
        """Forget ``key`` (its request failed in a way a retry may fix)."""
        with self.db.write() as conn:
            conn.execute(sa.delete(http_idempotency).where(self._where(owner, key)))
