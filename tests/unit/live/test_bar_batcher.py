"""Bars arriving one symbol at a time become one batch per timestamp; repeats and late bars are dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from quantfleet.live.mqtt import BarBatcher, bar_topic
from quantfleet.testing.live import random_walk_bars


def test_batches_per_timestamp() -> None:
    """A timestamp is handed on when every symbol has a bar at it, or when a later bar shows it is over."""
    day = random_walk_bars(("A", "B"), datetime(2024, 1, 2, 14, 30, tzinfo=UTC), n=3)
    batcher = BarBatcher(("A", "B"))
    assert batcher.add(day[0]["A"]) == []
    ((ts, bars),) = batcher.add(day[0]["B"])
    assert ts == day[0]["A"].ts_us
    assert set(bars) == {"A", "B"}
    assert batcher.add(day[0]["B"]) == []  # a QoS 1 redelivery
    assert batcher.add(day[1]["A"]) == []
    ((ts1, only_a),) = batcher.add(day[2]["A"])  # B never sent its bar 1: bar 1 goes on without it
    assert ts1 == day[1]["A"].ts_us
    assert set(only_a) == {"A"}
    assert batcher.add(day[1]["B"]) == []  # late: its timestamp was handed on already


def test_topics() -> None:
    """Bars live on quantfleet/bars/{frequency}/{symbol}."""
    assert bar_topic("1min", "AAPL") == "quantfleet/bars/1m/AAPL"
