"""The product's promise, end to end with the real Mosquitto: a day of bars replayed through MQTT into a paper
deployment places the same orders (symbol, side, quantity, bar) as a backtest of the same strategy on the same bars.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from quantfleet.core.types import Frequency
from quantfleet.engine import run_backtest
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.feed import FIELDS, Feed
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentSpec
from quantfleet.live.mqtt import BarFeed, publish_bars, run_on_bars
from quantfleet.live.paper import PaperBroker
from quantfleet.live.session import DeploymentSession
from quantfleet.store import Database, ObjectStore
from quantfleet.strategy.loader import load_strategy
from quantfleet.testing import FrozenClock, require_server
from quantfleet.testing.live import random_walk_bars

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.py"
HOST, PORT = "127.0.0.1", 1883
ENGINE = {"cash": 50_000.0, "slippage": {"kind": "bps", "bps": 5.0}, "commission": {"kind": "bps", "bps": 1.0}}


def test_a_day_replayed_over_mqtt_trades_as_the_backtest(db: Database, tmp_path: Path) -> None:
    require_server("Mosquitto", HOST, PORT, "mosquitto -p 1883 -d")
    tag = uuid.uuid4().hex[:6].upper()  # symbols of this test only: other tests share the broker
    symbols = (f"P{tag}A", f"P{tag}B")
    # A recorded session: 390 one-minute bars of two symbols, seeded, from the 9:30 New York open.
    day = random_walk_bars(symbols, datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=390, seed=11)
    params = {"fast": 5, "slow": 20}

    ts = np.array([next(iter(b.values())).ts_us for b in day], dtype=np.int64)
    fields = {f: np.array([[getattr(b[s], f) for s in symbols] for b in day]) for f in FIELDS}
    feed = Feed.from_arrays(symbols, ts, fields, frequency=Frequency.MINUTE_1)
    backtest = run_backtest(load_strategy(EXAMPLE).instantiate(params), feed, EngineConfig.model_validate(ENGINE))

    clock = FrozenClock()
    service = DeploymentService(JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock), clock=clock)
    sha = service.put_code(EXAMPLE.read_bytes(), EXAMPLE.name)
    dep = service.create(
        DeploymentSpec(
            name="parity",
            owner="test",
            code_sha256=sha,
            code_name=EXAMPLE.name,
            params=params,
            universe=symbols,
            frequency=Frequency.MINUTE_1,
            trigger={"kind": "bars"},
            engine=ENGINE,
        )
    )
    broker = PaperBroker.open(db, dep.account, now=clock.now(), config=EngineConfig.model_validate(ENGINE))
    session = DeploymentSession(service, dep, broker, run=1, clock=clock)
    bars = BarFeed(HOST, PORT, "1m", symbols)
    stop = threading.Event()
    thread = threading.Thread(target=run_on_bars, args=(session, bars, stop), daemon=True)
    thread.start()
    try:
        assert publish_bars(HOST, PORT, "1m", day) == 2 * len(day)
        deadline = time.monotonic() + 60
        while len(session.history) < len(day):
            assert time.monotonic() < deadline, f"only {len(session.history)} of {len(day)} bars arrived"
            thread.join(0.05)
    finally:
        stop.set()
        thread.join(10)
        bars.close()

    def side(q: float) -> str:
        return "buy" if q > 0 else "sell" if q < 0 else "none"

    expected = [(o.symbol, side(o.filled_quantity), o.filled_quantity, o.created_us) for o in backtest.orders]
    got = []
    for client_id, order in session.placed.items():
        answer = broker.get_order(client_id)
        assert answer is not None
        got.append((order.symbol, side(answer.filled_quantity), answer.filled_quantity, order.created_us))
    assert len(expected) >= 6
    assert got == expected
    assert broker.account().equity == pytest.approx(backtest.final_equity, rel=1e-9)
    assert service.get(dep.id).heartbeat_at is not None
