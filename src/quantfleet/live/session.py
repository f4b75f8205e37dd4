"""One event deployment's strategy, context and broker in one process: a bar at a time.

Used by ``quantfleet deployments run`` for ``--on-bars`` deployments, whose
strategy runs in the process that holds the broker (not in the sandbox; see
the README). Scheduled runs do not come here: each is a job whose strategy
runs in the sandboxed child (:mod:`quantfleet.live.runner`).

Per timestamp, in the backtest's order: the bars join the history; the paper
broker matches the open orders against them (fills at the open) and the
strategy's ``on_fill`` hears of each fill; ``on_bar`` runs; with
``fill_at="close"`` market orders then fill at this bar's close. After each
step the strategy's ``ctx.state`` and the newest bar's time are saved, and a
point of the P&L series is recorded. Nothing is kept in memory only: a
restarted session reads positions and open orders back from the broker and
``ctx.state`` from the database.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.orders import Fill
from quantfleet.data.calendars import calendar_for, quiet
from quantfleet.engine.config import EngineConfig
from quantfleet.jobs.clock import Clock
from quantfleet.live.broker import Broker, client_order_id
from quantfleet.live.context import BarHistory, LiveBars, LiveContext
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import CronTrigger, Deployment
from quantfleet.live.paper import Bar, PaperBroker
from quantfleet.live.risk import RiskGate
from quantfleet.strategy.base import Strategy
from quantfleet.strategy.loader import StrategyError, load_strategy, strategy_error

__all__ = ["DeploymentSession", "exchange_day"]


def exchange_day(calendar: str) -> Callable[[datetime], str]:
    """Return a function naming the exchange's date of a UTC time (the risk limits' day)."""
    today = pd.Timestamp.now(tz="UTC")  # only picks the years the calendar object covers
    with quiet():
        tz = calendar_for(calendar, today, today).tz

    def day(when: datetime) -> str:
        return when.astimezone(tz).date().isoformat()

    return day


class DeploymentSession:
    """A deployment's strategy loaded once, its context over ``broker`` (behind the risk limits)."""

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
    ) -> None:
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
        # Content-addressed, like the code store: the same version always lands in the same file.
        folder = Path(tempfile.gettempdir()) / "quantfleet-live-code" / spec.code_sha256
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / spec.code_name
        if not self.path.is_file():
            staged = folder / f".{spec.code_name}.{uuid.uuid4().hex}"
            staged.write_bytes(service.code(deployment))
            staged.replace(self.path)
        loaded = load_strategy(self.path, class_name=spec.class_name)
        self.strategy: Any = loaded.instantiate(spec.params)
        self.ctx = LiveContext(
            self.gate,
            self.history,
            universe=spec.universe,
            frequency=spec.frequency,
            client_id=self._next_client_id,
            clock=clock.now,
            state=dict(deployment.state),
            logger=logger or logging.getLogger("quantfleet.strategy"),
            seed=self.config.seed,
        )
        self.bars = LiveBars(self.history)
        user_on_fill = getattr(self.strategy, "on_fill", None)
        self._on_fill = None if getattr(user_on_fill, "__func__", None) is Strategy.on_fill else user_on_fill
        self._call(self.strategy.initialize, " in initialize")

    def _next_client_id(self) -> str:
        self._sequence += 1
        return client_order_id(self.deployment.id, self._run, self._sequence)

    def _call(self, func: Callable[..., Any], where: str, *args: Any) -> Any:
        try:
            return func(self.ctx, *args)
        except (InfrastructureError, StrategyError):
            raise
        except Exception as exc:  # the strategy's own errors and its misuse of ctx, shown as in a backtest
            raise strategy_error(exc, self.path, where) from exc

    # -- steps --------------------------------------------------------------------------------------

    def on_bars(self, ts_us: int, bars: Mapping[str, Bar]) -> list[Fill]:
        """Handle the bars of one new timestamp (an event-driven deployment); return the paper fills."""
        self.history.append(ts_us, bars)
        self.ctx.advance()
        return self._step(bars, new_bar=True)

    def _step(self, bars: Mapping[str, Bar], *, new_bar: bool) -> list[Fill]:
        now = self.clock.now()
        paper = self.broker if isinstance(self.broker, PaperBroker) else None
        fills: list[Fill] = []
        self.gate.open_day(now)
        if paper is not None and new_bar:
            fills += self._fills(paper.process(bars, now=now))
        self.bars.refresh()
        self._call(self.strategy.on_bar, f" on bar {self.ctx.time:%Y-%m-%d %H:%M}", self.bars)
        if paper is not None and new_bar and self.config.fill_at == "close":
            fills += self._fills(paper.process(bars, now=now, at_close=True))
        at = self.ctx.time
        self.service.save_state(self.deployment.id, self.ctx.state, last_bar_at=at)
        self.service.record_equity(self.deployment.id, at=at, account=self.broker.account())
        return fills

    def _fills(self, fills: list[Fill]) -> list[Fill]:
        if self._on_fill is not None:
            for fill in fills:
                self._call(lambda ctx, f: self._on_fill(ctx, f), " in on_fill", fill)  # type: ignore[misc]
        return fills

    def end(self) -> None:
        """Call the strategy's on_end and save its state (a deployment stopping)."""
        self._call(self.strategy.on_end, " in on_end")
        self.service.save_state(self.deployment.id, self.ctx.state)
