"""Helpers for tests of the job system: a tiny market, strategy files, waiting on a condition."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from quantfleet.core.settings import Settings
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars

__all__ = ["COUNTING_STRATEGY", "tiny_market", "wait_until", "write_strategy"]

T = TypeVar("T")

COUNTING_STRATEGY = """
import os
import time

_done = False


def run(ctx, tag: int = 0, counter: str = "", seconds: float = 0.0):
    global _done
    if _done:
        return
    _done = True  # once per process: one line per execution
    if counter:
        with open(counter, "a") as f:
            f.write(f"{tag} {os.getpid()}\\n")
    print(f"job {tag} runs in {os.getpid()}", flush=True)
    if seconds:
        time.sleep(seconds)
"""
"""A ``run()`` strategy that appends ``tag pid`` to ``counter`` once per execution, then sleeps ``seconds``."""


def tiny_market(settings: Settings, *, symbols: tuple[str, ...] = ("AAA", "BBB")) -> int:
    """Ingest a quarter of synthetic daily bars into the settings' data store; return the snapshot id."""
    store = MarketDataStore.from_settings(settings)
    if store.latest() is None:
        data = synthetic_bars(list(symbols), start=date(2024, 1, 1), end=date(2024, 3, 31), actions=False)
        store.ingest_bars([data.bars], frequency="1d", source="test")
    return int(store.resolve(None))


def write_strategy(folder: Path, name: str, source: str) -> Path:
    """Write a strategy file (dedented) and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def wait_until(condition: Callable[[], T], *, timeout: float = 30.0, what: str = "the condition") -> T:
    """Return ``condition()``'s first true value, polling every 20 ms; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        pause.wait(0.02)
