"""One event deployment's session: bars in, the strategy in a long-lived sandboxed child, orders to the broker.

Used by ``quantfleet deployments run`` for ``--on-bars`` deployments. This
process holds the broker, the database and the MQTT feed; the strategy runs
in a child started with the job launcher's sandbox (bubblewrap and seccomp
unless ``QUANTFLEET_SANDBOX=trusted``: no network, no host files, no
credential) and kept for the whole session, so its attributes live from bar
to bar as in a backtest (:mod:`quantfleet.live.strategy_child`,
:mod:`quantfleet.sandbox.live_session`).

Per timestamp, in the backtest's order: the bars join the history; the paper
broker matches the open orders against them (fills at the open); the child
is sent the bar, those fills and the account, calls ``on_fill`` for each fill
and ``on_bar``, and answers with its order messages and ``ctx.state``; each
order goes through the deployment's risk limits to the broker under the
client id ``client_order_id(deployment, run, seq)``, ``seq`` counted here.
With ``fill_at="close"`` market orders then fill at this bar's close (and the
child hears of those fills). After each step ``ctx.state`` and the newest
bar's time are saved, and a point of the P&L series is recorded.

A child that dies (or hangs) is replaced by a new one started from the
database (``ctx.state``) and the broker (positions, open orders), and the
step it did not answer is sent again: its orders were not forwarded, and
they keep their client ids. A restarted process recovers the same way.
Scheduled runs do not come here: each is a job (:mod:`quantfleet.live.runner`).
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.orders import Fill, OrderStatus
from quantfleet.core.settings import Settings
from quantfleet.data.calendars import calendar_for, quiet
from quantfleet.dispatch.launcher import ChildLauncher
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.live.messages import (
    Cancel,
    RunOutput,
    account_json,
    fill_json,
    order_json,
    position_json,
)
from quantfleet.jobs.clock import Clock
from quantfleet.live.broker import Broker, client_order_id
from quantfleet.live.context import BarHistory
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import CronTrigger, Deployment
from quantfleet.live.paper import Bar, PaperBroker
from quantfleet.live.risk import RiskGate
from quantfleet.live.strategy_child import ChildLost, StrategyChild, session_launcher

__all__ = ["DeploymentSession", "Placed", "exchange_day"]

log = logging.getLogger(__name__)

MAX_CHILD_STARTS = 3
"""Children started for one step before the session gives up (its process fails; the supervisor restarts it)."""


def exchange_day(calendar: str) -> Callable[[datetime], str]:
    """Return a function naming the exchange's date of a UTC time (the risk limits' day)."""
    today = pd.Timestamp.now(tz="UTC")  # only picks the years the calendar object covers
    with quiet():
        tz = calendar_for(calendar, today, today).tz

    def day(when: datetime) -> str:
        return when.astimezone(tz).date().isoformat()

    return day


@dataclass(frozen=True)
class Placed:
    """An order the session forwarded, as the broker (or a risk limit) answered it."""

    symbol: str
    quantity: float
    status: OrderStatus
    reason: str
    created_us: int


class DeploymentSession:
    """A deployment's strategy in one sandboxed child for the whole session, its orders behind the risk limits."""

    def __init__(
        self,
        service: DeploymentService,
        deployment: Deployment,
        broker: Broker,
        *,
        run: int,
        clock: Clock,
        history: BarHistory | None = None,
        logger: logging.Logger | None = None,
        launcher: ChildLauncher | None = None,
        work_root: Path | None = None,
    ) -> None:
        """``launcher``: how the strategy's child starts (default: the settings' workers' launcher under the
        sandbox policy); ``work_root``: where its work folder goes (default: under the temporary folder)."""
        self.service = service
        self.deployment = deployment
        self.broker = broker
        self.clock = clock
        spec = deployment.spec
        self.history = history or BarHistory(spec.universe)
        calendar = spec.trigger.calendar if isinstance(spec.trigger, CronTrigger) else "XNYS"
        self.gate = RiskGate(
            broker, service, deployment.id, run=run, prices=self.history.last_close, day=exchange_day(calendar)
        )
        self._sequence = 0
        self._run = run
        self.config = EngineConfig.model_validate(spec.engine)
        self.logger = logger or logging.getLogger("quantfleet.strategy")
        self.code = service.code(deployment)
        self.state: dict[str, Any] = dict(deployment.state)
        self.placed: dict[str, Placed] = {}
        """Every order this session forwarded, by client id, as answered (in the order placed)."""
        self.children_started = 0
        self._own_launcher = launcher is None
        self.launcher = launcher or session_launcher(Settings(), service.jobs)
        root = work_root or Path(tempfile.gettempdir()) / "quantfleet-live-sessions"
        self.work_root = root.resolve()
        self.child: StrategyChild | None = None
        try:
            self._start_child()  # initialize runs now: its errors fail the session at once, as before
        except BaseException:
            self.close()
            raise

    def _start_child(self) -> StrategyChild:
        spec = self.deployment.spec
        if self.children_started:  # a replacement: what the dead child knew comes from the database
            self.state = dict(self.service.get(self.deployment.id).state)
        start = {
            "deployment": self.deployment.id,
            "run": self._run,
            "now": self.clock.now().isoformat(),
            "universe": list(spec.universe),
            "frequency": spec.frequency.value,
            "params": dict(spec.params),
            "engine": dict(spec.engine),
            "state": self.state,
        }
        work = self.work_root / f"{self.deployment.id}-{self._run}-{uuid.uuid4().hex[:8]}"
        self.children_started += 1
        self.child = StrategyChild(
            self.launcher, work, code=self.code, code_name=spec.code_name, class_name=spec.class_name,
            start=start, history=self.history, logger=self.logger,
        )  # fmt: skip
        log.info("deployment %s: strategy child %d started", self.deployment.id, self.child.pid)
        return self.child

    def _ask(self, now: datetime, bar: tuple[int, Mapping[str, Bar]] | None, fills: list[Fill]) -> RunOutput:
        """Send one step to the child (replacing a dead one, up to MAX_CHILD_STARTS times); return its answer."""
        request: dict[str, Any] = {
            "op": "step",
            "now": now.isoformat(),
            "base": self._sequence,
            "bar": None,
            "fills": [fill_json(f) for f in fills],
            "account": account_json(self.gate.account()),
            "positions": [position_json(p) for p in self.gate.positions().values()],
            "open_orders": [order_json(o) for o in self.gate.open_orders()],
        }
        if bar is not None:
            ts, bars = bar
            request["bar"] = {
                "ts": ts,
                "bars": {
                    s: {f: getattr(b, f) for f in ("open", "high", "low", "close", "volume")} for s, b in bars.items()
                },
            }
        tries = 0
        while True:
            child = self.child or self._start_child()
            try:
                return child.request(request)
            except ChildLost as exc:
                self.child = None
                tries += 1
                if tries >= MAX_CHILD_STARTS:
                    raise InfrastructureError(
                        f"deployment {self.deployment.id}: the strategy's child failed {tries} times on one bar "
                        f"({exc}); see the deployment's log"
                    ) from exc
                log.warning("deployment %s: %s; starting another from the database and the broker",
                            self.deployment.id, exc)  # fmt: skip

    def _forward(self, output: RunOutput, now: datetime, created_us: int) -> None:
        """Send the step's order messages through the risk limits to the broker; keep ctx.state."""
        mine = {o.client_id for o in self.gate.open_orders()}
        base = self._sequence
        for message in output.messages:
            if isinstance(message, Cancel):
                if message.client_id not in mine and message.client_id not in self.placed:
                    self.logger.warning("cancel of %s ignored: not an open order of this deployment", message.client_id)
                elif self.gate.get_order(message.client_id) is not None:
                    self.gate.cancel(message.client_id, now=now)
                continue
            request = message.request(client_order_id(self.deployment.id, self._run, base + message.seq))
            answer = self.gate.submit(request, now=now)
            self._sequence = max(self._sequence, base + message.seq)
            self.placed[request.client_id] = Placed(
                request.symbol, request.quantity, answer.status, answer.reason, created_us
            )
            if answer.status is OrderStatus.REJECTED:
                self.logger.warning("order refused: %s: %s", request.describe(), answer.reason)
        self.state = output.state

    # -- steps --------------------------------------------------------------------------------------

    def on_bars(self, ts_us: int, bars: Mapping[str, Bar]) -> list[Fill]:
        """Handle the bars of one new timestamp (an event-driven deployment); return the paper fills."""
        self.history.append(ts_us, bars)
        now = self.clock.now()
        paper = self.broker if isinstance(self.broker, PaperBroker) else None
        self.gate.open_day(now)
        fills = paper.process(bars, now=now) if paper is not None else []
        self._forward(self._ask(now, (ts_us, bars), fills), now, ts_us)
        if paper is not None and self.config.fill_at == "close":
            closed = paper.process(bars, now=now, at_close=True)
            if closed:
                self._forward(self._ask(now, None, closed), now, ts_us)
            fills += closed
        at = datetime.fromtimestamp(ts_us / 1e6, tz=UTC)
        self.service.save_state(self.deployment.id, self.state, last_bar_at=at)
        self.service.record_equity(self.deployment.id, at=at, account=self.broker.account())
        return fills

    def end(self) -> None:
        """Call the strategy's on_end and save its state (a deployment stopping)."""
        if self.child is not None:
            self.state = self.child.request({"op": "end"}).state
        self.service.save_state(self.deployment.id, self.state)
        self.close()

    def close(self) -> None:
        """Stop the strategy's child (and the launcher, when the session made it)."""
        if self.child is not None:
            self.child.close()
            self.child = None
        if self._own_launcher:
            self.launcher.close()
