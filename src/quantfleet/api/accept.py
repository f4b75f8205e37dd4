"""Accepting a submission when a Celery fleet runs the jobs: a 201 means the fleet was told; a 503 means nothing runs.

Without a broker (the local pool) a job is accepted once its row is
committed: workers find it in the database. With one, the API answers 503
(with ``Retry-After``) while the broker is down, so that a client's retry
with the same ``Idempotency-Key`` (the Python client does so) makes the job
exactly once, when the broker is back:

1. before anything is stored, the broker must have answered its last check
   (at most a second old; :meth:`~quantfleet.dispatch.notify.Dispatch.require`);
2. the job row is committed, then its id is published (ids only, after the commit);
3. if that publish fails (the broker went down in between), the job is
   withdrawn (cancelled while still queued, with the reason in its events)
   and the request fails with 503; the idempotency record is not kept, so
   the retry submits again. A job some worker already claimed in that
   instant is running: it is kept, and answered 201. Which of the two
   happened is decided in one transaction (:meth:`JobService.withdraw`), so a
   claim in between a read and a cancel cannot make the API cancel a running
   job and answer 503 for it, while the client's retry runs it a second time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from quantfleet.api.deps import ApiContext
from quantfleet.dispatch.execute import retry
from quantfleet.dispatch.notify import BrokerUnavailable
from quantfleet.jobs import Job

__all__ = ["WITHDRAWN_BY", "accept"]

log = logging.getLogger(__name__)

WITHDRAWN_BY = "quantfleet-api: the broker was unreachable, the submission answered 503"
WITHDRAWN_WHY = "its id could not be published to the fleet (the broker is down); the client was answered 503"


def accept(ctx: ApiContext, submit: Callable[[], Job]) -> Job:
    """Run ``submit`` (store the code, queue one job) and tell the fleet; raise BrokerUnavailable (503) if it cannot."""
    dispatch = ctx.dispatch
    if dispatch is None:
        return submit()
    dispatch.require()
    job = submit()
    try:
        dispatch.publish(job.id)
    except BrokerUnavailable:
        withdraw = functools.partial(ctx.service.withdraw, job.id, by=WITHDRAWN_BY, reason=WITHDRAWN_WHY)
        if retry(withdraw, seconds=5):  # a database blip now would leave a job queued that the client submits again
            log.warning("job %s was withdrawn: its id could not be published (the broker is down)", job.id)
            raise
        log.warning("job %s was claimed before its publish failed; it runs, and is accepted", job.id)
    return job
