"""The idempotency records: reserve, complete, replay; expiry after the retention; stale in-flight takeover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from quantfleet.store import Database
from quantfleet.store.idempotency import IdempotencyStore


def test_records_expire_and_stale_reservations_are_taken_over(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'i.db'}")
    db.upgrade()
    now = [datetime(2026, 1, 5, 9, 30, tzinfo=UTC)]
    store = IdempotencyStore(db, retention=timedelta(hours=24), stale_after=timedelta(minutes=10), now=lambda: now[0])
    try:
        assert store.begin("alice", "k", "a" * 64) is None
        held = store.begin("alice", "k", "a" * 64)
        assert held is not None
        assert held.status is None  # in flight
        now[0] += timedelta(minutes=11)
        assert store.begin("alice", "k", "a" * 64) is None  # its process died: taken over
        store.complete("alice", "k", status=201, response={"id": "x"})
        done = store.begin("alice", "k", "b" * 64)
        assert done is not None
        assert (done.status, done.response, done.body_sha256) == (201, {"id": "x"}, "a" * 64)
        assert store.begin("bob", "k", "b" * 64) is None  # keys are per owner
        now[0] += timedelta(hours=25)
        assert store.begin("carol", "other", "c" * 64) is None  # inserting sweeps out what expired
        assert store.begin("alice", "k", "b" * 64) is None  # expired: the key is free again
        store.release("alice", "k")
        assert store.begin("alice", "k", "d" * 64) is None
    finally:
        db.dispose()
