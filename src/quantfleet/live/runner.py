"""Scheduled runs as jobs: each run of a deployment is a job of kind ``live``, its strategy in the sandbox.

:meth:`LiveRunner.submit` numbers the run and queues its job (idempotency key
``live-<deployment>-<run>``). General workers never claim live jobs: the
live runner claims them by id, in the scheduler's process, which alone holds
the broker's credentials. The strategy itself never runs there. One run:

1. outside the sandbox, the runner reads the deployment's newest completed
   bars from the data store (a bar counts once its period has ended), opens
   the broker, starts the risk day, and fills the paper account's open
   orders on the newest bar if it is new;
2. it writes a snapshot into the job's work folder (the run, the bars, cash,
   positions, the deployment's open orders, the newest bar's fills,
   ``ctx.state``: :mod:`quantfleet.engine.live.messages`) and launches the
   job's child with the same launcher a backtest job gets (bubblewrap and
   seccomp unless ``QUANTFLEET_SANDBOX=trusted``: no network, no host
   files, an environment without the broker's keys). The child calls the
   strategy once and writes its orders and the new ``ctx.state`` as
   messages (:mod:`quantfleet.sandbox.live`);
3. the child's end is judged as any job's (a strategy error fails the run,
   the wall-clock limit times it out, a lost child is retried); on success
   the runner forwards each order message through the deployment's risk
   limits (:class:`~quantfleet.live.risk.RiskGate`) to the broker under the
   client id ``client_order_id(deployment, run, seq)``, then saves
   ``ctx.state`` and a point of the P&L series.

A run that fails for an infrastructure reason (the child lost, the broker
unreachable while its orders are forwarded) is released and retried under
the same run number, so its orders keep their client ids: those already
sent are answered from the record and the broker, never sent again. A run
whose strategy fails sends nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.core.logging import bind_job_id, reset_job_id
from quantfleet.core.orders import Fill, OrderStatus
from quantfleet.core.settings import Settings
from quantfleet.data import MarketDataStore
from quantfleet.dispatch.execute import Attempt
from quantfleet.dispatch.launcher import ChildLauncher, child_environment
from quantfleet.dispatch.task import DataRef, TaskKind
from quantfleet.dispatch.trusted import launcher_from_settings
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.feed import FIELDS, load_feed
from quantfleet.engine.live.messages import (
    BARS_FILE,
    RUN_FILE,
    Cancel,
    account_json,
    fill_json,
    order_json,
    position_json,
    read_messages,
)
from quantfleet.jobs import Claim, CodeRef, JobId, JobKind, JobService, JobSpec, JobState, Outcome
from quantfleet.jobs.clock import Clock
from quantfleet.live.broker import Broker, client_order_id
from quantfleet.live.brokers import open_broker
from quantfleet.live.context import BarHistory
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import CronTrigger, Deployment, DeploymentStatus, Run
from quantfleet.live.paper import Bar, PaperBroker
from quantfleet.live.risk import RiskGate
from quantfleet.live.session import exchange_day
from quantfleet.store.models import jobs as jobs_table
from quantfleet.strategy.loader import StrategyError

__all__ = ["LiveRunner"]

log = logging.getLogger(__name__)


@dataclass
class _Run:
    """One run's worker-side state between the snapshot and the forwarding of its orders."""

    deployment: Deployment
    number: int
    now: datetime
    broker: Broker
    gate: RiskGate
    bars: dict[str, Bar]
    at: datetime
    new_bar: bool
    fills: list[Fill]


def _started(launcher: ChildLauncher) -> ChildLauncher:
    start = getattr(launcher, "start", None)
    if start is not None:
        start()  # a fork server starts with the scrubbed environment; the sandbox runs its self-test (fails closed)
    return launcher


class LiveRunner:
    """Queue and run scheduled runs of deployments as jobs, each strategy call in a sandboxed child."""

    def __init__(
        self,
        deployments: DeploymentService,
        *,
        store: Callable[[], MarketDataStore],
        clock: Clock,
        worker: str = "live-runner",
        broker: Callable[[Deployment, datetime], Broker] | None = None,
        launcher: ChildLauncher | None = None,
        work_root: Path | None = None,
    ) -> None:
        """``launcher``: how each run's child starts (default: the settings' launcher under the sandbox policy,
        as a worker's: bubblewrap unless ``QUANTFLEET_SANDBOX=trusted``); ``work_root``: where runs' work
        folders go (default: a private folder under the system's temporary folder)."""
        self.deployments = deployments
        self.jobs: JobService = deployments.jobs
        self._store = store
        self.clock = clock
        self.worker = worker
        self._broker = broker or (lambda dep, now: open_broker(dep, self.jobs.db, now=now))
        self._launcher = launcher
        default = Path(tempfile.gettempdir()) / f"quantfleet-live-{uuid.uuid4().hex[:8]}"
        self.work_root = (work_root or default).resolve()

    @classmethod
    def from_settings(
        cls, deployments: DeploymentService, settings: Settings, *, store: Callable[[], MarketDataStore], clock: Clock
    ) -> LiveRunner:
        """Return a runner whose runs' children start as the settings' workers' do, in ``<home>/work/live``."""
        launcher = _started(launcher_from_settings(settings, child_environment(os.environ), service=deployments.jobs))
        return cls(deployments, store=store, clock=clock, launcher=launcher, work_root=settings.home / "work" / "live")

    @property
    def launcher(self) -> ChildLauncher:
        """Return the runs' child launcher, started (built from the settings on first use if none was given)."""
        if self._launcher is None:
            env = child_environment(os.environ)
            self._launcher = _started(launcher_from_settings(Settings(), env, service=self.jobs))
        return self._launcher

    def close(self) -> None:
        """Stop the launcher (its fork server or sandbox state)."""
        if self._launcher is not None:
            self._launcher.close()

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
        # The run's log records carry its job id (the Attempt binds it too), and only while it runs:
        # the scheduler's thread goes back to its own context afterwards.
        token = bind_job_id(job_id)
        try:
            return self._run_claimed(claim)
        finally:
            reset_job_id(token)

    def _run_claimed(self, claim: Claim) -> Outcome | None:
        job_id = claim.job_id
        live = claim.spec.live or {}
        dep_id, number = str(live["deployment"]), int(live["run"])
        attempt = Attempt(
            self.jobs,
            claim,
            launcher=self.launcher,
            work_root=self.work_root,
            # The child reads no market data (the runner hands it its bars): point it at nothing to mount.
            data=DataRef(url=str(self.work_root / "no-market-data")),
            heartbeat_every=max(0.5, self.jobs.lease.total_seconds() / 3),
        ).begin()
        self.deployments.update_run(dep_id, number, status="running", started_at=self.clock.now())
        try:
            outcome = self._attempt(attempt, claim, dep_id, number)
        finally:
            attempt.end()
            attempt.cleanup()
        if outcome is None:  # released (retried, or dead after the last attempt) or its lease lost
            job, tries = self.jobs.with_attempts(job_id)
            status = "retrying" if job.state is JobState.QUEUED else job.state.value
            reason = job.error or next((a.error for a in reversed(tries) if a.error), None)
            self.deployments.update_run(dep_id, number, status=status, error=reason)
            return None
        self.deployments.update_run(
            dep_id, number, status=outcome.state.value, finished_at=self.clock.now(), error=outcome.error
        )
        return outcome

    def _note(self, claim: Claim, text: str) -> None:
        """Add a line of the runner's own to the job's log."""
        with self.jobs.log_writer(claim) as writer:
            writer.write(text.rstrip("\n") + "\n")

    def _attempt(self, attempt: Attempt, claim: Claim, dep_id: str, number: int) -> Outcome | None:
        try:
            deployment = self.deployments.get(dep_id)
            if deployment.status is not DeploymentStatus.ACTIVE:
                self._note(claim, f"deployment {dep_id} is {deployment.status.value}: run {number} skipped")
                outcome = Outcome(state=JobState.SUCCEEDED, metrics={"skipped": True, "orders": 0})
                attempt.finish(outcome)
                return outcome
            run = self._snapshot(deployment, number, attempt)
        except UserError as exc:
            self._note(claim, str(exc))
            outcome = Outcome(state=JobState.FAILED, error=str(exc))
            attempt.finish(outcome)
            return outcome
        except InfrastructureError as exc:
            attempt.release(f"the live run could not start: {exc}")
            return None
        try:
            end = attempt.run_child()
        except InfrastructureError as exc:
            attempt.release(f"the worker could not run the job: {exc}")
            return None
        return attempt.record(end, on_success=lambda outcome: self._forward(run, attempt, claim, outcome))

    def _snapshot(self, deployment: Deployment, number: int, attempt: Attempt) -> _Run:
        """Fill on the newest bar if it is new, then write the child's task, code, snapshot and bars."""
        now = self.clock.now()
        spec = deployment.spec
        history = self._history(deployment, now)
        assert history.last_ts is not None
        broker = self._broker(deployment, now)
        calendar = spec.trigger.calendar if isinstance(spec.trigger, CronTrigger) else "XNYS"
        gate = RiskGate(
            broker, self.deployments, deployment.id, run=number, prices=history.last_close, day=exchange_day(calendar)
        )
        gate.open_day(now)
        at = datetime.fromtimestamp(history.last_ts / 1e6, tz=UTC)
        bars = {
            s: Bar(s, at, **{f: history.value(f, s) for f in FIELDS})
            for s in history.symbols
            if history.value("close", s) == history.value("close", s)
        }
        seen = self.deployments.last_bar_at(deployment.id)
        new_bar = seen is None or at > seen
        fills = broker.process(bars, now=now) if isinstance(broker, PaperBroker) and new_bar else []
        body = {
            "deployment": deployment.id,
            "run": number,
            "now": now.isoformat(),
            "universe": list(spec.universe),
            "frequency": spec.frequency.value,
            "params": dict(spec.params),
            "engine": dict(spec.engine),
            "state": dict(deployment.state),
            "account": account_json(gate.account()),
            "positions": [position_json(p) for p in gate.positions().values()],
            "open_orders": [order_json(o) for o in gate.open_orders()],
            "fills": [fill_json(f) for f in fills],
        }
        task = {"strategy": spec.code_name, "class_name": spec.class_name}
        attempt.prepare(TaskKind.LIVE, task, extra={RUN_FILE: body})
        arrays: dict[str, Any] = {f: np.column_stack([history.column(f, s) for s in spec.universe]) for f in FIELDS}
        arrays["ts"] = np.asarray(history.ts, dtype=np.int64)
        np.savez(attempt.work / BARS_FILE, **arrays)
        return _Run(deployment, number, now, broker, gate, bars, at, new_bar, fills)

    def _history(self, deployment: Deployment, now: datetime) -> BarHistory:
        """Return the deployment's newest ``history_bars`` completed bars; StrategyError if there is none."""
        spec = deployment.spec
        # Only bars whose period has ended: a bar labelled t is complete at t + one bar.
        feed, _ = load_feed(self._store(), list(spec.universe), end=now - spec.frequency.step, frequency=spec.frequency)
        cut = max(0, feed.n_bars - spec.history_bars)
        fields = {k: v[cut:] for k, v in feed.fields.items()}
        feed = type(feed)(feed.symbols, feed.ts[cut:], fields, feed.frequency, {}, feed.snapshot)
        history = BarHistory.from_feed(feed, spec.universe)
        if history.last_ts is None:
            raise StrategyError(
                f"no bars of {', '.join(spec.universe)} in the data store to run on; "
                "ingest some ('quantfleet data ingest') or schedule an ingestion before the deployment"
            )
        return history

    def _forward(self, run: _Run, attempt: Attempt, claim: Claim, outcome: Outcome) -> Outcome:
        """Send the child's order messages through the risk limits to the broker; save ctx.state and P&L."""
        output = read_messages(attempt.work)
        dep_id, notes = run.deployment.id, []
        own: set[str] = set()
        mine = {o.client_id for o in run.gate.open_orders()}
        sent = rejected = 0
        for message in output.messages:
            if isinstance(message, Cancel):
                if message.client_id not in own and message.client_id not in mine:
                    notes.append(f"cancel of {message.client_id} ignored: not an open order of this deployment")
                elif run.gate.get_order(message.client_id) is not None:
                    run.gate.cancel(message.client_id, now=run.now)
                continue
            request = message.request(client_order_id(dep_id, run.number, message.seq))
            own.add(request.client_id)
            answer = run.gate.submit(request, now=run.now)
            sent += 1
            if answer.status is OrderStatus.REJECTED:
                rejected += 1
                notes.append(f"order refused: {request.describe()}: {answer.reason}")
        fills = list(run.fills)
        config = EngineConfig.model_validate(run.deployment.spec.engine)
        if isinstance(run.broker, PaperBroker) and run.new_bar and config.fill_at == "close":
            fills += run.broker.process(run.bars, now=run.now, at_close=True)
        self.deployments.save_state(dep_id, output.state, last_bar_at=run.at)
        account = run.broker.account()
        self.deployments.record_equity(dep_id, at=run.at, account=account)
        notes.append(f"run {run.number}: {sent} order(s) forwarded, {rejected} refused, {len(fills)} fill(s)")
        self._note(claim, "\n".join(notes))
        metrics: dict[str, Any] = {
            "orders": sent,
            "rejected": rejected,
            "fills": len(fills),
            "equity": account.equity,
            "cash": account.cash,
        }
        return replace(outcome, metrics={**(outcome.metrics or {}), **metrics})
