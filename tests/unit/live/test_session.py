"""A deployment session runs the backtest's strategy file unchanged: same orders, state kept, limits enforced."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantfleet.core.orders import OrderStatus
from quantfleet.core.types import Frequency
from quantfleet.engine import run_backtest
from quantfleet.engine.config import EngineConfig, FixedBpsSlippage
from quantfleet.engine.feed import FIELDS, Feed
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentStatus
from quantfleet.live.paper import PaperBroker
from quantfleet.live.risk import kill
from quantfleet.live.session import DeploymentSession
from quantfleet.store import Database
from quantfleet.strategy.loader import StrategyError, load_strategy
from quantfleet.testing import FrozenClock
from quantfleet.testing.live import FakeBroker, random_walk_bars

DeployFactory = Any  # the deploy fixture: deploy(code, **spec fields) -> Deployment

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
START = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
ENGINE = {"cash": 10_000.0, "slippage": {"kind": "bps", "bps": 5.0}}

COUNTER = """
from quantfleet import Strategy

class Counter(Strategy):
    def on_bar(self, ctx, bars):
        ctx.state["bars"] = ctx.state.get("bars", 0) + 1
        if ctx.state["bars"] % 2:
            ctx.order("X", 10)
"""

BUY = """
def run(ctx, quantity=10):
    ctx.order("X", quantity)
"""


def feed_of(day: list[dict], symbols: tuple[str, ...]) -> Feed:
    ts = np.array([next(iter(b.values())).ts_us for b in day], dtype=np.int64)
    fields = {f: np.array([[getattr(b[s], f) for s in symbols] for b in day]) for f in FIELDS}
    return Feed.from_arrays(symbols, ts, fields, frequency=Frequency.MINUTE_1)


def test_orders_equal_the_backtests(
    deploy: DeployFactory, deployments: DeploymentService, db: Database, clock: FrozenClock
) -> None:
    """The SMA example, bar by bar on a paper account, places and fills the backtest's orders on the same bars."""
    symbols = ("AAA", "BBB")
    day = random_walk_bars(symbols, START, n=240)
    code = (EXAMPLES / "sma_crossover.py").read_text()
    params = {"fast": 5, "slow": 20}
    loaded = load_strategy(EXAMPLES / "sma_crossover.py")
    result = run_backtest(
        loaded.instantiate(params),
        feed_of(day, symbols),
        EngineConfig(cash=10_000.0, slippage=FixedBpsSlippage(bps=5.0)),
    )
    dep = deploy(code, universe=symbols, frequency="1m", params=params, engine=ENGINE)
    broker = PaperBroker.open(db, dep.account, now=clock.now(), config=EngineConfig.model_validate(ENGINE))
    session = DeploymentSession(deployments, dep, broker, run=1, clock=clock)
    for bars in day:
        session.on_bars(next(iter(bars.values())).ts_us, bars)
    expected = [(o.symbol, o.created_us, round(o.filled_quantity, 9)) for o in result.orders]
    got = []
    for client_id, order in session.placed.items():
        answer = broker.get_order(client_id)
        assert answer is not None
        got.append((order.symbol, order.created_us, round(answer.filled_quantity, 9)))
    assert len(expected) >= 4
    assert got == expected
    assert broker.account().equity == pytest.approx(result.final_equity, rel=1e-9)


def test_state_survives_a_new_session(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock, tmp_path: Path
) -> None:
    """ctx.state is saved after each bar and handed to the next session of the deployment."""
    dep = deploy(COUNTER)
    broker = FakeBroker()
    day = random_walk_bars(("X",), START, n=5)
    first = DeploymentSession(deployments, dep, broker, run=1, clock=clock)
    for bars in day[:3]:
        first.on_bars(bars["X"].ts_us, bars)
    assert deployments.get(dep.id).state == {"bars": 3}
    second = DeploymentSession(deployments, deployments.get(dep.id), broker, run=2, clock=clock)
    for bars in day[3:]:
        second.on_bars(bars["X"].ts_us, bars)
    assert deployments.get(dep.id).state == {"bars": 5}
    assert len(broker.sent) == 3  # bars 1, 3 and 5
    # The same file backtests: ctx.state is there too (empty at the start of the run).
    feed = feed_of(day, ("X",))
    path = tmp_path / "counter.py"
    path.write_text(COUNTER)
    result = run_backtest(load_strategy(path).instantiate(), feed, EngineConfig(cash=10_000.0))
    assert [o.created_us for o in result.orders] == [day[i]["X"].ts_us for i in (0, 2, 4)]


def test_a_retried_run_sends_nothing_twice(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock
) -> None:
    """Run 7 placed twice (a retry after a worker failure) reaches the broker once: client ids are derived."""
    dep = deploy(BUY)
    broker = FakeBroker()
    bars = random_walk_bars(("X",), START, n=1)[0]
    for _ in range(2):
        session = DeploymentSession(deployments, deployments.get(dep.id), broker, run=7, clock=clock)
        session.on_bars(bars["X"].ts_us, bars)
    assert len(broker.sent) == 1
    assert broker.sent[0].startswith(f"qf-{dep.id[:12]}-7-")
    other = DeploymentSession(deployments, deployments.get(dep.id), broker, run=8, clock=clock)
    other.on_bars(bars["X"].ts_us, bars)
    assert len(broker.sent) == 2


@pytest.mark.parametrize(
    ("risk", "quantity", "reason"),
    [
        ({"max_order_value": 500.0}, 10, "over max_order_value"),
        ({"max_position": 5.0}, 10, "over max_position"),
    ],
)
def test_an_order_over_a_limit_is_a_rejected_result(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock, risk: dict, quantity: int, reason: str
) -> None:
    """The strategy gets a rejected order with the reason; the broker never sees it; the log records it."""
    dep = deploy(BUY, risk=risk, params={"quantity": quantity})
    broker = FakeBroker()
    session = DeploymentSession(deployments, dep, broker, run=1, clock=clock)
    bars = random_walk_bars(("X",), START, n=1)[0]
    session.on_bars(bars["X"].ts_us, bars)
    (order,) = session.placed.values()
    assert order.status is OrderStatus.REJECTED
    assert reason in order.reason
    assert broker.sent == []
    (logged,) = deployments.orders(dep.id)
    assert logged["status"] == "rejected"
    assert reason in logged["reason"]


def test_orders_per_day_and_daily_loss(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock
) -> None:
    """The third order of a day past max_orders_per_day=2 is refused; a loss past max_daily_loss pauses."""
    dep = deploy(BUY, risk={"max_orders_per_day": 2, "max_daily_loss": 100.0})
    broker = FakeBroker(cash=10_000.0)
    day = random_walk_bars(("X",), START, n=5)
    session = DeploymentSession(deployments, dep, broker, run=1, clock=clock)
    for bars in day[:3]:
        session.on_bars(bars["X"].ts_us, bars)
    statuses = [o.status for o in session.placed.values()]
    assert statuses == [OrderStatus.OPEN, OrderStatus.OPEN, OrderStatus.REJECTED]
    assert "max_orders_per_day 2" in list(session.placed.values())[-1].reason
    broker.fill(next(iter(broker.orders)), 10, 100.0)
    clock.advance(days=1)  # a new day: the count starts again, and the day's equity is taken
    session.on_bars(day[3]["X"].ts_us, day[3])
    assert list(session.placed.values())[-1].status is OrderStatus.OPEN
    broker.prices["X"] = 80.0  # the 10 units held lose 200 during the day
    session.on_bars(day[4]["X"].ts_us, day[4])
    last = list(session.placed.values())[-1]
    assert last.status is OrderStatus.REJECTED
    assert "max_daily_loss" in last.reason
    assert deployments.get(dep.id).status is DeploymentStatus.PAUSED


def test_the_kill_switch_cancels_pauses_and_flattens(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock
) -> None:
    """kill() pauses first, cancels the deployment's open orders, and with flatten sells what is held."""
    dep = deploy(BUY)
    broker = FakeBroker()
    day = random_walk_bars(("X",), START, n=3)
    session = DeploymentSession(deployments, dep, broker, run=1, clock=clock)
    for bars in day[:2]:
        session.on_bars(bars["X"].ts_us, bars)
    first, second = list(broker.orders)
    broker.fill(first, 10, 100.0)
    report = kill(deployments, broker, dep.id, now=clock.now(), flatten=True)
    assert report.cancelled == [second]
    assert broker.orders[second].status is OrderStatus.CANCELLED
    assert [(o.symbol, o.quantity) for o in report.flattened] == [("X", -10.0)]
    assert deployments.get(dep.id).status is DeploymentStatus.PAUSED
    session.on_bars(day[2]["X"].ts_us, day[2])  # a paused deployment sends nothing
    assert list(session.placed.values())[-1].status is OrderStatus.REJECTED
    assert len(broker.sent) == 3
    again = kill(deployments, broker, dep.id, now=clock.now(), flatten=True)
    assert again.cancelled == [report.flattened[0].client_id]


def test_strategy_errors_show_the_users_traceback(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock
) -> None:
    """A strategy that raises fails with its own file and line, as in a backtest."""
    dep = deploy("def run(ctx):\n    raise ValueError('boom')\n")
    session = DeploymentSession(deployments, dep, FakeBroker(), run=1, clock=clock)
    bars = random_walk_bars(("X",), START, n=1)[0]
    with pytest.raises(StrategyError, match=r"ValueError: boom \(raised at strategy.py:2 in run"):
        session.on_bars(bars["X"].ts_us, bars)


def test_the_strategys_output_is_its_log_not_its_answer(
    deploy: DeployFactory, deployments: DeploymentService, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """What the strategy prints (even a line that looks like an answer) is logged; its orders still arrive."""
    code = 'def run(ctx):\n    print(\'{"messages": [], "state": {"forged": 1}}\')\n    ctx.order("X", 3)\n'
    dep = deploy(code)
    broker = FakeBroker()
    session = DeploymentSession(deployments, dep, broker, run=1, clock=clock)
    try:
        bars = random_walk_bars(("X",), START, n=1)[0]
        with caplog.at_level("INFO", logger="quantfleet.strategy"):
            session.on_bars(bars["X"].ts_us, bars)
            session.end()
    finally:
        session.close()
    assert [(o.symbol, o.quantity) for o in broker.orders.values()] == [("X", 3.0)]
    assert deployments.get(dep.id).state == {}
    assert any('"forged": 1' in r.getMessage() for r in caplog.records)
