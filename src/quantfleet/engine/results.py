"""What a backtest produced: equity, positions, orders, fills and round-trip trades, as Arrow tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from quantfleet.core.orders import Fill, Order
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.feed import Feed

if TYPE_CHECKING:
    from quantfleet.engine.broker import SimBroker
    from quantfleet.engine.portfolio import SimPortfolio

__all__ = ["BacktestResult", "Ledger"]

TS = pa.timestamp("us", tz="UTC")


class Ledger:
    """Snapshots of cash and positions, taken only on bars where they changed."""

    def __init__(self, feed: Feed, cash: float) -> None:
        self._feed = feed
        self._cash0 = cash
        self.index: list[int] = []
        self.cash: list[float] = []
        self.quantity: list[np.ndarray] = []
        self.splits: list[tuple[int, int, float]] = []

    def record(self, i: int, book: SimPortfolio) -> None:
        """Snapshot the books at the end of bar ``i`` (replacing an earlier snapshot of the same bar)."""
        if self.index and self.index[-1] == i:
            self.cash[-1], self.quantity[-1] = book.cash, book.quantity.copy()
            return
        self.index.append(i)
        self.cash.append(book.cash)
        self.quantity.append(book.quantity.copy())

    def split(self, i: int, j: int, ratio: float) -> None:
        """Note a split, so round trips keep their quantities straight."""
        self.splits.append((i, j, ratio))

    def result(self, book: SimPortfolio, broker: SimBroker, config: EngineConfig, first: int) -> BacktestResult:
        """Rebuild the per-bar books from the snapshots and return the result."""
        feed = self._feed
        n, m = feed.n_bars, len(feed.symbols)
        # pick[i]: how many snapshots were taken at or before bar i (0 = the opening books).
        taken = np.zeros(n, dtype=np.int64)
        taken[np.asarray(self.index, dtype=np.int64)] = 1
        pick = np.cumsum(taken)[first:]
        cash_hist = np.r_[self._cash0, np.asarray(self.cash, dtype=np.float64)]
        qty_hist = np.zeros((len(self.quantity) + 1, m))
        if self.quantity:
            qty_hist[1:] = np.array(self.quantity)
        cash = cash_hist[pick]
        qty = qty_hist[pick]
        close = book._close[first:]  # carried-forward closes
        value = qty * close  # marks are 0 (never NaN) where nothing can be held
        if m == 1:
            net = value[:, 0]
            gross = np.abs(net)
        else:
            net, gross = value.sum(axis=1), np.abs(value).sum(axis=1)
        return BacktestResult(
            symbols=feed.symbols,
            ts=feed.ts[first:],
            cash=cash,
            quantity=qty,
            equity=cash + net,
            gross=gross,
            net=net,
            orders=list(broker.orders),
            fills=list(broker.fills),
            splits=[(feed.time(i), feed.symbols[j], r) for i, j, r in self.splits],
            config=config,
            commission=book.commission_paid,
            slippage=book.slippage_paid,
            dividends=book.dividends,
        )


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run produced; tables are built on demand."""

    symbols: tuple[str, ...]
    ts: np.ndarray
    cash: np.ndarray
    quantity: np.ndarray
    equity: np.ndarray
    gross: np.ndarray
    net: np.ndarray
    orders: list[Order]
    fills: list[Fill]
    splits: list[tuple[datetime, str, float]]
    config: EngineConfig
    commission: float
    slippage: float
    dividends: float
    _trades: list[pa.Table] = field(default_factory=list, repr=False)

    @property
    def final_equity(self) -> float:
        """Return equity at the last bar."""
        return float(self.equity[-1])

    def equity_table(self) -> pa.Table:
        """Return ts, equity, cash, gross and net exposure per bar."""
        return pa.table(
            {
                "ts": pa.array(self.ts, TS),
                "equity": self.equity,
                "cash": self.cash,
                "gross_exposure": self.gross,
                "net_exposure": self.net,
            }
        )

    def positions_table(self) -> pa.Table:
        """Return non-zero holdings per bar: ts, symbol, quantity."""
        rows, cols = np.nonzero(self.quantity)
        return pa.table(
            {
                "ts": pa.array(self.ts[rows], TS),
                "symbol": pa.array([self.symbols[c] for c in cols], pa.string()),
                "quantity": self.quantity[rows, cols],
            }
        )

    def orders_table(self) -> pa.Table:
        """Return every order with its final state."""
        return pa.Table.from_pylist(
            [
                {
                    "id": o.id,
                    "created_at": o.created_us,
                    "symbol": o.symbol,
                    "type": o.type.value,
                    "quantity": o.quantity,
                    "target": o.target.value if o.target else None,
                    "target_value": o.target_value if o.target else None,
                    "limit_price": o.limit_price,
                    "stop_price": o.stop_price,
                    "tif": o.tif.value,
                    "status": o.status.value,
                    "filled_quantity": o.filled_quantity,
                    "average_price": o.average_price if o.filled_quantity else None,
                    "reason": o.reason,
                    "tag": o.tag,
                }
                for o in self.orders
            ],
            schema=_ORDER_SCHEMA,
        )

    def fills_table(self) -> pa.Table:
        """Return every fill."""
        return pa.Table.from_pylist(
            [
                {
                    "order_id": f.order_id,
                    "ts": f.time_us,
                    "symbol": f.symbol,
                    "quantity": f.quantity,
                    "price": f.price,
                    "commission": f.commission,
                    "slippage": f.slippage,
                }
                for f in self.fills
            ],
            schema=_FILL_SCHEMA,
        )

    def trades_table(self) -> pa.Table:
        """Return round trips: from flat to flat (a reversal closes one and opens the next)."""
        if not self._trades:
            self._trades.append(_round_trips(self.fills, self.splits))
        return self._trades[0]


_ORDER_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("created_at", TS),
        ("symbol", pa.string()),
        ("type", pa.string()),
        ("quantity", pa.float64()),
        ("target", pa.string()),
        ("target_value", pa.float64()),
        ("limit_price", pa.float64()),
        ("stop_price", pa.float64()),
        ("tif", pa.string()),
        ("status", pa.string()),
        ("filled_quantity", pa.float64()),
        ("average_price", pa.float64()),
        ("reason", pa.string()),
        ("tag", pa.string()),
    ]
)
_FILL_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("ts", TS),
        ("symbol", pa.string()),
        ("quantity", pa.float64()),
        ("price", pa.float64()),
        ("commission", pa.float64()),
        ("slippage", pa.float64()),
    ]
)
_TRADE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("direction", pa.string()),
        ("quantity", pa.float64()),
        ("entry_time", TS),
        ("exit_time", TS),
        ("entry_price", pa.float64()),
        ("exit_price", pa.float64()),
        ("pnl", pa.float64()),
        ("return", pa.float64()),
        ("commission", pa.float64()),
        ("open", pa.bool_()),
    ]
)


@dataclass
class _Open:
    qty: float = 0.0
    peak: float = 0.0
    bought: float = 0.0  # value of units bought
    sold: float = 0.0  # value of units sold
    buy_qty: float = 0.0
    sell_qty: float = 0.0
    commission: float = 0.0
    entry: int | None = None
    long: bool = True


def _round_trips(fills: list[Fill], splits: list[tuple[datetime, str, float]]) -> pa.Table:
    state: dict[str, _Open] = {}
    rows: list[dict[str, object]] = []
    events = sorted(
        [(f.time_us, 1, k, f) for k, f in enumerate(fills)]
        + [(int(ts.timestamp() * 1_000_000), 0, k, (s, r)) for k, (ts, s, r) in enumerate(splits)],
        key=lambda e: (e[0], e[1], e[2]),
    )
    for ts, kind, _, payload in events:
        if kind == 0:
            symbol, ratio = payload  # type: ignore[misc]
            if symbol in state:
                t = state[symbol]
                t.qty *= ratio
                t.peak *= ratio
                t.buy_qty *= ratio
                t.sell_qty *= ratio
            continue
        fill: Fill = payload  # type: ignore[assignment]
        t = state.setdefault(fill.symbol, _Open())
        remaining = fill.quantity
        while remaining != 0:
            if t.qty == 0:
                t.entry, t.long = ts, remaining > 0
            closing = t.qty != 0 and (t.qty > 0) != (remaining > 0)
            step = remaining if not closing else (np.sign(remaining) * min(abs(remaining), abs(t.qty)))
            share = step / fill.quantity
            if step > 0:
                t.bought += step * fill.price
                t.buy_qty += step
            else:
                t.sold += -step * fill.price
                t.sell_qty += -step
            t.commission += fill.commission * share
            t.qty += step
            t.peak = max(t.peak, abs(t.qty))
            remaining -= step
            if abs(t.qty) < 1e-12:
                rows.append(_trade_row(fill.symbol, t, ts, open_=False))
                state[fill.symbol] = t = _Open()
    for symbol, t in state.items():
        if t.qty != 0:
            rows.append(_trade_row(symbol, t, None, open_=True))
    return pa.Table.from_pylist(rows, schema=_TRADE_SCHEMA)


def _trade_row(symbol: str, t: _Open, exit_time: int | None, *, open_: bool) -> dict[str, object]:
    entry_value, entry_qty = (t.bought, t.buy_qty) if t.long else (t.sold, t.sell_qty)
    exit_value, exit_qty = (t.sold, t.sell_qty) if t.long else (t.bought, t.buy_qty)
    pnl = float("nan") if open_ else t.sold - t.bought - t.commission
    return {
        "symbol": symbol,
        "direction": "long" if t.long else "short",
        "quantity": t.peak,
        "entry_time": t.entry,
        "exit_time": exit_time,
        "entry_price": entry_value / entry_qty if entry_qty else float("nan"),
        "exit_price": exit_value / exit_qty if exit_qty else float("nan"),
        "pnl": pnl,
        "return": pnl / entry_value if entry_value and not open_ else float("nan"),
        "commission": t.commission,
        "open": open_,
    }
