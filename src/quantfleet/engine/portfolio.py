"""Portfolio accounting: cash, positions at average cost, realized and unrealized P&L.

Average cost: buying into a long (or selling into a short) moves the average
cost; reducing a position realizes ``closed quantity x (price - average cost)``
and leaves the average unchanged; crossing through zero closes the old side
and opens the new one at the fill price. Commissions are paid from cash and
are not part of the average cost. Splits scale quantity and average cost;
cash dividends are credited (or, on shorts, charged) on the ex-date.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from quantfleet.core.orders import Position

__all__ = ["SimPortfolio"]


class SimPortfolio:
    """The simulator's books; implements :class:`quantfleet.strategy.Portfolio`."""

    def __init__(self, symbols: tuple[str, ...], cash: float, close: np.ndarray, cursor: list[int]) -> None:
        self._symbols = symbols
        self._cash = cash
        self._close = close  # (n, m) closes, carried forward, 0 before a symbol's first bar
        self._cursor = cursor
        self.quantity = np.zeros(len(symbols))
        self._held: dict[int, float] = {}  # symbol index -> non-zero quantity
        self._positions: dict[str, Position] = {}
        self.commission_paid = 0.0
        self.slippage_paid = 0.0
        self.dividends = 0.0
        self.realized_pnl = 0.0

    # -- the Portfolio protocol ------------------------------------------------

    @property
    def cash(self) -> float:
        """Return cash (negative when borrowing)."""
        return self._cash

    def prices(self) -> np.ndarray:
        """Return the mark price of each symbol at the current bar's close (NaN before the first bar)."""
        i = self._cursor[0]
        row: np.ndarray = self._close[i] if i >= 0 else np.full(len(self._symbols), np.nan)
        return row

    def value(self, prices: np.ndarray) -> tuple[float, float]:
        """Return the net and gross market value of the positions at ``prices``."""
        held = self._held
        if len(held) <= 16:  # a few positions: plain floats beat NumPy's call overhead
            net = gross = 0.0
            for j, q in held.items():
                v = q * prices.item(j)
                net += v
                gross += abs(v)
            return net, gross
        v = self.quantity * prices
        return float(v.sum()), float(np.abs(v).sum())

    @property
    def equity(self) -> float:
        """Return cash plus the market value of every position at the current close."""
        if not self._held:
            return self._cash
        return self._cash + self.value(self.prices())[0]

    @property
    def positions(self) -> Mapping[str, Position]:
        """Return open positions, marked at the current close."""
        prices = self.prices()
        index = {s: j for j, s in enumerate(self._symbols)}
        for symbol, pos in self._positions.items():
            pos.last_price = float(prices[index[symbol]])
        return dict(self._positions)

    @property
    def gross_exposure(self) -> float:
        """Return the sum of absolute position values."""
        return self.value(self.prices())[1] if self._held else 0.0

    @property
    def net_exposure(self) -> float:
        """Return the sum of signed position values."""
        return self.value(self.prices())[0] if self._held else 0.0

    @property
    def leverage(self) -> float:
        """Return gross exposure over equity."""
        equity = self.equity
        return self.gross_exposure / equity if equity > 0 else float("inf")

    # -- bookkeeping ---------------------------------------------------------

    def restore(self, cash: float, positions: Mapping[str, Position]) -> None:
        """Set the books to ``cash`` and ``positions`` (a paper account read back from its database)."""
        index = {s: j for j, s in enumerate(self._symbols)}
        for symbol, held in positions.items():
            if held.quantity:
                j = index[symbol]
                self._positions[symbol] = Position(symbol, held.quantity, held.average_cost, held.realized_pnl)
                self.quantity[j] = held.quantity
                self._held[j] = held.quantity
        self._cash = cash

    def equity_at(self, j: int, price: float, prices: np.ndarray) -> float:
        """Return equity with symbol ``j`` marked at ``price`` and the rest at ``prices``."""
        if not self._held:
            return self._cash
        mark: float = prices.item(j)
        return self._cash + self.value(prices)[0] + self._held.get(j, 0.0) * (price - mark)

    def apply_fill(self, j: int, quantity: float, price: float, commission: float, slippage: float) -> None:
        """Book a fill of ``quantity`` (signed) units of symbol ``j`` at ``price``."""
        symbol = self._symbols[j]
        pos = self._positions.get(symbol) or Position(symbol)
        old = pos.quantity
        new = old + quantity
        if old == 0 or (old > 0) == (quantity > 0):
            pos.average_cost = (old * pos.average_cost + quantity * price) / new
        else:
            closed = min(abs(quantity), abs(old))
            pnl = closed * (price - pos.average_cost) * (1 if old > 0 else -1)
            pos.realized_pnl += pnl
            self.realized_pnl += pnl
            if abs(quantity) > abs(old):  # crossed through zero
                pos.average_cost = price
        if abs(new) < 1e-12:
            new = 0.0
        pos.quantity = new
        self.quantity[j] = new
        if new:
            self._held[j] = new
        else:
            self._held.pop(j, None)
        self._cash -= quantity * price + commission
        self.commission_paid += commission
        self.slippage_paid += slippage
        if new == 0.0:
            self._positions.pop(symbol, None)
        else:
            self._positions[symbol] = pos

    def split(self, j: int, ratio: float) -> None:
        """Apply a split of ``ratio`` new units per old unit to symbol ``j``."""
        pos = self._positions.get(self._symbols[j])
        if pos is None:
            return
        pos.quantity *= ratio
        pos.average_cost /= ratio
        self.quantity[j] = pos.quantity
        self._held[j] = pos.quantity

    def dividend(self, j: int, amount: float) -> float:
        """Credit (or charge, on a short) ``amount`` per unit of symbol ``j``; return the cash moved."""
        cash = self._held.get(j, 0.0) * amount
        self._cash += cash
        self.dividends += cash
        return float(cash)

    def position(self, j: int) -> float:
        """Return the signed quantity held of symbol ``j``."""
        return self._held.get(j, 0.0)
