"""Helpers for tests of the job system: a tiny market, strategy files, waiting on a condition."""

from __future__ import annotations

import os
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

__all__ = [
    "COUNTING_STRATEGY",
    "FIRST_RUN_SLOW",
    "RUN_FOLDER",
    "alive",
    "tiny_market",
    "wait_until",
    "write_strategy",
]

T = TypeVar("T")

RUN_FOLDER = frozenset(
    {
        "equity.parquet", "fills.parquet", "log.txt", "manifest.json", "metrics.json", "orders.parquet",
        "positions.parquet", "tearsheet.html", "trades.parquet",
    }
)  # fmt: skip
"""The artifacts of a backtest job: its whole run folder."""

FIRST_RUN_SLOW = """
import os
import time

_done = False


def run(ctx, counter: str = "", seconds: float = 60.0):
    global _done
    if _done:
        return
    _done = True
    before = open(counter).read().count("\\n") if os.path.exists(counter) else 0
    with open(counter, "a") as f:
        f.write(f"{before} {os.getpid()}\\n")
    if before == 0:
        time.sleep(seconds)  # only the first execution hangs: the fault hits it
"""
"""A strategy whose first execution hangs (so a fault can hit it) and whose later ones finish; each appends
``<executions before> <pid>`` to ``counter``."""


def alive(pid: int) -> bool:
    """Return whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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
