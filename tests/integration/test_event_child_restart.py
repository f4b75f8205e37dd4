"""An on-bars session whose strategy child is killed (in the middle of a bar, or between bars) starts another from
the database and the broker, sends the unanswered bar again, and places no order twice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from quantfleet.engine.config import EngineConfig
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentSpec
from quantfleet.live.paper import PaperBroker
from quantfleet.live.session import DeploymentSession
from quantfleet.store import Database, ObjectStore
from quantfleet.testing import FrozenClock
from quantfleet.testing.live import random_walk_bars

STALLS = """
import os, time
from quantfleet import Strategy

class Stalls(Strategy):
    def initialize(self, ctx):
        self.heard = 0

    def on_bar(self, ctx, bars):
        self.heard += 1
        ctx.state["bars"] = ctx.state.get("bars", 0) + 1
        ctx.state["heard"] = self.heard
        ctx.order("X", 1)
        if ctx.state["bars"] == 4 and not os.path.exists("../stalled"):  # once: the replacement does not stall
            open("../stalled", "w").write("in on_bar")
            time.sleep(120)
"""


def test_a_killed_strategy_child_is_replaced_without_sending_an_order_twice(tmp_path: Path) -> None:
    clock = FrozenClock()
    clock.set(datetime(2024, 3, 4, 14, 31, tzinfo=UTC))
    db = Database(f"sqlite:///{tmp_path / 'quantfleet.db'}")
    db.upgrade()
    service = DeploymentService(JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock), clock=clock)
    spec = DeploymentSpec.model_validate(
        {
            "name": "stalls",
            "owner": "alice",
            "code_sha256": service.put_code(STALLS.encode(), "stalls.py"),
            "code_name": "stalls.py",
            "universe": ("X",),
            "frequency": "1m",
            "trigger": {"kind": "bars"},
            "engine": {"cash": 100_000.0},
        }
    )
    dep = service.create(spec)
    broker = PaperBroker.open(db, dep.account, now=clock.now(), config=EngineConfig(cash=100_000.0))
    work = tmp_path / "work"
    session = DeploymentSession(service, dep, broker, run=1, clock=clock, work_root=work)
    day = random_walk_bars(("X",), datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=6)
    try:
        for bars in day[:3]:
            session.on_bars(bars["X"].ts_us, bars)
        assert service.get(dep.id).state == {"bars": 3, "heard": 3}

        # Bar 4: the child places its order, then hangs in on_bar; it is killed there.
        fourth = threading.Thread(target=session.on_bars, args=(day[3]["X"].ts_us, day[3]))
        fourth.start()
        deadline = time.monotonic() + 60
        while not (work / "stalled").exists():
            assert time.monotonic() < deadline, "the child never reached bar 4's on_bar"
            time.sleep(0.05)
        assert session.child is not None
        os.killpg(session.child.pid, signal.SIGKILL)
        fourth.join(120)
        assert not fourth.is_alive()
        assert session.children_started == 2
        # The replacement started from the database (3 bars) and heard bar 4 again: a new object.
        assert service.get(dep.id).state == {"bars": 4, "heard": 1}

        # Killed between bars: found dead when bar 5 is sent.
        assert session.child is not None
        os.killpg(session.child.pid, signal.SIGKILL)
        session.child.process.wait(10)
        for bars in day[4:]:
            session.on_bars(bars["X"].ts_us, bars)
        assert session.children_started == 3
        assert service.get(dep.id).state == {"bars": 6, "heard": 2}
    finally:
        session.close()
    orders = PaperBroker(db, dep.account).orders()
    assert sorted(o.client_id for o in orders) == sorted(f"qf-{dep.id[:12]}-1-{n}" for n in range(1, 7))
    assert list(session.placed) == [f"qf-{dep.id[:12]}-1-{n}" for n in range(1, 7)]
    db.dispose()
