"""The compiled simulator: target-percent orders over plain arrays, with the event engine's arithmetic.

Everything here is a Numba function over NumPy arrays (``*_nb``, compiled once
and cached on disk). :func:`simulate_nb` mirrors, operation for operation, what
:class:`quantfleet.engine.broker.SimBroker` and
:class:`quantfleet.engine.portfolio.SimPortfolio` do for market target orders
(``ctx.order_target_percent``), so both engines agree to rounding:

- ``orders[i, j]`` finite means "on bar ``i`` the strategy calls
  ``order_target_percent(symbol j, orders[i, j])``"; NaN means no call. A new
  order for a symbol cancels its open one. Orders are placed in symbol order
  (with ``zero_first``: the orders whose target is 0 first, then the rest).
- An order fills at the next bar where its symbol has an open (``fill_at_close``:
  this bar's close). It resolves to a quantity there: ``target x equity / price``
  with equity marked at that price (other symbols at their marks), truncated
  to whole units unless ``fractional``, floored at 0 unless ``allow_short``.
- Cash and leverage: a fill may not take gross exposure past ``max_leverage x
  equity`` after its costs; a target order fills what fits and stays open for
  the rest (it tries again on every later bar until it reaches its target).
  Reducing a position always fits.
- Open orders are matched in the order they were placed.

Per-run scratch arrays are allocated once per call, never per bar; the outputs
go into buffers the caller owns, so a sweep reuses them from run to run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = [
    "CANCELLED",
    "COMMISSION_KINDS",
    "FILLED",
    "OPEN",
    "REASON_AT_TARGET",
    "REASON_BY_STRATEGY",
    "SLIPPAGE_KINDS",
    "Books",
    "FillLog",
    "OrderLog",
    "SimSpec",
    "position_orders_nb",
    "simulate_nb",
]

_EPS = 1e-9  # the event engine's tolerance (broker._EPS)

COMMISSION_KINDS = {"none": 0, "per_share": 1, "bps": 2}
SLIPPAGE_KINDS = {"none": 0, "bps": 1, "volume_share": 2}

# Order states in OrderLog.status, and reasons in OrderLog.reason.
OPEN, FILLED, CANCELLED = 0, 1, 2
REASON_AT_TARGET, REASON_BY_STRATEGY = 1, 2


class SimSpec(NamedTuple):
    """The engine settings the kernel needs, as plain numbers (see :func:`quantfleet.engine.vectorized.spec_of`)."""

    cash: float
    max_leverage: float
    fractional: bool
    allow_short: bool
    fill_at_close: bool
    zero_first: bool
    commission_kind: int  # COMMISSION_KINDS
    commission_rate: float  # per unit (per_share) or basis points (bps)
    commission_minimum: float
    slippage_kind: int  # SLIPPAGE_KINDS
    slippage_value: float  # basis points (bps) or impact (volume_share)


class Books(NamedTuple):
    """Per-bar books from the first traded bar on: ``k = i - first``; filled by the kernel."""

    cash: np.ndarray  # (n - first,)
    quantity: np.ndarray  # (n - first, m)
    equity: np.ndarray  # (n - first,), cash + quantity x close marks, summed in symbol order


class FillLog(NamedTuple):
    """One row per fill, in the order they happened (capacity = the arrays' length)."""

    order: np.ndarray  # int64, the order's number (0-based, in placement order)
    bar: np.ndarray  # int64
    asset: np.ndarray  # int64
    quantity: np.ndarray
    price: np.ndarray  # after slippage
    commission: np.ndarray
    slippage: np.ndarray  # cost of slippage, abs(quantity x (price - model price))


class OrderLog(NamedTuple):
    """One row per order, in placement order, with its final state (capacity = the arrays' length)."""

    bar: np.ndarray  # int64, the bar it was placed on
    asset: np.ndarray  # int64
    target: np.ndarray  # target percent of equity
    status: np.ndarray  # int64: OPEN, FILLED, CANCELLED
    reason: np.ndarray  # int64: 0, REASON_AT_TARGET, REASON_BY_STRATEGY
    quantity: np.ndarray  # Order.quantity: what it last resolved to
    filled: np.ndarray
    average_price: np.ndarray


def new_books(n: int, m: int) -> Books:
    """Return output buffers for ``n`` traded bars of ``m`` symbols."""
    return Books(np.zeros(n), np.zeros((n, m)), np.zeros(n))


def new_fill_log(capacity: int) -> FillLog:
    """Return a fill log with room for ``capacity`` fills (0 records none, the kernel still counts them)."""
    i, f = np.zeros(capacity, np.int64), np.zeros
    return FillLog(i, i.copy(), i.copy(), f(capacity), f(capacity), f(capacity), f(capacity))


def new_order_log(capacity: int) -> OrderLog:
    """Return an order log with room for ``capacity`` orders."""
    i, f = np.zeros(capacity, np.int64), np.zeros
    return OrderLog(i, i.copy(), f(capacity), i.copy(), i.copy(), f(capacity), f(capacity), f(capacity))


@njit(cache=True)
def _commission_nb(spec: SimSpec, q: float, price: float) -> float:
    if spec.commission_kind == 1:
        return max(abs(q) * spec.commission_rate, spec.commission_minimum) if q != 0.0 else 0.0
    if spec.commission_kind == 2:
        return abs(q * price) * spec.commission_rate / 10_000
    return 0.0


@njit(cache=True)
def _slipped_nb(spec: SimSpec, price: float, q: float, volume: float) -> float:
    if spec.slippage_kind == 1:
        bps = spec.slippage_value
        return price * (1 + bps / 10_000) if q > 0 else price * (1 - bps / 10_000)
    if spec.slippage_kind == 2:
        share = min(1.0, abs(q) / volume) if volume > 0 else 1.0
        move = spec.slippage_value * share * share
        return price * (1 + move) if q > 0 else price * (1 - move)
    return price


@njit(cache=True)
def _value_nb(qty: np.ndarray, held: np.ndarray, n_held: int, prices: np.ndarray) -> tuple[float, float]:
    """Net and gross value of the positions, summed in the order they were opened (as the event books do)."""
    net = 0.0
    gross = 0.0
    for k in range(n_held):
        j = held[k]
        v = qty[j] * prices[j]
        net += v
        gross += abs(v)
    return net, gross


@njit(cache=True)
def _fits_nb(
    spec: SimSpec, x: float, held: float, others: float, equity: float, price: float, fill_price: float
) -> bool:
    cost = _commission_nb(spec, x, fill_price) + x * (fill_price - price)
    return others + abs(held + x) * price <= spec.max_leverage * (equity - cost) * (1 + _EPS) + _EPS


@njit(cache=True)
def _afford_nb(
    spec: SimSpec,
    q: float,
    j: int,
    cash: float,
    qty: np.ndarray,
    held_list: np.ndarray,
    n_held: int,
    price: float,
    fill_price: float,
    marks: np.ndarray,
) -> float:
    """Return the part of ``q`` that cash and leverage allow (SimBroker._afford for target orders)."""
    held = qty[j]
    if held != 0.0 and abs(held + q) < abs(held) and (held > 0) == (held + q > 0):
        return q  # reducing a position always fits
    mark = marks[j]
    net, gross = _value_nb(qty, held_list, n_held, marks)
    others = gross - abs(held) * mark
    equity = cash + net + held * (price - mark)
    if _fits_nb(spec, q, held, others, equity, price, fill_price):
        return q
    room = (spec.max_leverage * equity - others) / price
    best = np.copysign(max(0.0, room - abs(held)), q) if abs(held + q) > abs(held) else q
    if spec.fractional:
        return _largest_fit_nb(spec, best, held, others, equity, price, fill_price)
    best = np.trunc(best)
    while best != 0 and not _fits_nb(spec, best, held, others, equity, price, fill_price):
        best = np.trunc(best - np.copysign(1.0, best))
    return float(best)


@njit(cache=True)
def _largest_fit_nb(
    spec: SimSpec, best: float, held: float, others: float, equity: float, price: float, fill_price: float
) -> float:
    """Return the fractional quantity nearest ``best`` that fits (the event broker's ``_largest_fit``)."""
    stop = -held if (best > 0) == (-held > 0) and abs(-held) < abs(best) and held != 0 else 0.0
    if not _fits_nb(spec, stop, held, others, equity, price, fill_price):
        return 0.0
    lo, hi = stop, best
    for _ in range(64):
        mid = (lo + hi) / 2
        if mid == lo or mid == hi:  # noqa: SIM109 (numba compiles comparisons, not tuple membership)
            break
        if _fits_nb(spec, mid, held, others, equity, price, fill_price):
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def _remove_nb(arr: np.ndarray, n: int, value: int) -> int:
    """Remove ``value`` from ``arr[:n]`` keeping the order; return the new length."""
    k = 0
    while k < n and arr[k] != value:
        k += 1
    if k == n:
        return n
    for t in range(k, n - 1):
        arr[t] = arr[t + 1]
    return n - 1


@njit(cache=True)
def _close_order_nb(
    log: OrderLog, oid: int, status: int, reason: int, quantity: float, filled: float, avg: float
) -> None:
    if oid < len(log.bar):
        log.status[oid] = status
        log.reason[oid] = reason
        log.quantity[oid] = quantity
        log.filled[oid] = filled
        log.average_price[oid] = avg


@njit(cache=True, nogil=True)
def simulate_nb(
    open_: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    open_marks: np.ndarray,
    close_marks: np.ndarray,
    orders: np.ndarray,
    first: int,
    spec: SimSpec,
    books: Books,
    fills: FillLog,
    order_log: OrderLog,
) -> tuple[int, int]:
    """Simulate target-percent ``orders`` (n, m; NaN = none) from bar ``first``; return (fills, orders) made.

    ``open_``, ``close``, ``volume`` are the bars (NaN where a symbol has no
    bar); ``open_marks``/``close_marks`` the prices positions are marked at
    (carried forward, 0 before a symbol's first bar; see
    ``quantfleet.engine.loop._marks``). The books of bar ``i`` go to
    ``books[i - first]``. Fills and orders beyond the logs' capacity are counted
    but not written: call again with larger logs when a count exceeds it.
    """
    # One function with its state in locals: every call of a compiled helper that
    # takes arrays costs reference counting, which would dominate the per-bar path.
    n, m = close.shape
    zero_first, at_close, fractional = spec.zero_first, spec.fill_at_close, spec.fractional
    fill_cap, order_cap = len(fills.order), len(order_log.bar)
    cash = spec.cash
    qty = np.zeros(m)
    held_list = np.zeros(m, np.int64)  # symbols held, in the order they were opened (the event books' dict)
    n_held = 0
    # Each symbol's open order (at most one: a new target order replaces the old one).
    active = np.zeros(m, np.bool_)
    o_id = np.zeros(m, np.int64)
    o_target = np.zeros(m)
    o_qty = np.zeros(m)  # Order.quantity: what the order last resolved to
    o_filled = np.zeros(m)
    o_avg = np.zeros(m)
    queue = np.zeros(m, np.int64)  # symbols with an open order, in placement order
    n_queue = 0
    snapshot = np.zeros(m, np.int64)
    placing = np.zeros(m, np.int64)
    n_fills = 0
    n_orders = 0
    b_cash, b_qty, b_equity = books.cash, books.quantity, books.equity
    for i in range(first, n):
        busy = n_queue > 0  # most bars have no open order and place none: skip to the books
        if not busy:
            for j in range(m):
                if orders[i, j] == orders[i, j]:
                    busy = True
                    break
        if busy:
            for phase in range(3):  # 0: match at the open; 1: the strategy's orders; 2: match at the close
                if phase == 1:
                    # The strategy's orders of bar i, in symbol order (with zero_first, target 0 first).
                    n_place = 0
                    for j in range(m):
                        t = orders[i, j]
                        if t == t and (t == 0.0 or not zero_first):
                            placing[n_place] = j
                            n_place += 1
                    if zero_first:
                        for j in range(m):
                            t = orders[i, j]
                            if t == t and t != 0.0:
                                placing[n_place] = j
                                n_place += 1
                    for k in range(n_place):
                        j = placing[k]
                        if active[j]:
                            _close_order_nb(
                                order_log, o_id[j], CANCELLED, REASON_BY_STRATEGY, o_qty[j], o_filled[j], o_avg[j]
                            )
                            n_queue = _remove_nb(queue, n_queue, j)
                        active[j] = True
                        o_id[j] = n_orders
                        o_target[j] = orders[i, j]
                        o_qty[j] = 0.0
                        o_filled[j] = 0.0
                        o_avg[j] = 0.0
                        if n_orders < order_cap:
                            order_log.bar[n_orders] = i
                            order_log.asset[n_orders] = j
                            order_log.target[n_orders] = orders[i, j]
                        n_orders += 1
                        queue[n_queue] = j
                        n_queue += 1
                    continue
                if n_queue == 0 or (phase == 2 and not at_close):
                    continue
                prices = open_[i] if phase == 0 else close[i]
                marks = open_marks[i] if phase == 0 else close_marks[i]
                n_snap = n_queue
                for k in range(n_snap):
                    snapshot[k] = queue[k]
                for k in range(n_snap):  # open orders in placement order (SimBroker.process)
                    j = snapshot[k]
                    price = prices[j]
                    if price != price:  # no bar for this symbol now: the order waits
                        continue
                    # Resolve the target at the fill price (SimBroker._resolve).
                    held = qty[j]
                    equity = cash
                    if n_held:
                        equity = cash + _value_nb(qty, held_list, n_held, marks)[0] + held * (price - marks[j])
                    want = o_target[j] * equity / price
                    if not fractional:
                        want = np.trunc(want + (_EPS if want > 0 else -_EPS))
                    if not spec.allow_short:
                        want = max(want, 0.0)
                    need = want - held
                    filled = o_filled[j]
                    if abs(need) < _EPS or need * filled < 0:  # at (or past) the target: done
                        o_qty[j] = filled
                        status, reason = (FILLED, 0) if filled != 0.0 else (CANCELLED, REASON_AT_TARGET)
                        _close_order_nb(order_log, o_id[j], status, reason, filled, filled, o_avg[j])
                        active[j] = False
                        n_queue = _remove_nb(queue, n_queue, j)
                        continue
                    o_qty[j] = filled + need
                    q = o_qty[j] - filled
                    fill_price = price if spec.slippage_kind == 0 else _slipped_nb(spec, price, q, volume[i, j])
                    q = _afford_nb(spec, q, j, cash, qty, held_list, n_held, price, fill_price, marks)
                    if q != 0:
                        # Book the fill (SimBroker._book_fill, SimPortfolio.apply_fill).
                        commission = _commission_nb(spec, q, fill_price)
                        new = held + q
                        if abs(new) < 1e-12:
                            new = 0.0
                        if new == 0.0:
                            n_held = _remove_nb(held_list, n_held, j)
                        elif held == 0.0:
                            held_list[n_held] = j
                            n_held += 1
                        qty[j] = new
                        cash -= q * fill_price + commission
                        total = filled + q
                        o_avg[j] = (o_avg[j] * filled + fill_price * q) / total
                        o_filled[j] = total
                        if n_fills < fill_cap:
                            fills.order[n_fills] = o_id[j]
                            fills.bar[n_fills] = i
                            fills.asset[n_fills] = j
                            fills.quantity[n_fills] = q
                            fills.price[n_fills] = fill_price
                            fills.commission[n_fills] = commission
                            fills.slippage[n_fills] = abs(q * (fill_price - price))
                        n_fills += 1
                        if abs(o_qty[j] - o_filled[j]) < _EPS:
                            _close_order_nb(order_log, o_id[j], FILLED, 0, o_qty[j], o_filled[j], o_avg[j])
                            active[j] = False
                            n_queue = _remove_nb(queue, n_queue, j)
        r = i - first
        b_cash[r] = cash
        value = 0.0
        for j in range(m):
            b_qty[r, j] = qty[j]
            value += qty[j] * close_marks[i, j]
        b_equity[r] = cash + value
    for j in range(m):  # orders still open at the end
        if active[j]:
            _close_order_nb(order_log, o_id[j], OPEN, 0, o_qty[j], o_filled[j], o_avg[j])
    return n_fills, n_orders


@njit(cache=True, nogil=True)
def position_orders_nb(positions: np.ndarray, close: np.ndarray, first: int, weight: float) -> np.ndarray:
    """Return the orders of a position signal: ``positions x weight`` on each bar where the position changes.

    The rule of ``signals()`` strategies in the event engine: from bar
    ``first``, on bars where the symbol has a bar (close not NaN), a position
    that differs from the last one ordered becomes ``order_target_percent(
    position x weight)``; the last one ordered starts at 0.
    """
    n, m = positions.shape
    out = np.full((n, m), np.nan)
    for j in range(m):
        last = 0.0
        for i in range(first, n):
            want = positions[i, j]
            if close[i, j] == close[i, j] and want != last:
                last = want
                out[i, j] = want * weight
    return out
