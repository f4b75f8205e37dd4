"""One compiled call per combination: orders from positions, the simulator, and the leaderboard's metrics.

A vectorized sweep spends most of a combination's time outside the strategy:
turning positions into orders, simulating, scoring. Done as separate NumPy
and Numba calls, each allocates its output afresh (fresh pages of a large
array cost more than the arithmetic that fills them) and each returns to
Python. :func:`score_positions_nb` and :func:`score_orders_nb` do it all in
one call, into buffers the evaluator reuses from one combination to the next,
and read the books once for the trade count and the exposure.

The numbers are those of the separate calls, to the last bit: the orders are
:func:`~quantfleet.engine.vectorized.kernels.position_orders_nb`'s rule, the
books come from :func:`~quantfleet.engine.vectorized.kernels.simulate_nb`
itself, the headline metrics from :func:`~quantfleet.analytics.headline.headline_nb`
itself; the tests compare them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from quantfleet.analytics._common import MAX_RETURN
from quantfleet.analytics.headline import HEADLINE_KEYS, headline_nb
from quantfleet.engine.vectorized.kernels import (
    _EPS,
    Books,
    FillLog,
    OrderLog,
    SimSpec,
    _commission_nb,
    _fits_nb,
    _largest_fit_nb,
    _slipped_nb,
    simulate_nb,
)

__all__ = ["SCORE_KEYS", "round_trips_nb", "score_one_nb", "score_orders_nb", "score_positions_nb"]

SCORE_KEYS = (*HEADLINE_KEYS, "trades", "exposure")
"""What the scoring kernels write into ``out``, in this order."""

_N_HEADLINE = len(HEADLINE_KEYS)


@njit(cache=True, nogil=True)
def round_trips_nb(quantity: np.ndarray) -> int:
    """Return how many round trips closed: a position that went flat or reversed (as the trades table counts)."""
    n, m = quantity.shape
    count = 0
    for j in range(m):
        held = 0.0
        for i in range(n):
            q = quantity[i, j]
            if held != 0.0 and (q == 0.0 or (q > 0.0) != (held > 0.0)):
                count += 1
            held = q
    return count


@njit(cache=True, nogil=True)
def _books_score_nb(quantity: np.ndarray, out: np.ndarray) -> None:
    """Write the round trips and the exposure (share of bars holding anything; NaN with no bars) after the headline."""
    n, m = quantity.shape
    out[_N_HEADLINE] = round_trips_nb(quantity)
    held_bars = 0
    for i in range(n):
        for j in range(m):
            if quantity[i, j] != 0.0:
                held_bars += 1
                break
    out[_N_HEADLINE + 1] = held_bars / n if n else np.nan


@njit(cache=True, nogil=True)
def score_orders_nb(
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
    periods_per_year: float,
    out: np.ndarray,
) -> None:
    """Simulate ``orders`` (as :func:`simulate_nb`) into ``books`` and write :data:`SCORE_KEYS` into ``out``."""
    simulate_nb(open_, close, volume, open_marks, close_marks, orders, first, spec, books, fills, order_log)
    headline_nb(books.equity, periods_per_year, out[:_N_HEADLINE])
    _books_score_nb(books.quantity, out)


@njit(cache=True, nogil=True)
def score_positions_nb(
    positions: np.ndarray,
    weight: float,
    orders: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    open_marks: np.ndarray,
    close_marks: np.ndarray,
    first: int,
    spec: SimSpec,
    books: Books,
    fills: FillLog,
    order_log: OrderLog,
    periods_per_year: float,
    out: np.ndarray,
) -> None:
    """Turn ``positions`` into orders in ``orders`` (overwritten), then :func:`score_orders_nb`.

    The orders are ``position_orders_nb(positions, close, first, weight)``'s: from
    bar ``first``, where the symbol has a bar and the position differs from the
    last one ordered, ``position x weight``; NaN elsewhere.
    """
    n, m = positions.shape
    for i in range(min(first, n)):
        for j in range(m):
            orders[i, j] = np.nan
    for j in range(m):
        last = 0.0
        for i in range(first, n):
            want = positions[i, j]
            if close[i, j] == close[i, j] and want != last:
                last = want
                orders[i, j] = want * weight
            else:
                orders[i, j] = np.nan
    score_orders_nb(
        open_, close, volume, open_marks, close_marks, orders, first, spec, books, fills, order_log,
        periods_per_year, out,
    )  # fmt: skip


_MAX_LOG = 709.0  # exp() above this overflows a float64 (as headline_nb)


@njit(cache=True)
def _afford_one_nb(
    spec: SimSpec, q: float, cash: float, held: float, price: float, fill_price: float, mark: float
) -> float:
    """Return the part of ``q`` that cash and leverage allow: ``_afford_nb`` for a book of one symbol."""
    if held != 0.0 and abs(held + q) < abs(held) and (held > 0) == (held + q > 0):
        return q  # reducing a position always fits
    net = 0.0
    gross = 0.0
    if held != 0.0:  # the one symbol is held (_value_nb over a held list of one)
        v = held * mark
        net += v
        gross += abs(v)
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


class _Moments(NamedTuple):
    """The headline metrics' first-pass state (headline_nb's locals), carried through score_one_nb."""

    kept: int  # returns kept (finite, within MAX_RETURN): headline_nb's count
    nans: int  # returns dropped (NaN in rets)
    total: float
    positive: int
    wealth: float
    peak: float
    mdd: float
    floor: float  # peak x (1 + mdd): only a wealth below it can deepen the drawdown


_BLOCK = 32  # bars scanned at once for the end of a flat stretch (a vectorized comparison, no branch per bar)


@njit(cache=True, nogil=True)
def score_one_nb(
    positions: np.ndarray,
    weight: float,
    open_: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    open_marks: np.ndarray,
    close_marks: np.ndarray,
    first: int,
    spec: SimSpec,
    periods_per_year: float,
    rets: np.ndarray,
    out: np.ndarray,
    finite_marks: bool = False,
) -> None:
    """:func:`score_positions_nb` for one symbol, in one pass over the bars, to the last bit.

    Every argument is one symbol's (n,) array; ``rets`` is scratch of at least
    ``n - first`` values. The simulator's arithmetic for a book of one symbol
    (at most one open order, the symbol held or not) with its state in
    registers, and the headline metrics' first pass fused into the same loop:
    nothing is written per bar but the returns the second pass needs. The
    tests check it against :func:`score_positions_nb` over random books and settings.

    Between orders nothing moves but the marks, so the bars from one order to
    the next are walked without the simulator. Flat, with ``finite_marks``
    (every close mark finite: ``np.isfinite(close_marks).all()``, which the
    caller knows once per window), such a bar's equity is the cash again and
    its return exactly 0, which leaves every sum, the wealth and the drawdown
    as they were: those bars are only counted, a block at a time.
    """
    n = len(close)
    cash = spec.cash
    qty = 0.0
    last = 0.0  # the position last ordered
    active = False  # an open order
    o_target = 0.0
    o_qty = 0.0
    o_filled = 0.0
    # The headline metrics' first pass (headline_nb), bar by bar.
    m = _Moments(0, 0, 0.0, 0, 1.0, 1.0, 0.0, 1.0)
    prev = 0.0  # the last bar's equity
    prev_qty = 0.0  # the last bar's position
    # The trades and exposure (round_trips_nb, the bars holding a position).
    trips = 0
    held_bars = 0
    i = first
    while i < n:
        # A bar that may place an order, or with one open: the simulator's step, then the books.
        want_pos = positions[i]
        t = np.nan
        if close[i] == close[i] and want_pos != last:
            last = want_pos
            t = want_pos * weight
        if active or t == t:
            cash, qty, active, o_target, o_qty, o_filled = _bar_one_nb(
                spec, t, cash, qty, active, o_target, o_qty, o_filled,
                open_[i], close[i], open_marks[i], close_marks[i], volume[i],
            )  # fmt: skip
        if qty != 0.0:
            held_bars += 1
        equity = cash + (0.0 + qty * close_marks[i])
        if i > first:
            if prev_qty != 0.0 and (qty == 0.0 or (qty > 0.0) != (prev_qty > 0.0)):
                trips += 1
            m = _moment_nb(m, equity, prev, rets, i - first - 1)
        prev_qty = qty
        prev = equity
        i += 1
        if active:
            continue
        # Quiet bars up to the next one that may place an order: cash and position stay as they are
        # (and no trade closes: the position does not change).
        if finite_marks and qty == 0.0 and prev == cash and 0 < cash < np.inf:
            j = i
            while j + _BLOCK <= n:
                stop = False
                for k in range(j, j + _BLOCK):
                    stop |= positions[k] != last
                if stop:
                    break
                j += _BLOCK
            while j < n and positions[j] == last:
                j += 1
            rets[i - first - 1 : j - first - 1] = 0.0
            m = _Moments(m.kept + (j - i), m.nans, m.total, m.positive, m.wealth, m.peak, m.mdd, m.floor)
            i = j
            continue
        start = i
        i, prev, m = _quiet_nb(positions, close, close_marks, rets, i, first, last, cash, qty, prev, m)
        if qty != 0.0:
            held_bars += i - start
    n_bars = n - first if n > first else 0
    out[_N_HEADLINE] = trips
    out[_N_HEADLINE + 1] = held_bars / n_bars if n_bars else np.nan
    _headline_finish_nb(out, n_bars, prev, m, rets, periods_per_year)


@njit(cache=True)
def _moment_nb(m: _Moments, equity: float, prev: float, rets: np.ndarray, k: int) -> _Moments:
    """Add the return from ``prev`` to ``equity`` as headline_nb's first pass does; write it to ``rets[k]``."""
    r = equity / prev - 1.0 if prev > 0 else np.nan
    if not abs(r) <= MAX_RETURN:
        rets[k] = np.nan
        return _Moments(m.kept, m.nans + 1, m.total, m.positive, m.wealth, m.peak, m.mdd, m.floor)
    rets[k] = r
    wealth = m.wealth * max(1.0 + r, 0.0)
    peak, mdd, floor = m.peak, m.mdd, m.floor
    if wealth > peak:
        peak = wealth
        floor = peak * (1.0 + mdd)
    elif wealth < floor and peak > 0:
        mdd = wealth / peak - 1.0 if wealth > 0 else -1.0
        floor = peak * (1.0 + mdd)
    return _Moments(m.kept + 1, m.nans, m.total + r, m.positive + (1 if r > 0 else 0), wealth, peak, mdd, floor)


@njit(cache=True, nogil=True)
def _quiet_nb(
    positions: np.ndarray,
    close: np.ndarray,
    close_marks: np.ndarray,
    rets: np.ndarray,
    i: int,
    first: int,
    last: float,
    cash: float,
    qty: float,
    prev: float,
    m: _Moments,
) -> tuple[int, float, _Moments]:
    """Walk the bars from ``i`` that place no order (no order is open); return the next bar, its equity, the state.

    Kept out of score_one_nb's body (state in, state out), as _bar_one_nb is, so that this loop,
    where a held position spends its bars, carries nothing of the simulator's.
    """
    n = len(close)
    while i < n and (positions[i] == last or close[i] != close[i]):
        equity = cash + (0.0 + qty * close_marks[i])
        m = _moment_nb(m, equity, prev, rets, i - first - 1)
        prev = equity
        i += 1
    return i, prev, m


@njit(cache=True, nogil=True)
def _bar_one_nb(
    spec: SimSpec,
    t: float,
    cash: float,
    qty: float,
    active: bool,
    o_target: float,
    o_qty: float,
    o_filled: float,
    open_price: float,
    close_price: float,
    open_mark: float,
    close_mark: float,
    volume: float,
) -> tuple[float, float, bool, float, float, float]:
    """One busy bar of a one-symbol book (an open order, or a new one): simulate_nb's three phases.

    Kept out of :func:`score_one_nb`'s loop (scalars in, scalars out), so the quiet bars' path stays small.
    """
    fractional, allow_short, at_close = spec.fractional, spec.allow_short, spec.fill_at_close
    for phase in range(3):  # 0: match at the open; 1: the strategy's order; 2: match at the close
        if phase == 1:
            if t == t:  # a new target order replaces the open one
                active = True
                o_target = t
                o_qty = 0.0
                o_filled = 0.0
            continue
        if not active or (phase == 2 and not at_close):
            continue
        price = open_price if phase == 0 else close_price
        mark = open_mark if phase == 0 else close_mark
        if price != price:  # no bar now: the order waits
            continue
        held = qty
        equity = cash
        if held != 0.0:
            equity = cash + (0.0 + held * mark) + held * (price - mark)
        want = o_target * equity / price
        if not fractional:
            want = np.trunc(want + (_EPS if want > 0 else -_EPS))
        if not allow_short:
            want = max(want, 0.0)
        need = want - held
        filled = o_filled
        if abs(need) < _EPS or need * filled < 0:  # at (or past) the target: done
            active = False
            continue
        o_qty = filled + need
        q = o_qty - filled
        fill_price = price if spec.slippage_kind == 0 else _slipped_nb(spec, price, q, volume)
        q = _afford_one_nb(spec, q, cash, held, price, fill_price, mark)
        if q != 0:
            commission = _commission_nb(spec, q, fill_price)
            new = held + q
            if abs(new) < 1e-12:
                new = 0.0
            qty = new
            cash -= q * fill_price + commission
            o_filled = filled + q
            if abs(o_qty - o_filled) < _EPS:
                active = False
    return cash, qty, active, o_target, o_qty, o_filled


@njit(cache=True)
def _headline_finish_nb(
    out: np.ndarray, n: int, last: float, m: _Moments, rets: np.ndarray, periods_per_year: float
) -> None:
    """The rest of headline_nb once its first pass has run: the same operations, in the same order.

    The second pass tests for NaN and for all-equal returns only while it has to (NaN returns
    left to skip, no two different returns seen yet): after that its loop is the two sums alone.
    """
    count, wealth, mdd = m.kept, m.wealth, m.mdd
    for k in range(_N_HEADLINE):
        out[k] = np.nan
    if n == 0:
        return
    out[8] = last
    n_ret = n - 1
    if n_ret == 0:
        return
    if not math.isfinite(wealth):
        return
    out[0] = wealth - 1.0
    if wealth <= 0:
        out[1] = -1.0
    else:
        years = n_ret / periods_per_year
        out[1] = wealth ** (1.0 / years) - 1.0 if math.log(wealth) / years <= _MAX_LOG else np.inf
    out[6] = mdd
    if count:
        out[7] = m.positive / count
    if out[1] == out[1] and math.isfinite(out[1]) and mdd < 0:
        out[5] = out[1] / abs(mdd)
    if count < 2:
        return
    mean = m.total / count
    ss = 0.0
    down = 0.0
    first = np.nan
    same = True
    nans = m.nans
    k = 0
    while k < n_ret and (same or nans):
        r = rets[k]
        k += 1
        if r != r:
            nans -= 1
            continue
        if r != first:
            if first != first:
                first = r
            else:
                same = False
        ss += (r - mean) * (r - mean)
        low = min(r, 0.0)
        down += low * low
    for rest in range(k, n_ret):  # no NaN left, and two different returns seen
        r = rets[rest]
        ss += (r - mean) * (r - mean)
        low = min(r, 0.0)
        down += low * low
    root = math.sqrt(periods_per_year)
    sd = 0.0 if same else math.sqrt(ss / (count - 1))
    out[2] = sd * root
    if sd > 0:
        out[3] = mean / sd * root
    downside = math.sqrt(down / count) * root
    if downside > 0:
        out[4] = mean * periods_per_year / downside
