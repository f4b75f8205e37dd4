"""Scheduled runs as jobs: each run of a deployment is a job of kind ``live`` (state, attempts, log, retries).

:meth:`LiveRunner.submit` numbers the run and queues its job (idempotency key
``live-<deployment>-<run>``). General workers never claim live jobs: the
live runner claims them by id, in the scheduler's process, which alone
holds the broker's credentials. A run reads the deployment's newest
completed bars from the data store (a bar counts once its period has
ended), fills the paper account's open orders on the newest bar if it is
new, calls the strategy once, and saves ``ctx.state``. A run that fails for
an infrastructure reason is released and retried under the same run number,
so its orders keep their client ids and are not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.data import MarketDataStore
from quantfleet.dispatch.execute import Beat
from quantfleet.engine.feed import load_feed
from quantfleet.jobs import CodeRef, JobId, JobKind, JobService, JobSpec, JobState, Outcome
from quantfleet.jobs.clock import Clock
from quantfleet.live.broker import Broker
from quantfleet.live.brokers import open_broker
from quantfleet.live.context import BarHistory
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import CronTrigger, Deployment, DeploymentStatus, Run
from quantfleet.live.session import DeploymentSession
from quantfleet.store.models import jobs as jobs_table

__all__ = ["LiveRunner"]

log = logging.getLogger(__name__)


class _JobLog(logging.Handler):
    def __init__(self, write: Callable[[str], Any]) -> None:
        super().__init__()
        self._write = write
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self._write(self.format(record) + "\n")


class LiveRunner:
    """Queue and run scheduled runs of deployments as jobs."""

    def __init__(
        self,
        deployments: DeploymentService,
        *,
        store: Callable[[], MarketDataStore],
        clock: Clock,
        worker: str = "live-runner",
        broker: Callable[[Deployment, datetime], Broker] | None = None,
    ) -> None:
        self.deployments = deployments
        self.jobs: JobService = deployments.jobs
        self._store = store
        self.clock = clock
        self.worker = worker
        self._broker = broker or (lambda dep, now: open_broker(dep, self.jobs.db, now=now))

    def submit(self, deployment: Deployment, *, due_at: datetime) -> Run | None:
        """Number the run due at ``due_at`` and queue its job; None if that run exists already."""
        run = self.deployments.start_run(deployment.id, due_at=due_at)
        if run is None:
            return None
        spec = deployment.spec
        snapshot = self._store().latest()
        job = self.jobs.submit(
            JobSpec(
                kind=JobKind.LIVE,
                code=CodeRef(sha256=spec.code_sha256, name=spec.code_name, class_name=spec.class_name),
                params=spec.params,
                universe=spec.universe,
                frequency=spec.frequency,
                snapshot=snapshot if snapshot is not None else 0,
                engine=spec.engine,
                calendar=spec.trigger.calendar if isinstance(spec.trigger, CronTrigger) else "XNYS",
                owner=spec.owner,
                live={"deployment": deployment.id, "run": run.number},
            ),
            idempotency_key=f"live-{deployment.id}-{run.number}",
        )
        self.deployments.update_run(deployment.id, run.number, job_id=job.id)
        return run.model_copy(update={"job_id": job.id})

    def pending(self) -> list[JobId]:
        """Return the queued live jobs, oldest first (new runs and released ones to retry)."""
        query = (
            sa.select(jobs_table.c.id)
            .where(jobs_table.c.kind == JobKind.LIVE.value, jobs_table.c.state == JobState.QUEUED.value)
            .order_by(jobs_table.c.seq)
        )
        with self.jobs.db.read() as conn:
            return [JobId(i) for i in conn.execute(query).scalars().all()]

    def run_pending(self) -> int:
        """Run every queued live job; return how many ran."""
        ran = 0
        for job_id in self.pending():
            ran += self.run_job(job_id) is not None
        return ran

    def run_job(self, job_id: JobId) -> Outcome | None:
        """Claim the live job and run it; None if it was not queued (or was released for a retry)."""
        claim = self.jobs.claim_job(self.worker, job_id)
        if claim is None:
            return None
        live = claim.spec.live or {}
        dep_id, number = str(live["deployment"]), int(live["run"])
        beat = Beat(self.jobs, claim, every=max(0.5, self.jobs.lease.total_seconds() / 3)).start()
        writer = self.jobs.log_writer(claim)
        handler = _JobLog(writer.write)
        strategy_log = logging.getLogger(f"quantfleet.strategy.live.{job_id}")
        strategy_log.addHandler(handler)
        strategy_log.propagate = False
        now = self.clock.now()
        self.deployments.update_run(dep_id, number, status="running", started_at=now)
        try:
            metrics = self._run(dep_id, number, strategy_log)
            outcome = Outcome(state=JobState.SUCCEEDED, metrics=metrics)
        except UserError as exc:
            writer.write(f"{exc}\n")
            outcome = Outcome(state=JobState.FAILED, error=str(exc))
        except InfrastructureError as exc:
            writer.write(f"{exc}\n")
            writer.close()
            beat.stop()
            strategy_log.removeHandler(handler)
            self.jobs.release(claim, reason=f"the live run could not finish: {exc}")
            self.deployments.update_run(dep_id, number, status="retrying", error=str(exc))
            return None
        finally:
            strategy_log.removeHandler(handler)
        writer.close()
        beat.stop()
        self.jobs.finish(claim, outcome)
        self.deployments.update_run(
            dep_id, number, status=outcome.state.value, finished_at=self.clock.now(), error=outcome.error
        )
        return outcome

    def _run(self, dep_id: str, number: int, logger: logging.Logger) -> dict[str, Any]:
        deployment = self.deployments.get(dep_id)
        if deployment.status is not DeploymentStatus.ACTIVE:
            logger.info("deployment %s is %s: run %d skipped", dep_id, deployment.status.value, number)
            return {"skipped": True, "orders": 0}
        now = self.clock.now()
        spec = deployment.spec
        # Only bars whose period has ended: a bar labelled t is complete at t + one bar.
        end = now - spec.frequency.step
        feed, _ = load_feed(self._store(), list(spec.universe), end=end, frequency=spec.frequency)
        if feed.n_bars > spec.history_bars:
            cut = feed.n_bars - spec.history_bars
            feed = type(feed)(
                feed.symbols,
                feed.ts[cut:],
                {k: v[cut:] for k, v in feed.fields.items()},
                feed.frequency,
                {},
                feed.snapshot,
            )
        history = BarHistory.from_feed(feed, spec.universe)
        session = DeploymentSession(
            self.deployments,
            deployment,
            self._broker(deployment, now),
            run=number,
            clock=self.clock,
            history=history,
            logger=logger,
        )
        fills = session.run_once()
        account = session.broker.account()
        return {
            "orders": len(session.ctx.placed),
            "rejected": sum(1 for o in session.ctx.placed.values() if o.status.value == "rejected"),
            "fills": len(fills),
            "equity": account.equity,
            "cash": account.cash,
        }
