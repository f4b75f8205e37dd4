"""Learn which data a strategy subscribes to before loading any, so a run loads only that.

The strategy's ``initialize`` runs once against a recording context: its
``ctx.subscribe`` calls are noted, and its first reach for data (an
indicator, history, the portfolio, an order) ends the probe. The run then
loads exactly the subscribed symbols and frequency and starts over with a
fresh strategy instance, so nothing from the probe carries into the run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantfleet.core.errors import UserError
from quantfleet.core.types import Frequency

__all__ = ["Subscriptions", "probe_subscriptions"]


class _ProbeDone(Exception):
    """Raised inside the probe when the strategy reaches for data: subscriptions are complete."""


@dataclass
class Subscriptions:
    """What a strategy asked for in ``initialize`` (empty: the whole universe at the run's frequency)."""

    symbols: list[str] = field(default_factory=list)
    frequency: Frequency | None = None
    fields: set[str] = field(default_factory=set)


class _RecordingContext:
    """A context that records ``subscribe`` and stops at anything else."""

    def __init__(self, universe: Sequence[str]) -> None:
        self.universe = tuple(universe)
        self.log = logging.getLogger("quantfleet.strategy.probe")
        self.log.disabled = True
        self.random = np.random.default_rng(0)
        self.subscriptions = Subscriptions()

    def subscribe(
        self, symbols: Sequence[str] | str, *, frequency: str | None = None, fields: Sequence[str] | None = None
    ) -> None:
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        subs = self.subscriptions
        for name in names:
            if name not in subs.symbols:
                subs.symbols.append(name)
        if frequency is not None:
            freq = Frequency.parse(frequency)
            if subs.frequency is not None and subs.frequency is not freq:
                raise UserError(
                    f"the strategy subscribes to both {subs.frequency.value} and {freq.value} bars; "
                    "one run uses one frequency"
                )
            subs.frequency = freq
        subs.fields.update(fields or ())

    def __getattr__(self, name: str) -> Any:
        raise _ProbeDone(name)


def probe_subscriptions(strategy: Any, universe: Sequence[str]) -> Subscriptions:
    """Run ``strategy.initialize`` against a recording context and return its subscriptions."""
    ctx = _RecordingContext(universe)
    with contextlib.suppress(_ProbeDone):
        strategy.initialize(ctx)
    return ctx.subscriptions
