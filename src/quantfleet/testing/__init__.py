"""Fakes shipped for tests, yours and ours: hand-made feeds and a scripted strategy."""

from quantfleet.testing.clock import FrozenClock
from quantfleet.testing.market import DAY_US, ScriptedStrategy, make_feed
from quantfleet.testing.servers import require_server

__all__ = ["DAY_US", "FrozenClock", "ScriptedStrategy", "make_feed", "require_server"]
