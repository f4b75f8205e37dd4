"""Fair claims and per-user quotas: the SQL the job service composes inside its write transactions.

Claim order: the highest priority first; among equal priorities, the owner
with the fewest running jobs (ties: the owner whose oldest queued job is
oldest); then that owner's oldest job. Owners at their running limit are
skipped. Quotas live in the ``users`` table; an owner without a row there
(single-user mode, the CLI's default owner) has no limits.

On PostgreSQL a claim locks the chosen job with ``FOR UPDATE SKIP LOCKED``
and, for an owner with a running limit, first that owner's ``users`` row
(also ``SKIP LOCKED``, so claimers never wait on or deadlock with each
other), then recounts the owner's running jobs under the lock: two workers
cannot both take an owner's last running slot (a claim that finds the row
locked, by another claim or by a submission checking the queued quota,
passes over that owner this time). On SQLite the write transaction is
``BEGIN IMMEDIATE``, so claims run one at a time anyway.

A claim of one named job (a dispatcher's message) should call
:func:`owner_at_running_limit` on the locked job's owner before taking it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from quantfleet.jobs.errors import QuotaExceeded
from quantfleet.jobs.states import JobState
from quantfleet.store.models import jobs, users

__all__ = ["candidates_sql", "check_queued_quota", "owner_at_running_limit", "pick_fair"]


def _count(conn: Connection, owner: str, state: JobState) -> int:
    query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.owner == owner, jobs.c.state == state.value)
    return int(conn.execute(query).scalar_one())


def owner_at_running_limit(conn: Connection, owner: str, *, skip_locked: bool = True) -> bool:
    """Return whether ``owner`` may not start another job now (its running limit is reached).

    Locks the owner's ``users`` row on PostgreSQL until the transaction ends;
    with ``skip_locked`` a row another claim holds counts as "at the limit"
    (try another owner) instead of waiting for it. No row: no limit.
    """
    limit_query = sa.select(users.c.max_running).where(users.c.name == owner).with_for_update(skip_locked=skip_locked)
    found = conn.execute(limit_query).first()
    if found is None:
        exists = conn.execute(sa.select(users.c.name).where(users.c.name == owner)).first()
        return exists is not None  # locked by another claim (skip it), or no user row (no limit)
    limit = found[0]
    return limit is not None and _count(conn, owner, JobState.RUNNING) >= limit


# The (priority, owner) groups that have queued jobs. PostgreSQL has no skip scan, so a recursive
# query walks ix_jobs_fair one group at a time (a few index probes per owner, however many jobs are
# queued); SQLite's DISTINCT already skips along that index.
_GROUPS_LOOSE = """
    SELECT * FROM (
        SELECT priority, owner FROM jobs WHERE state = :queued ORDER BY priority DESC, owner DESC LIMIT 1
    ) AS top
    UNION ALL
    SELECT
        (SELECT j.priority FROM jobs AS j WHERE j.state = :queued AND (j.priority, j.owner) < (g.priority, g.owner)
         ORDER BY j.priority DESC, j.owner DESC LIMIT 1),
        (SELECT j.owner FROM jobs AS j WHERE j.state = :queued AND (j.priority, j.owner) < (g.priority, g.owner)
         ORDER BY j.priority DESC, j.owner DESC LIMIT 1)
    FROM g WHERE g.priority IS NOT NULL"""
_GROUPS_DISTINCT = "SELECT DISTINCT priority, owner FROM jobs WHERE state = :queued"
# Each group with its owner's running count and its oldest queued job (both index probes), in claim
# order, without owners already at their running limit.
_CANDIDATES = """
WITH RECURSIVE g(priority, owner) AS ({groups})
SELECT c.priority, c.owner, c.max_running FROM (
    SELECT g.priority, g.owner, u.max_running,
        (SELECT count(*) FROM jobs AS j WHERE j.owner = g.owner AND j.state = :running) AS running,
        (SELECT min(j.seq) FROM jobs AS j
         WHERE j.state = :queued AND j.priority = g.priority AND j.owner = g.owner) AS first_seq
    FROM g LEFT JOIN users AS u ON u.name = g.owner
    WHERE g.priority IS NOT NULL
) AS c
WHERE c.max_running IS NULL OR c.running < c.max_running
ORDER BY c.priority DESC, c.running, c.first_seq"""


def candidates_sql(dialect: str) -> str:
    """Return the SQL that lists the (priority, owner) groups a claim may take from, best first."""
    return _CANDIDATES.format(groups=_GROUPS_LOOSE if dialect == "postgresql" else _GROUPS_DISTINCT)


def _candidates(dialect: str) -> sa.TextClause:
    return sa.text(candidates_sql(dialect)).bindparams(queued=JobState.QUEUED.value, running=JobState.RUNNING.value)


def pick_fair(conn: Connection) -> Mapping[Any, Any] | None:
    """Return the next job to claim (``seq``, ``id``, ``attempt``, ``spec``), locked; None if none may start."""
    for group in conn.execute(_candidates(conn.dialect.name)).mappings().all():
        if group["max_running"] is not None and owner_at_running_limit(conn, group["owner"]):
            continue
        row = (
            conn.execute(
                sa.select(jobs.c.seq, jobs.c.id, jobs.c.attempt, jobs.c.spec)
                .where(
                    jobs.c.state == JobState.QUEUED.value,
                    jobs.c.priority == group["priority"],
                    jobs.c.owner == group["owner"],
                    # A live run is claimed by id by the live runner, which holds the broker's credentials.
                    jobs.c.kind != "live",
                )
                .order_by(jobs.c.seq)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            .mappings()
            .first()
        )
        if row is not None:
            return row
    return None


def check_queued_quota(conn: Connection, owner: str) -> None:
    """Raise :class:`QuotaExceeded` if ``owner`` already has as many queued jobs as its limit allows.

    Locks the owner's ``users`` row (PostgreSQL), so concurrent submissions
    cannot both take the last queued slot. No row: no limit.
    """
    found = conn.execute(sa.select(users.c.max_queued).where(users.c.name == owner).with_for_update()).first()
    if found is None or found[0] is None:
        return
    limit = int(found[0])
    queued = _count(conn, owner, JobState.QUEUED)
    if queued >= limit:
        raise QuotaExceeded(
            f"{owner} already has {queued} queued jobs, the most the queued-jobs quota allows "
            f"(max_queued {limit}); wait for some to start, cancel some with 'quantfleet jobs cancel ID', "
            f"or have an admin raise the limit with 'quantfleet users quota {owner} --max-queued N'",
            owner=owner,
            limit=limit,
            quota="max_queued",
        )
