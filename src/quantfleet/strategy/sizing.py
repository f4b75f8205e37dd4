"""Sizing and risk components a strategy composes (never inherits).

Sizers turn a direction into an order; risk rules veto orders before they are
accepted (a vetoed order is rejected with the rule's reason).
"""

from __future__ import annotations

from dataclasses import dataclass

from quantfleet.core.orders import Order
from quantfleet.strategy.context import Context, Portfolio

__all__ = ["EqualWeight", "FixedFraction", "FixedQuantity", "MaxLeverage", "MaxPosition"]


@dataclass(frozen=True)
class FixedFraction:
    """Hold ``fraction`` of equity in a symbol per unit of direction."""

    fraction: float

    def order(self, ctx: Context, symbol: str, direction: float = 1.0) -> Order | None:
        """Move ``symbol`` to ``direction * fraction`` of equity."""
        return ctx.order_target_percent(symbol, direction * self.fraction)


@dataclass(frozen=True)
class EqualWeight:
    """Split equity equally across the universe."""

    def order(self, ctx: Context, symbol: str, direction: float = 1.0) -> Order | None:
        """Move ``symbol`` to ``direction / len(universe)`` of equity."""
        return ctx.order_target_percent(symbol, direction / max(1, len(ctx.universe)))


@dataclass(frozen=True)
class FixedQuantity:
    """Hold a fixed number of units per unit of direction."""

    quantity: float

    def order(self, ctx: Context, symbol: str, direction: float = 1.0) -> Order | None:
        """Move ``symbol`` to ``direction * quantity`` units."""
        return ctx.order_target_quantity(symbol, direction * self.quantity)


@dataclass(frozen=True)
class MaxPosition:
    """Reject orders that would make one position worth more than ``fraction`` of equity."""

    fraction: float

    def check(self, order: Order, *, price: float, portfolio: Portfolio) -> str | None:
        """Return why ``order`` breaks the limit, or None."""
        held = portfolio.positions.get(order.symbol)
        after = (held.quantity if held else 0.0) + order.remaining
        equity = portfolio.equity
        if equity > 0 and abs(after * price) > self.fraction * equity * (1 + 1e-9):
            return (
                f"position in {order.symbol} would be {abs(after * price) / equity:.1%} of equity, "
                f"above the {self.fraction:.0%} limit"
            )
        return None


@dataclass(frozen=True)
class MaxLeverage:
    """Reject orders that would take gross exposure above ``leverage`` times equity."""

    leverage: float

    def check(self, order: Order, *, price: float, portfolio: Portfolio) -> str | None:
        """Return why ``order`` breaks the limit, or None."""
        held = portfolio.positions.get(order.symbol)
        before = abs(held.quantity * price) if held else 0.0
        after_pos = abs(((held.quantity if held else 0.0) + order.remaining) * price)
        gross = portfolio.gross_exposure - before + after_pos
        equity = portfolio.equity
        if equity <= 0 or gross > self.leverage * equity * (1 + 1e-9):
            ratio = gross / equity if equity > 0 else float("inf")
            return f"gross exposure would be {ratio:.2f}x equity, above {self.leverage:g}x"
        return None
