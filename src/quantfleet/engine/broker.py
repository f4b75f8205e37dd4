"""The simulated broker: accepts orders, matches them against bars, books fills.

Fill rules (see also :mod:`quantfleet.engine.config`):

- market: the next bar's open (or, with ``fill_at="close"``, this bar's close);
- limit buy: the open if it is at or below the limit, else the limit if the
  low reaches it (sells mirror this);
- stop buy: triggers when the high reaches the stop and fills at the stop, or
  at the open when the open gaps above it (sells mirror this);
- stop-limit: triggers like a stop, then fills like a limit; on the bar that
  triggers intrabar it fills only if the limit is at least as good as the stop;
- with ``volume_limit`` an order takes at most that share of a bar's volume;
  the rest stays open (partial fills);
- target orders (``order_target_*``) resolve to a quantity at fill time, at
  the fill price; if cash or leverage do not allow all of it, they fill what
  they can. Orders with an explicit quantity are rejected instead, with the
  reason.
- day orders expire at the end of the session they first could fill in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np

from quantfleet.core.orders import Fill, Order, OrderStatus, OrderType, Target, TimeInForce
from quantfleet.core.types import US_PER_DAY
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.feed import Feed
from quantfleet.engine.portfolio import SimPortfolio
from quantfleet.strategy.context import RiskRule

__all__ = ["SimBroker"]

_EPS = 1e-9


class SimBroker:
    """Order book and matching engine of one backtest."""

    def __init__(
        self,
        feed: Feed,
        config: EngineConfig,
        portfolio: SimPortfolio,
        *,
        on_fill: Callable[[Fill], None],
        record: Callable[[int, SimPortfolio], None],
        open_marks: np.ndarray,
        close_marks: np.ndarray,
    ) -> None:
        self._feed = feed
        self._cfg = config
        self._book = portfolio
        self._on_fill = on_fill
        self._record = record
        self._ts = feed.ts
        self._index = {s: j for j, s in enumerate(feed.symbols)}
        f = feed.fields
        self._o, self._h, self._l, self._c, self._v = f["open"], f["high"], f["low"], f["close"], f["volume"]
        self._days = feed.ts // US_PER_DAY
        # Other positions are marked at prices known when a fill happens: this bar's
        # open for fills at the open, its close for fills at the close (never later).
        self._open_marks, self._close_marks = open_marks, close_marks
        self._volume_limit = config.volume_limit
        self._no_slippage = config.slippage.kind == "none"
        self.open: list[Order] = []
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        self.rules: list[RiskRule] = []
        self._expires: dict[int, int] = {}
        self._next_id = 1

    # -- submission ------------------------------------------------------------

    def submit(self, order: Order, i: int, mark: float) -> Order:
        """Accept ``order`` placed at bar ``i`` (``mark`` is the price it is judged at), or reject it."""
        order.id = self._next_id
        self._next_id += 1
        self.orders.append(order)
        reason = self._check(order, mark)
        if reason:
            order.status, order.reason = OrderStatus.REJECTED, reason
            return order
        if order.tif is TimeInForce.DAY:
            first = i + 1 if self._cfg.fill_at == "next_open" or order.type is not OrderType.MARKET else i
            self._expires[order.id] = int(self._days[min(first, len(self._days) - 1)])
        self.open.append(order)
        return order

    def resume(self, order: Order, *, expires_day: int | None = None) -> None:
        """Take back an order accepted earlier (a paper account's open order), keeping its id and state.

        ``expires_day`` (UTC days since 1970) is the last day a day order may fill in.
        """
        self.orders.append(order)
        self.open.append(order)
        if expires_day is not None:
            self._expires[order.id] = expires_day
        self._next_id = max(self._next_id, order.id + 1)

    def _check(self, order: Order, mark: float) -> str:
        if order.symbol not in self._index:
            return f"{order.symbol} is not in the universe ({', '.join(self._feed.symbols[:10])})"
        for name in ("limit_price", "stop_price"):
            value = getattr(order, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                return f"{name.replace('_', ' ')} must be a positive number, got {value}"
        if order.target is None:
            if not math.isfinite(order.quantity) or order.quantity == 0:
                return f"quantity must be a non-zero number, got {order.quantity}"
            if not self._cfg.fractional and not float(order.quantity).is_integer():
                return f"quantity {order.quantity} is fractional; trade whole units or set fractional=True"
            held = self._book.position(self._index[order.symbol])
            if not self._cfg.allow_short and held + order.quantity < -_EPS:
                return f"shorting is disabled: selling {-order.quantity:g} {order.symbol} with {held:g} held"
        if math.isfinite(mark):
            for rule in self.rules:
                reason = rule.check(order, price=mark, portfolio=self._book)
                if reason:
                    return reason
        return ""

    def cancel(self, order: Order) -> None:
        """Cancel ``order`` if it is still open."""
        if order.status is OrderStatus.OPEN:
            order.status = OrderStatus.CANCELLED
            order.reason = order.reason or "cancelled by the strategy"
            self.open.remove(order)

    # -- matching --------------------------------------------------------------

    def process(self, i: int, *, at_close: bool = False) -> None:
        """Match open orders against bar ``i`` (only market orders when ``at_close``)."""
        expires = self._expires
        day = self._days.item(i) if expires else 0
        for order in list(self.open):
            if expires:
                expiry = expires.get(order.id)
                if expiry is not None and day > expiry:
                    self._done(order, OrderStatus.EXPIRED, "day order not filled by the end of its session")
                    continue
            if at_close and order.type is not OrderType.MARKET:
                continue
            j = self._index[order.symbol]
            o = self._c.item(i, j) if at_close else self._o.item(i, j)
            if o != o:  # no bar for this symbol now (NaN)
                continue
            self._try_fill(order, i, j, o, self._close_marks[i] if at_close else self._open_marks[i])

    def _price(self, order: Order, buy: bool, i: int, j: int, o: float) -> float | None:
        if order.type is OrderType.MARKET:
            return o
        h, low = self._h.item(i, j), self._l.item(i, j)
        if order.type in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.stop_triggered:
            stop = order.stop_price
            assert stop is not None
            if (buy and o >= stop) or (not buy and o <= stop):
                order.stop_triggered = True
                if order.type is OrderType.STOP:
                    return o
            elif (buy and h >= stop) or (not buy and low <= stop):
                order.stop_triggered = True
                if order.type is OrderType.STOP:
                    return stop
                limit = order.limit_price
                assert limit is not None
                ok = limit >= stop if buy else limit <= stop
                return stop if ok else None
            else:
                return None
        limit = order.limit_price
        if limit is None:  # a stop triggered earlier (its rest left by a volume limit) trades as a market order
            return o
        if buy:
            return o if o <= limit else (limit if low <= limit else None)
        return o if o >= limit else (limit if h >= limit else None)

    def _resolve(self, order: Order, j: int, price: float, prices: np.ndarray) -> float:
        """Return the signed quantity a target order still needs at ``price``."""
        held = self._book.position(j)
        if order.target is Target.QUANTITY:
            want = order.target_value
        else:
            value = order.target_value
            if order.target is Target.PERCENT:
                value *= self._book.equity_at(j, price, prices)
            want = value / price
        if not self._cfg.fractional:
            want = float(math.trunc(want + (_EPS if want > 0 else -_EPS)))
        if not self._cfg.allow_short:
            want = max(want, 0.0)
        return want - held

    def _try_fill(self, order: Order, i: int, j: int, o: float, prices: np.ndarray) -> None:
        if order.target is not None:
            qty = self._resolve(order, j, o if order.type is OrderType.MARKET else (order.limit_price or o), prices)
            filled = order.filled_quantity
            if abs(qty) < _EPS or qty * filled < 0:
                # At (or, after prices moved, past) the target: a part-filled order is done.
                order.quantity = filled
                if filled:
                    self._done(order, OrderStatus.FILLED, "")
                else:
                    self._done(order, OrderStatus.CANCELLED, "already at target")
                return
            order.quantity = filled + qty
        if order.type is OrderType.MARKET:
            price = o
        else:
            matched = self._price(order, order.remaining > 0, i, j, o)
            if matched is None:
                return
            price = matched
        qty = order.remaining
        volume = self._v.item(i, j)
        if self._volume_limit is not None:
            cap = self._volume_limit * volume
            cap = cap if self._cfg.fractional else math.floor(cap)
            if cap <= 0:
                return
            qty = math.copysign(min(abs(qty), cap), qty)
        fill_price = price if self._no_slippage else self._cfg.slippage.price(price, qty, volume)
        qty, reason = self._afford(order, j, qty, price, fill_price, prices)
        if reason:
            self._done(order, OrderStatus.REJECTED, reason)
            return
        if qty == 0:
            return
        self._book_fill(order, i, j, qty, price, fill_price)

    def _afford(
        self, order: Order, j: int, qty: float, price: float, fill_price: float, prices: np.ndarray
    ) -> tuple[float, str]:
        """Return the quantity that cash and leverage allow; a reason when an explicit order must be rejected."""
        held = self._book.position(j)
        if held and abs(held + qty) < abs(held) and (held > 0) == (held + qty > 0):
            return qty, ""  # reducing a position always fits
        limit = self._cfg.max_leverage
        book = self._book
        mark = prices.item(j)
        net, gross = book.value(prices)
        others = gross - abs(held) * mark
        equity = book.cash + net + held * (price - mark)
        commission = self._cfg.commission

        def fits(x: float) -> bool:
            cost = commission.cost(x, fill_price) + x * (fill_price - price)
            return bool(others + abs(held + x) * price <= limit * (equity - cost) * (1 + _EPS) + _EPS)

        if fits(qty):
            return qty, ""
        if order.target is None:
            need = qty * fill_price + self._cfg.commission.cost(qty, fill_price)
            return 0.0, (
                f"insufficient buying power: {'buying' if qty > 0 else 'selling'} {abs(qty):g} {order.symbol} at "
                f"{fill_price:,.4f} needs {abs(need):,.2f} with cash {book.cash:,.2f}, equity {equity:,.2f} "
                f"and max leverage {limit:g}"
            )
        # A target order fills what buying power allows.
        room = (limit * equity - others) / price
        best = math.copysign(max(0.0, room - abs(held)), qty) if abs(held + qty) > abs(held) else qty
        if self._cfg.fractional:
            return _largest_fit(fits, best, held), ""
        best = float(math.trunc(best))
        while best != 0 and not fits(best):
            best = float(math.trunc(best - math.copysign(1.0, best)))
        return best, ""

    def _book_fill(self, order: Order, i: int, j: int, qty: float, price: float, fill_price: float) -> None:
        commission = self._cfg.commission.cost(qty, fill_price)
        slippage = abs(qty * (fill_price - price))
        self._book.apply_fill(j, qty, fill_price, commission, slippage)
        total = order.filled_quantity + qty
        order.average_price = (order.average_price * order.filled_quantity + fill_price * qty) / total
        order.filled_quantity = total
        fill = Fill(order.id, order.symbol, self._ts.item(i), qty, fill_price, commission, slippage)
        self.fills.append(fill)
        self._record(i, self._book)
        if abs(order.remaining) < _EPS:
            self._done(order, OrderStatus.FILLED, "")
        self._on_fill(fill)

    def _done(self, order: Order, status: OrderStatus, reason: str) -> None:
        order.status, order.reason = status, reason
        with contextlib.suppress(ValueError):  # not open (e.g. rejected on submission)
            self.open.remove(order)

    def split(self, j: int, ratio: float) -> None:
        """Adjust open orders of symbol ``j`` for a split."""
        symbol = self._feed.symbols[j]
        for order in self.open:
            if order.symbol == symbol:
                if order.target is None:
                    order.quantity *= ratio
                    order.filled_quantity *= ratio
                elif order.target is Target.QUANTITY:
                    order.target_value *= ratio
                if order.limit_price is not None:
                    order.limit_price /= ratio
                if order.stop_price is not None:
                    order.stop_price /= ratio


def _largest_fit(fits: Callable[[float], bool], best: float, held: float) -> float:
    """Return the fractional quantity nearest ``best`` (on the way to 0) that ``fits``; 0 if none.

    On the way from ``best`` towards 0 the position first shrinks (until it is
    flat, at ``-held``, when ``best`` reverses it) and then grows again, so the
    part worth searching is from ``best`` to the flat point (or to 0), where
    fitting only gets easier: a bisection of 64 steps finds its edge. The
    vectorized kernel does the same arithmetic (``_largest_fit_nb``).
    """
    stop = -held if (best > 0) == (-held > 0) and abs(-held) < abs(best) and held != 0 else 0.0
    if not fits(stop):
        return 0.0
    lo, hi = stop, best  # fits(lo), not fits(hi)
    for _ in range(64):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo
