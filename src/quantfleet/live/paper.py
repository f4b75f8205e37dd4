"""The paper broker: the engine's own fill, slippage and commission models, books kept in the database.

Orders rest in ``paper_orders`` until a bar arrives (:meth:`PaperBroker.process`).
Each new bar is matched by the backtest's :class:`~quantfleet.engine.broker.SimBroker`
itself, on a one-bar feed, with the account's cash and positions restored
into a :class:`~quantfleet.engine.portfolio.SimPortfolio`: market orders fill
at the open of the first bar after they were placed (or, with
``fill_at="close"``, at the close of the bar they were placed on), limit and
stop orders by the bar's range, target orders size themselves at the fill
price, volume limits leave the rest open, and commission and slippage are
the account's :class:`~quantfleet.engine.config.EngineConfig`. So a paper
deployment fills as the backtest of the same bars does.

Every change is one database transaction: a failed write leaves the account
as it was. Prices of symbols without a bar now are their last known close.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from quantfleet.core.errors import UserError
from quantfleet.core.orders import Fill, Order, OrderStatus, OrderType, Position, Target, TimeInForce
from quantfleet.core.types import US_PER_DAY
from quantfleet.engine.broker import SimBroker
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.feed import FIELDS, Feed
from quantfleet.engine.live.orders import Account, Bar, BrokerOrder, OrderRequest, UnknownOrder
from quantfleet.engine.portfolio import SimPortfolio
from quantfleet.store import Database
from quantfleet.store.models import paper_accounts, paper_fills, paper_orders, paper_positions

__all__ = ["Bar", "PaperBroker"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _order_of(row: Mapping[Any, Any]) -> BrokerOrder:
    return BrokerOrder(
        client_id=row["client_id"],
        broker_id=row["broker_id"],
        symbol=row["symbol"],
        quantity=row["quantity"],
        type=OrderType(row["type"]),
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        tif=TimeInForce(row["tif"]),
        target=Target(row["target"]) if row["target"] else None,
        target_value=row["target_value"],
        status=OrderStatus(row["status"]),
        filled_quantity=row["filled_quantity"],
        average_price=row["average_price"],
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PaperBroker:
    """A simulated broker account persisted in the database; implements :class:`~quantfleet.live.broker.Broker`."""

    def __init__(self, db: Database, account_id: str) -> None:
        """Use the paper account ``account_id`` (create it first with :meth:`open`)."""
        self.db = db
        self.account_id = account_id
        with db.read() as conn:
            row = conn.execute(sa.select(paper_accounts).where(paper_accounts.c.id == account_id)).mappings().first()
        if row is None:
            raise UserError(f"no paper account {account_id!r}; create it with PaperBroker.open or 'quantfleet deploy'")
        self.config = EngineConfig.model_validate(row["config"])

    @classmethod
    def open(cls, db: Database, account_id: str, *, now: datetime, config: EngineConfig | None = None) -> PaperBroker:
        """Return the paper account ``account_id``, created with ``config.cash`` if it does not exist."""
        cfg = config or EngineConfig()
        with db.write() as conn:
            found = conn.execute(sa.select(paper_accounts.c.id).where(paper_accounts.c.id == account_id)).first()
            if found is None:
                conn.execute(
                    sa.insert(paper_accounts).values(
                        id=account_id,
                        cash=cfg.cash,
                        starting_cash=cfg.cash,
                        config=cfg.model_dump(mode="json"),
                        next_order=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
        return cls(db, account_id)

    # -- reading ------------------------------------------------------------------------------

    def get_order(self, client_id: str) -> BrokerOrder | None:
        """Return the order placed under ``client_id``, None if there is none."""
        with self.db.read() as conn:
            row = self._order_row(conn, client_id)
        return None if row is None else _order_of(row)

    def _order_row(self, conn: Connection, client_id: str) -> Mapping[Any, Any] | None:
        query = sa.select(paper_orders).where(
            paper_orders.c.account_id == self.account_id, paper_orders.c.client_id == client_id
        )
        return conn.execute(query).mappings().first()

    def orders(self) -> list[BrokerOrder]:
        """Return every order of the account, oldest first."""
        query = sa.select(paper_orders).where(paper_orders.c.account_id == self.account_id)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(paper_orders.c.seq)).mappings().all()
        return [_order_of(r) for r in rows]

    def open_orders(self) -> list[BrokerOrder]:
        """Return the orders that can still fill, oldest first."""
        with self.db.read() as conn:
            rows = self._open_rows(conn)
        return [_order_of(r) for r in rows]

    def _open_rows(self, conn: Connection) -> list[Mapping[Any, Any]]:
        query = (
            sa.select(paper_orders)
            .where(paper_orders.c.account_id == self.account_id, paper_orders.c.status == OrderStatus.OPEN.value)
            .order_by(paper_orders.c.seq)
        )
        return list(conn.execute(query).mappings().all())

    def positions(self) -> dict[str, Position]:
        """Return the open positions, marked at each symbol's last close."""
        with self.db.read() as conn:
            return self._positions(conn)

    def _positions(self, conn: Connection) -> dict[str, Position]:
        query = sa.select(paper_positions).where(paper_positions.c.account_id == self.account_id)
        out = {}
        for r in conn.execute(query.order_by(paper_positions.c.symbol)).mappings().all():
            last = r["last_price"] if r["last_price"] is not None else float("nan")
            out[r["symbol"]] = Position(r["symbol"], r["quantity"], r["average_cost"], r["realized_pnl"], last)
        return out

    def fills(self) -> list[Fill]:
        """Return every execution of the account, oldest first (``order_id`` is the order's broker id)."""
        query = sa.select(paper_fills, paper_orders.c.broker_id).join(
            paper_orders,
            sa.and_(
                paper_orders.c.account_id == paper_fills.c.account_id,
                paper_orders.c.client_id == paper_fills.c.client_id,
            ),
        )
        query = query.where(paper_fills.c.account_id == self.account_id).order_by(paper_fills.c.id)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Fill(
                int(r["broker_id"]),
                r["symbol"],
                _to_us(r["bar_at"]),
                r["quantity"],
                r["price"],
                r["commission"],
                r["slippage"],
            )
            for r in rows
        ]

    def account(self) -> Account:
        """Return cash, and equity with positions at their last close."""
        with self.db.read() as conn:
            cash = conn.execute(
                sa.select(paper_accounts.c.cash).where(paper_accounts.c.id == self.account_id)
            ).scalar_one()
            positions = self._positions(conn)
        value = sum(p.quantity * p.last_price for p in positions.values() if math.isfinite(p.last_price))
        return Account(cash=float(cash), equity=float(cash + value))

    # -- orders -------------------------------------------------------------------------------

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        """Accept ``request`` to fill on the next bar, or reject it with the engine's reason.

        A ``client_id`` seen before returns that order unchanged: nothing is placed twice.
        """
        with self.db.write() as conn:
            known = self._order_row(conn, request.client_id)
            if known is not None:
                return _order_of(known)
            positions = self._positions(conn)
            seq = conn.execute(
                sa.select(paper_accounts.c.next_order).where(paper_accounts.c.id == self.account_id)
            ).scalar_one()
            order = _core_order(request, seq)
            # The engine's own checks on submission (prices, quantity, fractional units, shorting).
            held = positions.get(request.symbol)
            sim = _Sim(self.config, [request.symbol], {request.symbol: held} if held else {}, 0.0, {}, now)
            sim.broker.submit(order, 0, float("nan"))
            status = OrderStatus.REJECTED if order.status is OrderStatus.REJECTED else OrderStatus.OPEN
            conn.execute(
                sa.insert(paper_orders).values(
                    account_id=self.account_id,
                    client_id=request.client_id,
                    broker_id=str(seq),
                    symbol=request.symbol,
                    quantity=request.quantity,
                    type=request.type.value,
                    limit_price=request.limit_price,
                    stop_price=request.stop_price,
                    tif=request.tif.value,
                    target=request.target.value if request.target else None,
                    target_value=request.target_value,
                    status=status.value,
                    filled_quantity=0.0,
                    average_price=0.0,
                    stop_triggered=False,
                    expires_day=None,
                    reason=order.reason if status is OrderStatus.REJECTED else "",
                    seq=seq,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                sa.update(paper_accounts)
                .where(paper_accounts.c.id == self.account_id)
                .values(next_order=seq + 1, updated_at=now)
            )
            row = self._order_row(conn, request.client_id)
        assert row is not None
        return _order_of(row)

    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder:
        """Cancel an open order; an order that is done is returned as it is."""
        with self.db.write() as conn:
            row = self._order_row(conn, client_id)
            if row is None:
                raise UnknownOrder(f"paper account {self.account_id} has no order {client_id!r}")
            if row["status"] == OrderStatus.OPEN.value:
                conn.execute(
                    sa.update(paper_orders)
                    .where(paper_orders.c.account_id == self.account_id, paper_orders.c.client_id == client_id)
                    .values(status=OrderStatus.CANCELLED.value, reason="cancelled", updated_at=now)
                )
                row = self._order_row(conn, client_id)
        assert row is not None
        return _order_of(row)

    # -- matching -----------------------------------------------------------------------------

    def process(self, bars: Mapping[str, Bar], *, now: datetime, at_close: bool = False) -> list[Fill]:
        """Match the open orders against ``bars`` (one timestamp), book the fills, mark positions; return the fills.

        ``at_close`` fills market orders at the close instead (``fill_at="close"``:
        called after the strategy saw the bar); other orders wait for the next bar.
        """
        if not bars:
            return []
        stamps = {b.ts_us for b in bars.values()}
        if len(stamps) != 1:
            raise UserError("process() takes the bars of one timestamp; give each timestamp's bars in its own call")
        with self.db.write() as conn:
            account = (
                conn.execute(sa.select(paper_accounts).where(paper_accounts.c.id == self.account_id)).mappings().one()
            )
            positions = self._positions(conn)
            rows = self._open_rows(conn)
            symbols = sorted({*bars, *positions, *(r["symbol"] for r in rows)})
            sim = _Sim(self.config, symbols, positions, float(account["cash"]), bars, now)
            day = next(iter(stamps)) // US_PER_DAY
            resumed: list[tuple[Mapping[Any, Any], Order]] = []
            for row in rows:
                order = _resumed(row)
                expires = row["expires_day"]
                if expires is None and order.tif is TimeInForce.DAY and row["symbol"] in bars:
                    expires = day
                sim.broker.resume(order, expires_day=expires)
                resumed.append((row, order))
            sim.broker.process(0, at_close=at_close)
            self._write_back(conn, sim, resumed, bars, now)
        return list(sim.broker.fills)

    def _write_back(
        self,
        conn: Connection,
        sim: _Sim,
        resumed: list[tuple[Mapping[Any, Any], Order]],
        bars: Mapping[str, Bar],
        now: datetime,
    ) -> None:
        by_id = {order.id: row for row, order in resumed}
        for row, order in resumed:
            expires = row["expires_day"]
            if expires is None and order.tif is TimeInForce.DAY and order.symbol in bars:
                expires = next(iter(bars.values())).ts_us // US_PER_DAY
            conn.execute(
                sa.update(paper_orders)
                .where(paper_orders.c.account_id == self.account_id, paper_orders.c.client_id == row["client_id"])
                .values(
                    quantity=order.quantity,
                    status=order.status.value,
                    filled_quantity=order.filled_quantity,
                    average_price=order.average_price,
                    stop_triggered=order.stop_triggered,
                    expires_day=expires,
                    reason=order.reason,
                    updated_at=now,
                )
            )
        for fill in sim.broker.fills:
            conn.execute(
                sa.insert(paper_fills).values(
                    account_id=self.account_id,
                    client_id=by_id[fill.order_id]["client_id"],
                    symbol=fill.symbol,
                    bar_at=fill.ts,
                    quantity=fill.quantity,
                    price=fill.price,
                    commission=fill.commission,
                    slippage=fill.slippage,
                    created_at=now,
                )
            )
        conn.execute(sa.delete(paper_positions).where(paper_positions.c.account_id == self.account_id))
        marks = sim.close_marks[0]
        for symbol, pos in sim.book.positions.items():
            j = sim.index[symbol]
            conn.execute(
                sa.insert(paper_positions).values(
                    account_id=self.account_id,
                    symbol=symbol,
                    quantity=pos.quantity,
                    average_cost=pos.average_cost,
                    realized_pnl=pos.realized_pnl,
                    last_price=float(marks[j]) if marks[j] > 0 else None,
                )
            )
        conn.execute(
            sa.update(paper_accounts)
            .where(paper_accounts.c.id == self.account_id)
            .values(cash=sim.book.cash, updated_at=now)
        )


def _core_order(request: OrderRequest, seq: int) -> Order:
    return Order(
        seq,
        request.symbol,
        float(request.quantity),
        request.type,
        request.limit_price,
        request.stop_price,
        request.tif,
        0,
        request.target,
        float(request.target_value),
        tag=request.tag,
    )


def _resumed(row: Mapping[Any, Any]) -> Order:
    order = Order(
        int(row["broker_id"]),
        row["symbol"],
        float(row["quantity"]),
        OrderType(row["type"]),
        row["limit_price"],
        row["stop_price"],
        TimeInForce(row["tif"]),
        _to_us(row["created_at"]),
        Target(row["target"]) if row["target"] else None,
        float(row["target_value"]),
    )
    order.filled_quantity = float(row["filled_quantity"])
    order.average_price = float(row["average_price"])
    order.stop_triggered = bool(row["stop_triggered"])
    return order


class _Sim:
    """The engine's broker and books over one bar: the account restored, ready to match."""

    def __init__(
        self,
        config: EngineConfig,
        symbols: list[str],
        positions: Mapping[str, Position],
        cash: float,
        bars: Mapping[str, Bar],
        now: datetime,
    ) -> None:
        self.index = {s: j for j, s in enumerate(symbols)}
        ts = next(iter(bars.values())).ts_us if bars else _to_us(now.astimezone(UTC))
        fields = {name: np.full((1, len(symbols)), np.nan) for name in FIELDS}
        for symbol, bar in bars.items():
            j = self.index[symbol]
            for name in FIELDS:
                fields[name][0, j] = getattr(bar, name)
        # Symbols without a bar now are marked at their last close (0 when never seen: nothing is held).
        last = np.array([_last(positions.get(s)) for s in symbols], dtype=float)
        opens = np.where(np.isnan(fields["open"][0]), last, fields["open"][0])[None, :]
        closes = np.where(np.isnan(fields["close"][0]), last, fields["close"][0])[None, :]
        self.close_marks = closes
        feed = Feed.from_arrays(tuple(symbols), np.array([ts], dtype=np.int64), fields)
        cursor = [0]
        self.book = SimPortfolio(feed.symbols, cash, closes, cursor)
        self.book.restore(cash, positions)
        self.broker = SimBroker(
            feed,
            config,
            self.book,
            on_fill=lambda fill: None,
            record=lambda i, book: None,
            open_marks=opens,
            close_marks=closes,
        )


def _last(position: Position | None) -> float:
    if position is None or not math.isfinite(position.last_price):
        return 0.0
    return position.last_price
