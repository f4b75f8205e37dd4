"""``ctx`` in live and paper trading, kept in :mod:`quantfleet.engine.live.context` (the sandboxed child builds it).

Re-exported here, where the live service's code has always imported it from.
"""

from quantfleet.engine.live.context import BarHistory, LiveBars, LiveContext, LivePortfolio, OrderRouter

__all__ = ["BarHistory", "LiveBars", "LiveContext", "LivePortfolio", "OrderRouter"]
