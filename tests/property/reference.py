"""A naive reference exchange, written from docs/ENGINE.md alone.

It exists to be obviously correct, not fast: the stateful test drives it and
the real engine side by side and demands the same events, the same orders and
the same balances after every command.

Model. Every accepted order ever placed is a `RefOrder` in one dict. A book is
not a structure at all: it is the resting orders of a symbol, sorted on demand
by (price priority, arrival sequence) whenever matching needs the next maker.
Only `free` balances are stored; `locked` is recomputed from the resting orders
each time it is asked for, so it cannot drift from what the orders reserve.

The order and trade bounds and the dedup window are constructor arguments, so
a test can make them small enough to reach. The account bound is modelled but
no test reaches it.

Where ENGINE.md is silent this follows the engine, and says so:
- a MARKET order is reported with tif IOC;
- a market buy by quote reports as its qty what it bought (filled), and one
  that could not buy a single lot expires with NO_BALANCE;
- an amend of an order that has finished (found by client id) is
  UNKNOWN_ORDER; an amend checks the balance before WOULD_TAKE, applies the
  notional filter to price x new total qty, and answers LOT_SIZE to a total
  not above what has filled;
- a rejected cancel or amend that found its order carries that order's id;
- placing for account 0 is RESERVED_ACCOUNT (the fee account exists), not
  INSUFFICIENT_BALANCE as "account unknown (never deposited)" would have it;
- a deposit checks the account bound after the amount and supply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from dex.core import limits
from dex.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from dex.core.events import (
    BalanceChanged,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderDuplicate,
    OrderExpired,
    OrderRejected,
    Trade,
)
from dex.core.markets import Market, MarketConfig
from dex.core.reasons import Reason, StopReason
from dex.core.types import (
    FEE_ACCOUNT,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
NEW = OrderStatus.NEW
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
CANCELED = OrderStatus.CANCELED
EXPIRED = OrderStatus.EXPIRED
LIVE_STATUSES = (NEW, PARTIALLY_FILLED)
BPS = 10_000


class RefOrderView(NamedTuple):
    """Same fields, same order as `dex.engine.OrderView`."""

    order_id: int
    account: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    post_only: bool
    price: int
    qty: int  # total lots, filled included
    filled: int
    status: OrderStatus
    client_order_id: str | None
    time_ms: int


@dataclass(slots=True, kw_only=True)
class RefOrder:
    order_id: int
    account: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    price: int  # ticks; 0 for MARKET
    qty: int  # total lots, filled included; for a buy by quote, what it bought
    filled: int
    status: OrderStatus
    client_order_id: str | None
    time_ms: int
    resting: bool = False  # in its book right now
    seq: int = 0  # place in the time queue: lower joined its level earlier

    @property
    def open_lots(self) -> int:
        return self.qty - self.filled

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    def view(self) -> RefOrderView:
        return RefOrderView(
            self.order_id,
            self.account,
            self.symbol,
            self.side,
            self.type,
            self.tif,
            self.post_only,
            self.price,
            self.qty,
            self.filled,
            self.status,
            self.client_order_id,
            self.time_ms,
        )


class Reference:
    def __init__(
        self,
        config: MarketConfig,
        *,
        dedup_window: int = limits.DEDUP_FINISHED_ORDERS_MAX,
        open_orders_max: int = limits.OPEN_ORDERS_PER_ACCOUNT_MAX,
        book_orders_max: int = limits.BOOK_ORDERS_MAX,
        trades_max: int = limits.TRADES_PER_ORDER_MAX,
    ) -> None:
        """The bounds can be made small so a test reaches them."""
        self.markets: dict[str, Market] = {m.symbol: m for m in config.markets}
        self.assets: list[str] = [a.name for a in config.assets]
        self.dedup_window = dedup_window
        self.open_orders_max = open_orders_max
        self.book_orders_max = book_orders_max
        self.trades_max = trades_max
        self.accounts: set[int] = {FEE_ACCOUNT}  # the fee account always exists
        self.free: dict[tuple[int, str], int] = {}
        self.supply: dict[str, int] = {a: 0 for a in self.assets}  # deposits - withdrawals
        self.orders: dict[int, RefOrder] = {}  # every accepted order, by id
        self.finished: dict[int, list[int]] = {}  # account -> ids of orders with a client id, as they finished
        self.finished_position: dict[int, int] = {}  # order id -> its index in its account's `finished`
        self.newest_with_client_id: dict[tuple[int, str], int] = {}  # (account, client id) -> order id
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_seq = 1

    # ------------------------------------------------------------ dispatch

    def apply(self, cmd, now: int) -> list:
        if isinstance(cmd, PlaceOrder):
            return self.place(cmd, now)
        if isinstance(cmd, CancelOrder):
            return self.cancel(cmd)
        if isinstance(cmd, CancelAll):
            return self.cancel_all(cmd)
        if isinstance(cmd, AmendOrder):
            return self.amend(cmd, now)
        if isinstance(cmd, Deposit):
            return self.deposit(cmd)
        if isinstance(cmd, Withdraw):
            return self.withdraw(cmd)
        raise AssertionError(f"unknown command {cmd!r}")

    # ------------------------------------------------------------- queries

    def get_free(self, account: int, asset: str) -> int:
        return self.free.get((account, asset), 0)

    def add_free(self, account: int, asset: str, delta: int) -> None:
        self.free[(account, asset)] = self.get_free(account, asset) + delta
        assert self.free[(account, asset)] >= 0, (account, asset)

    def reserve(self, order: RefOrder) -> tuple[str, int]:
        """(asset, units) a resting order locks for its open lots."""
        m = self.markets[order.symbol]
        if order.side == BUY:
            return m.quote.name, order.price * order.open_lots * m.notional_units
        return m.base.name, order.open_lots * m.lot_units

    def locked(self, account: int, asset: str) -> int:
        total = 0
        for o in self.orders.values():
            if o.resting and o.account == account:
                reserved_asset, units = self.reserve(o)
                if reserved_asset == asset:
                    total += units
        return total

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        return {a: (self.get_free(account, a), self.locked(account, a)) for a in self.assets}

    def resting(self, symbol: str, side: Side) -> list[RefOrder]:
        """A side of a book in priority order: best price, then first to arrive."""
        orders = [o for o in self.orders.values() if o.resting and o.symbol == symbol and o.side == side]
        if side == BUY:
            orders.sort(key=lambda o: (-o.price, o.seq))
        else:
            orders.sort(key=lambda o: (o.price, o.seq))
        return orders

    def depth(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        sides = []
        for side in (BUY, SELL):
            levels: list[tuple[int, int]] = []
            for o in self.resting(symbol, side):
                if levels and levels[-1][0] == o.price:
                    levels[-1] = (o.price, levels[-1][1] + o.open_lots)
                else:
                    levels.append((o.price, o.open_lots))
            sides.append(levels)
        return sides[0], sides[1]

    def open_orders(self, account: int, symbol: str | None = None) -> list[RefOrderView]:
        return [
            o.view()
            for o in sorted(self.orders.values(), key=lambda o: o.order_id)
            if o.live and o.account == account and (symbol is None or o.symbol == symbol)
        ]

    def order(self, account: int, symbol: str, order_id: int = 0, client_order_id: str | None = None) -> RefOrderView | None:
        found = self.find(account, symbol, order_id, client_order_id)
        return None if found is None else found.view()

    def find(self, account: int, symbol: str, order_id: int, client_order_id: str | None) -> RefOrder | None:
        """By id: a live order only. By client id: while the id is reserved.
        Either way only in the owning account and the order's own symbol."""
        if order_id:
            order = self.orders.get(order_id)
            if order is None or not order.live:
                return None
        elif client_order_id is not None:
            order = self.reserved(account, client_order_id)
        else:
            return None
        if order is None or order.account != account or order.symbol != symbol:
            return None
        return order

    def reserved(self, account: int, client_order_id: str) -> RefOrder | None:
        """The order holding `client_order_id` for `account`: live, or finished
        with fewer than `dedup_window` of the account's orders (with client
        ids) finished after it."""
        newest_id = self.newest_with_client_id.get((account, client_order_id))
        if newest_id is None:
            return None
        newest = self.orders[newest_id]
        if newest.live:
            return newest
        finished = self.finished[account]
        finished_after = len(finished) - 1 - self.finished_position[newest_id]
        return newest if finished_after < self.dedup_window else None

    # --------------------------------------------------------------- place

    def place(self, cmd: PlaceOrder, now: int) -> list:
        m = self.markets.get(cmd.symbol)
        cid = cmd.client_order_id

        def reject(reason: Reason) -> list:
            return [OrderRejected(cmd.account, cmd.symbol, cid, 0, reason)]

        if m is None:
            return reject(Reason.UNKNOWN_SYMBOL)
        if cid is not None:
            original = self.reserved(cmd.account, cid)
            if original is not None:
                o = original
                return [OrderDuplicate(o.order_id, o.account, o.symbol, cid, o.status, o.filled, o.qty)]
            if not valid_client_order_id(cid):
                return reject(Reason.BAD_CLIENT_ORDER_ID)
        reason = self.place_rejection(cmd, m)
        if reason is not None:
            return reject(reason)

        # ENGINE.md does not state a market order's tif; the engine reports IOC.
        tif = TimeInForce(cmd.tif) if cmd.type == LIMIT else IOC
        order = RefOrder(
            order_id=self.next_order_id,
            account=cmd.account,
            symbol=cmd.symbol,
            side=Side(cmd.side),
            type=OrderType(cmd.type),
            tif=tif,
            post_only=cmd.post_only,
            stp=SelfTradePrevention(cmd.stp),
            price=cmd.price,
            qty=cmd.qty,
            filled=0,
            status=NEW,
            client_order_id=cid,
            time_ms=now,
        )
        self.next_order_id += 1
        self.orders[order.order_id] = order
        if cid is not None:
            self.newest_with_client_id[(cmd.account, cid)] = order.order_id
        events: list = [
            OrderAccepted(
                order.order_id, cmd.account, cmd.symbol, cmd.side, cmd.type, tif,
                cmd.price, cmd.qty, cmd.quote_qty, cid,
            )
        ]
        if cmd.type == MARKET:
            self.run_market(order, cmd.quote_qty, events)
        else:
            self.run_limit(order, events)
        return events

    def place_rejection(self, cmd: PlaceOrder, m: Market) -> Reason | None:
        """The checks of ENGINE.md's table, in its order (after symbol and client id)."""
        if cmd.side not in (0, 1) or cmd.type not in (0, 1) or cmd.tif not in (0, 1, 2) or cmd.stp not in (0, 1, 2):
            return Reason.BAD_PARAMETER
        if cmd.account not in self.accounts:
            return Reason.INSUFFICIENT_BALANCE
        if cmd.account == FEE_ACCOUNT:
            return Reason.RESERVED_ACCOUNT
        quote, base = m.quote.name, m.base.name
        if cmd.type == LIMIT:
            cost = cmd.price * cmd.qty * m.notional_units
            if cmd.quote_qty != 0:
                return Reason.BAD_PARAMETER
            if not 1 <= cmd.price <= m.max_price_ticks:
                return Reason.PRICE_FILTER
            if not m.min_qty_lots <= cmd.qty <= m.max_qty_lots:
                return Reason.LOT_SIZE
            if cost < m.min_notional_units:
                return Reason.NOTIONAL
            if cmd.post_only:
                if cmd.tif != GTC:
                    return Reason.BAD_PARAMETER
                if self.would_cross(cmd.symbol, cmd.side, cmd.price):
                    return Reason.WOULD_TAKE
            if cmd.tif == GTC:
                if len(self.open_orders(cmd.account)) >= self.open_orders_max:
                    return Reason.MAX_NUM_ORDERS
                book_count = len(self.resting(cmd.symbol, BUY)) + len(self.resting(cmd.symbol, SELL))
                if book_count >= self.book_orders_max:
                    return Reason.BOOK_FULL
            if cmd.side == BUY and self.get_free(cmd.account, quote) < cost:
                return Reason.INSUFFICIENT_BALANCE
            if cmd.side == SELL and self.get_free(cmd.account, base) < cmd.qty * m.lot_units:
                return Reason.INSUFFICIENT_BALANCE
            return None
        # MARKET
        if cmd.price != 0 or cmd.post_only:
            return Reason.BAD_PARAMETER
        if cmd.side == SELL and cmd.quote_qty != 0:
            return Reason.QUOTE_QTY_SELL
        if cmd.quote_qty != 0:  # a BUY by quote amount
            if cmd.qty != 0 or not 1 <= cmd.quote_qty <= limits.AMOUNT_UNITS_MAX:
                return Reason.BAD_PARAMETER
            if cmd.quote_qty < m.min_notional_units:
                return Reason.NOTIONAL
            if self.get_free(cmd.account, quote) < cmd.quote_qty:
                return Reason.INSUFFICIENT_BALANCE
            return None
        if not m.min_qty_lots <= cmd.qty <= m.max_qty_lots:
            return Reason.LOT_SIZE
        if cmd.side == BUY and self.get_free(cmd.account, quote) == 0:
            return Reason.INSUFFICIENT_BALANCE
        if cmd.side == SELL and self.get_free(cmd.account, base) < cmd.qty * m.lot_units:
            return Reason.INSUFFICIENT_BALANCE
        return None

    def would_cross(self, symbol: str, side: Side, price: int) -> bool:
        opposite = self.resting(symbol, SELL if side == BUY else BUY)
        return bool(opposite) and crosses(side, price, opposite[0].price)

    def run_limit(self, order: RefOrder, events: list) -> None:
        if order.tif == FOK and not self.fok_fillable(order):
            self.expire(order, order.open_lots, StopReason.FOK, events)
            return
        stop = self.take(order, order.price, events)
        self.settle_limit_taker(order, stop, events)

    def settle_limit_taker(self, order: RefOrder, stop: StopReason | None, events: list) -> None:
        """After matching: filled, expired, or resting at the back of its level."""
        if order.open_lots == 0:
            self.finish(order, FILLED)
        elif stop is not None:
            self.expire(order, order.open_lots, stop, events)
        elif order.tif == GTC:
            self.rest(order)
        else:
            self.expire(order, order.open_lots, StopReason.IOC if order.tif == IOC else StopReason.FOK, events)

    def run_market(self, order: RefOrder, quote_qty: int, events: list) -> None:
        if quote_qty == 0:
            stop = self.take(order, None, events)
            if order.open_lots == 0:
                self.finish(order, FILLED)
            else:
                self.expire(order, order.open_lots, stop or StopReason.IOC, events)
            return
        stop, budget_left = self.take_by_quote(order, quote_qty, events)
        order.qty = order.filled  # its "total" is what it bought
        if order.filled > 0 and (stop == StopReason.NO_BALANCE or budget_left == 0):
            self.finish(order, FILLED)
        else:
            self.expire(order, 0, stop or StopReason.IOC, events)

    def fok_fillable(self, order: RefOrder) -> bool:
        """Walk the makers in the order matching would meet them. Matching
        trades with at most `trades_max` of them, so the walk does too."""
        need = order.open_lots
        makers = 0
        for maker in self.resting(order.symbol, SELL if order.side == BUY else BUY):
            if not crosses(order.side, order.price, maker.price):
                return False
            if maker.account == order.account:
                if order.stp == SelfTradePrevention.EXPIRE_MAKER:
                    continue
                return False
            if makers == self.trades_max:
                return False
            makers += 1
            need -= maker.open_lots
            if need <= 0:
                return True
        return False

    # ------------------------------------------------------------ matching

    def take(self, taker: RefOrder, limit: int | None, events: list) -> StopReason | None:
        """Match `taker` (by lots) against the opposite side, up to `limit`
        (None: no limit). A MARKET BUY never spends more than its free quote.
        Returns why matching stopped early, or None (filled, or no more makers
        within the limit)."""
        m = self.markets[taker.symbol]
        opposite = SELL if taker.side == BUY else BUY
        trades = 0
        while taker.open_lots > 0:
            makers = self.resting(taker.symbol, opposite)
            if not makers:
                return None
            maker = makers[0]
            if limit is not None and not crosses(taker.side, limit, maker.price):
                return None
            if maker.account == taker.account:
                stop = self.self_trade(taker, maker, events)
                if stop is not None:
                    return stop
                continue
            if trades == self.trades_max:
                return StopReason.TRADES_MAX
            lots = min(maker.open_lots, taker.open_lots)
            if taker.type == MARKET and taker.side == BUY:
                lot_cost = maker.price * m.notional_units
                affordable = self.get_free(taker.account, m.quote.name) // lot_cost
                if affordable < lots:
                    if affordable > 0:
                        self.fill(taker, maker, affordable, events)
                    return StopReason.NO_BALANCE
            self.fill(taker, maker, lots, events)
            trades += 1
        return None

    def take_by_quote(self, taker: RefOrder, budget: int, events: list) -> tuple[StopReason | None, int]:
        """A MARKET BUY by quote amount. Returns (why it stopped or None, budget left)."""
        m = self.markets[taker.symbol]
        trades = 0
        while budget > 0:  # spent exactly: done
            makers = self.resting(taker.symbol, SELL)
            if not makers:
                return None, budget  # the book ran out
            maker = makers[0]
            lot_cost = maker.price * m.notional_units
            if budget // lot_cost == 0:
                return StopReason.NO_BALANCE, budget  # cannot buy a lot at the best price
            if maker.account == taker.account:
                stop = self.self_trade(taker, maker, events)
                if stop is not None:
                    return stop, budget
                continue
            if trades == self.trades_max:
                return StopReason.TRADES_MAX, budget
            lots = min(maker.open_lots, budget // lot_cost)
            taker.qty += lots  # keeps open_lots == 0 for the fill's bookkeeping
            self.fill(taker, maker, lots, events)
            budget -= lots * lot_cost
            trades += 1
        return None, budget

    def self_trade(self, taker: RefOrder, maker: RefOrder, events: list) -> StopReason | None:
        """The next maker is the taker's own: apply the taker's mode."""
        if taker.stp == SelfTradePrevention.EXPIRE_TAKER:
            return StopReason.SELF_TRADE
        self.cancel_order(maker, StopReason.SELF_TRADE, events)
        if taker.stp == SelfTradePrevention.EXPIRE_BOTH:
            return StopReason.SELF_TRADE
        return None

    def fill(self, taker: RefOrder, maker: RefOrder, lots: int, events: list) -> None:
        """One trade at the maker's price; fees in what each side receives."""
        m = self.markets[taker.symbol]
        base, quote = m.base.name, m.quote.name
        notional = maker.price * lots * m.notional_units
        base_units = lots * m.lot_units
        buyer, seller = (taker, maker) if taker.side == BUY else (maker, taker)
        buyer_bps = m.taker_fee_bps if buyer is taker else m.maker_fee_bps
        seller_bps = m.taker_fee_bps if seller is taker else m.maker_fee_bps
        buyer_fee = base_units * buyer_bps // BPS
        seller_fee = notional * seller_bps // BPS
        # The maker pays from what it has locked, which shrinks by itself as
        # its open lots fall (locked is derived); the taker pays from free.
        if buyer is taker:
            self.add_free(buyer.account, quote, -notional)
        else:
            self.add_free(seller.account, base, -base_units)
        self.add_free(buyer.account, base, base_units - buyer_fee)
        self.add_free(seller.account, quote, notional - seller_fee)
        self.add_free(FEE_ACCOUNT, base, buyer_fee)
        self.add_free(FEE_ACCOUNT, quote, seller_fee)
        maker_fee, taker_fee = (seller_fee, buyer_fee) if taker is buyer else (buyer_fee, seller_fee)
        events.append(
            Trade(
                self.next_trade_id, m.symbol, maker.price, lots, taker.side,
                maker.order_id, taker.order_id, maker.account, taker.account, maker_fee, taker_fee,
            )
        )
        self.next_trade_id += 1
        maker.filled += lots
        taker.filled += lots
        if maker.open_lots == 0:
            maker.resting = False
            self.finish(maker, FILLED)
        else:
            maker.status = PARTIALLY_FILLED

    # ------------------------------------------------- order state changes

    def rest(self, order: RefOrder) -> None:
        """Join the back of the order's level and lock what it reserves."""
        asset, units = self.reserve(order)
        self.add_free(order.account, asset, -units)
        order.resting = True
        order.seq = self.next_seq
        self.next_seq += 1
        order.status = PARTIALLY_FILLED if order.filled else NEW

    def unrest(self, order: RefOrder) -> None:
        """Leave the book and release the lock."""
        assert order.resting
        asset, units = self.reserve(order)
        self.add_free(order.account, asset, units)
        order.resting = False

    def finish(self, order: RefOrder, status: OrderStatus) -> None:
        assert order.live and not order.resting
        order.status = status
        # The dedup window counts only finished orders that carry a client id.
        if order.client_order_id is not None:
            finished = self.finished.setdefault(order.account, [])
            self.finished_position[order.order_id] = len(finished)
            finished.append(order.order_id)

    def expire(self, order: RefOrder, qty: int, reason: StopReason, events: list) -> None:
        events.append(OrderExpired(order.order_id, order.account, order.symbol, qty, reason))
        self.finish(order, EXPIRED)

    def cancel_order(self, order: RefOrder, reason: StopReason, events: list) -> None:
        self.unrest(order)
        self.finish(order, CANCELED)
        events.append(OrderCancelled(order.order_id, order.account, order.symbol, order.open_lots, reason))

    # -------------------------------------------------------------- cancel

    def cancel(self, cmd: CancelOrder) -> list:
        def reject(order_id: int, reason: Reason) -> list:
            return [OrderRejected(cmd.account, cmd.symbol, cmd.client_order_id, order_id, reason)]

        if cmd.symbol not in self.markets:
            return reject(cmd.order_id, Reason.UNKNOWN_SYMBOL)
        order = self.find(cmd.account, cmd.symbol, cmd.order_id, cmd.client_order_id)
        if order is None:
            return reject(cmd.order_id, Reason.UNKNOWN_ORDER)
        if not order.live:
            return reject(order.order_id, Reason.CANCEL_REJECTED)
        events: list = []
        self.cancel_order(order, StopReason.USER, events)
        return events

    def cancel_all(self, cmd: CancelAll) -> list:
        if cmd.symbol is not None and cmd.symbol not in self.markets:
            return [OrderRejected(cmd.account, cmd.symbol, None, 0, Reason.UNKNOWN_SYMBOL)]
        events: list = []
        for view in self.open_orders(cmd.account, cmd.symbol):
            self.cancel_order(self.orders[view.order_id], StopReason.CANCEL_ALL, events)
        return events

    # --------------------------------------------------------------- amend

    def amend(self, cmd: AmendOrder, now: int) -> list:
        def reject(order_id: int, reason: Reason) -> list:
            return [OrderRejected(cmd.account, cmd.symbol, cmd.client_order_id, order_id, reason)]

        if cmd.symbol not in self.markets:
            return reject(cmd.order_id, Reason.UNKNOWN_SYMBOL)
        order = self.find(cmd.account, cmd.symbol, cmd.order_id, cmd.client_order_id)
        if order is None:
            return reject(cmd.order_id, Reason.UNKNOWN_ORDER)
        if not order.live:  # ENGINE.md is silent; the engine answers UNKNOWN_ORDER
            return reject(order.order_id, Reason.UNKNOWN_ORDER)
        m = self.markets[order.symbol]
        if cmd.price < 0 or cmd.qty < 0:
            return reject(order.order_id, Reason.BAD_PARAMETER)
        price = cmd.price or order.price
        total = cmd.qty or order.qty
        if not 1 <= price <= m.max_price_ticks:
            return reject(order.order_id, Reason.PRICE_FILTER)
        if not m.min_qty_lots <= total <= m.max_qty_lots or total <= order.filled:
            return reject(order.order_id, Reason.LOT_SIZE)
        if price * total * m.notional_units < m.min_notional_units:
            return reject(order.order_id, Reason.NOTIONAL)
        asset, reserved_now = self.reserve(order)
        new_open = total - order.filled
        if order.side == BUY:
            reserved_then = price * new_open * m.notional_units
        else:
            reserved_then = new_open * m.lot_units
        if reserved_then - reserved_now > self.get_free(order.account, asset):
            return reject(order.order_id, Reason.INSUFFICIENT_BALANCE)
        if order.post_only and self.would_cross(order.symbol, order.side, price):
            return reject(order.order_id, Reason.WOULD_TAKE)

        if price == order.price and total <= order.qty:
            self.add_free(order.account, asset, reserved_now - reserved_then)
            order.qty = total
            return [OrderAmended(order.order_id, order.account, order.symbol, price, total, True)]

        # Loses its place: out of the book, then in again like a new GTC
        # order (matching first if it crosses), with its id and fills.
        self.unrest(order)
        order.price = price
        order.qty = total
        order.time_ms = now
        events: list = [OrderAmended(order.order_id, order.account, order.symbol, price, total, False)]
        stop = self.take(order, price, events)
        self.settle_limit_taker(order, stop, events)
        return events

    # -------------------------------------------------------------- wallet

    def deposit(self, cmd: Deposit) -> list:
        def reject(reason: Reason) -> list:
            return [OrderRejected(cmd.account, None, None, 0, reason)]

        if cmd.asset not in self.supply:
            return reject(Reason.UNKNOWN_ASSET)
        if cmd.account <= FEE_ACCOUNT:
            return reject(Reason.RESERVED_ACCOUNT)
        if cmd.account > limits.ACCOUNT_ID_MAX:
            return reject(Reason.BAD_PARAMETER)
        if not 1 <= cmd.amount <= limits.AMOUNT_UNITS_MAX:
            return reject(Reason.BAD_AMOUNT)
        if self.supply[cmd.asset] + cmd.amount > limits.BALANCE_UNITS_MAX:
            return reject(Reason.BALANCE_OVERFLOW)
        # ENGINE.md lists the account bound before the amount; the engine
        # checks it last, and so does this (no test reaches it).
        user_accounts = len(self.accounts) - 1  # the fee account not counted
        if cmd.account not in self.accounts and user_accounts >= limits.ACCOUNTS_MAX:
            return reject(Reason.TOO_MANY_ACCOUNTS)
        self.accounts.add(cmd.account)
        self.supply[cmd.asset] += cmd.amount
        self.add_free(cmd.account, cmd.asset, cmd.amount)
        return [BalanceChanged(cmd.account, cmd.asset, cmd.amount, self.get_free(cmd.account, cmd.asset))]

    def withdraw(self, cmd: Withdraw) -> list:
        def reject(reason: Reason) -> list:
            return [OrderRejected(cmd.account, None, None, 0, reason)]

        if cmd.asset not in self.supply:
            return reject(Reason.UNKNOWN_ASSET)
        if cmd.account <= FEE_ACCOUNT:
            return reject(Reason.RESERVED_ACCOUNT)
        if cmd.account > limits.ACCOUNT_ID_MAX:
            return reject(Reason.BAD_PARAMETER)
        if not 1 <= cmd.amount <= limits.AMOUNT_UNITS_MAX:
            return reject(Reason.BAD_AMOUNT)
        if self.get_free(cmd.account, cmd.asset) < cmd.amount:
            return reject(Reason.WITHDRAW_INSUFFICIENT)
        self.supply[cmd.asset] -= cmd.amount
        self.add_free(cmd.account, cmd.asset, -cmd.amount)
        return [BalanceChanged(cmd.account, cmd.asset, -cmd.amount, self.get_free(cmd.account, cmd.asset))]

    # ---------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        for asset in self.assets:
            held = sum(self.get_free(a, asset) + self.locked(a, asset) for a in self.accounts)
            assert held == self.supply[asset], f"{asset}: held {held} != supply {self.supply[asset]}"
        for symbol in self.markets:
            bids, asks = self.depth(symbol)
            assert not (bids and asks and bids[0][0] >= asks[0][0]), f"{symbol}: crossed at rest"
        for o in self.orders.values():
            assert o.resting == o.live, f"order {o.order_id}: resting {o.resting} but status {o.status!r}"
            assert not o.resting or 0 < o.open_lots, f"order {o.order_id}: resting with nothing open"


def crosses(side: Side, limit: int, maker_price: int) -> bool:
    """Is a maker at `maker_price` at or better than a `side` taker's `limit`?"""
    return maker_price <= limit if side == BUY else maker_price >= limit


def valid_client_order_id(cid: str) -> bool:
    return 1 <= len(cid) <= limits.CLIENT_ORDER_ID_LENGTH_MAX and all(" " <= c <= "~" for c in cid)
