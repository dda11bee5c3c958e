"""The matching engine: price-time priority books, balances, fees, dedup.

`Engine.apply(command, block_time_ms)` is the only way state changes. It is
deterministic: no clock (time comes in with the block), no randomness, no
iteration over sets or hash-ordered containers; order and trade ids are
counters in the state. A command either takes full effect or is rejected with
a `Reason` and changes nothing.

Balances. Each account holds, per asset, `free` and `locked` units. A resting
order locks what it can still cost: a buy locks price x open lots in quote, a
sell locks open lots in base. A taker is debited directly from `free` as it
fills (it was checked to afford its whole order before any fill), and only a
remainder that rests is moved to `locked`. Each fill charges the maker and the
taker a fee in basis points of what *they receive* (base for the buyer, quote
for the seller), rounded down, credited to the fee account (id 0).

Invariants (checked by `check_invariants`): books sorted and uncrossed at
rest; each level's count and total equal its live orders; orders are queued in
non-decreasing time; every account's locked balance equals what its live
orders reserve; for every asset, the sum of free + locked over all accounts
(the fee account included) equals deposits - withdrawals.

The hot path is written flat on purpose (locals, no helper calls per fill,
events built with tuple.__new__): see docs/ENGINE.md for the measurements.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator

try:
    import cython  # compiled: Cython's own names (cython.cast); nothing is imported
except ImportError:  # pure, without Cython installed: the compiled-only lines never run
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False)  # all the pure module reads of it

from dex.core import limits
from dex.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Withdraw,
    valid_client_order_id,
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
from dex.core.markets import MarketConfig
from dex.core.reasons import Reason, StopReason
from dex.core.types import (
    FEE_ACCOUNT,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from dex.engine.shared import OrderView

from .snapshot import window_fold
from .book import (
    APPENDED,
    RECORD_NONE,
    SPARE_LEVELS_MAX,
    STALE_LEVELS_MAX,
    Account,
    Book,
    Level,
    Order,
    kind_post_only,
    kind_stp,
    kind_tif,
    kind_type,
    pack_kind,
)

_tuple_new = tuple.__new__
# A deque's methods called as functions: compiled, a call of the method
# descriptor (a C global, engine.pxd), where `orders.popleft()` looked the
# method up by name on every call (a maker filled, a dead order dropped).
_popleft = deque.popleft
_append = deque.append


def _new(cls, values):
    """An event: `tuple.__new__(cls, values)` for a NamedTuple class `cls`, its
    fields in order. Compiled, the instance is allocated and filled in C, as
    tuple.__new__ does for a subclass, without the argument tuple and the
    generic call around it (~190 ns less an event, several events a command).
    Pure Python, `_new` is tuple.__new__ itself (rebound below)."""
    if not _FAST_NEW:
        return _tuple_new(cls, values)
    if Py_REFCNT(values) == 1 and type(values) is tuple:  # noqa: F821 - compiled only (engine.pxd)
        # The caller's tuple literal, which nothing else holds: it becomes the
        # event, its class set in place (the same layout, checked at import),
        # so no second object is allocated, filled and the first freed. The
        # caller's reference is dropped after the call, ours is the event's.
        Py_INCREF(cls)  # noqa: F821 - an instance holds a reference to its heap type
        Py_SET_TYPE(values, cls)  # noqa: F821
        PyObject_GC_UnTrack(values)  # noqa: F821 - as below
        return values
    n = len(values)
    event = PyType_GenericAlloc(cls, n)  # noqa: F821 - compiled only (engine.pxd)
    for i in range(n):
        item = values[i]
        Py_INCREF(item)  # noqa: F821 - PyTuple_SET_ITEM takes the reference
        PyTuple_SET_ITEM(event, i, item)  # noqa: F821
    # An event holds ints, strs, None, bools and enum members: nothing that
    # can refer back to it, so it is never part of a reference cycle and the
    # collector need not walk it. CPython untracks a plain tuple of such items
    # at its first collection, but never a tuple subclass, so every event sat
    # in each young-generation collection until it was freed (the collector
    # was ~6% of a block's apply).
    PyObject_GC_UnTrack(event)  # noqa: F821
    return event


if not cython.compiled:  # Cython drops this branch when it compiles the module
    _new = tuple.__new__  # noqa: F811

# This module compiled by Cython (its __file__ is then the extension's): a
# few hot lines pick a form that cannot overflow 64-bit integers, which the
# pure engine's Python ints never do (docs/ENGINE.md, "Two implementations").
_COMPILED = not __file__.endswith(".py")

# The compiled _new fills an event itself: only for classes laid out exactly as
# a tuple (a NamedTuple: no instance dict, nothing past the items), and only on
# the CPython versions whose tuple it was checked against (3.11 to 3.13; a
# later one may keep more in a tuple than its items). Elsewhere tuple.__new__.
_FAST_NEW = (
    _COMPILED
    and sys.version_info < (3, 14)
    and all(
        c.__basicsize__ == tuple.__basicsize__ and c.__itemsize__ == tuple.__itemsize__ and not c.__dictoffset__
        and not c.__weakrefoffset__
        for c in (OrderAccepted, OrderRejected, OrderDuplicate, Trade, OrderCancelled, OrderExpired, OrderAmended, BalanceChanged)
    )
)

BUY = Side.BUY
SELL = Side.SELL
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
EXPIRE_TAKER = SelfTradePrevention.EXPIRE_TAKER
EXPIRE_MAKER = SelfTradePrevention.EXPIRE_MAKER
EXPIRE_BOTH = SelfTradePrevention.EXPIRE_BOTH
NEW = OrderStatus.NEW
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
CANCELED = OrderStatus.CANCELED
EXPIRED = OrderStatus.EXPIRED
# Compiled, C globals: on CPython 3.11 reading an Enum class's attribute goes
# through EnumType.__getattr__'s slot (~850 instructions and a Python frame
# each: a cancel's reason, an IOC's expiry, each order a mass cancel ends).
STOP_USER = StopReason.USER
STOP_CANCEL_ALL = StopReason.CANCEL_ALL
STOP_IOC = StopReason.IOC
STOP_FOK = StopReason.FOK
STOP_NO_BALANCE = StopReason.NO_BALANCE
STOP_SELF_TRADE = StopReason.SELF_TRADE
STOP_TRADES_MAX = StopReason.TRADES_MAX

# A PlaceOrder's valid enum values, each mapped to itself: _check_place tests
# membership, and _place reads them as plain ints for its checks and packing
# (compiled, C ints, where comparing an IntEnum object is a rich comparison
# each time, ~10 of them a limit order). A value that is no member maps to
# -1, which every check refuses as the member comparisons did. The keys are
# the members themselves: a command holds the members, and a lookup that
# finds its own key object skips comparing it (an equal int key cost an int
# comparison a lookup, four a limit order); a plain int finds its member.
_SIDE_CODE = {m: int(m) for m in Side}
_TYPE_CODE = {m: int(m) for m in OrderType}
_TIF_CODE = {m: int(m) for m in TimeInForce}
_STP_CODE = {m: int(m) for m in SelfTradePrevention}
BUY_I, SELL_I, LIMIT_I = int(BUY), int(SELL), int(LIMIT)
GTC_I, IOC_I, FOK_I = int(GTC), int(IOC), int(FOK)
# An order is live while its status is at most this. Compiled, an order's
# status is a C byte and this a C int: one C compare a maker visited, where
# comparing with the enum member boxed the byte and called int's compare.
LIVE_MAX_I = int(PARTIALLY_FILLED)

TRADES_MAX = limits.TRADES_PER_ORDER_MAX
DEDUP_MAX = limits.DEDUP_FINISHED_ORDERS_MAX
OPEN_MAX = limits.OPEN_ORDERS_PER_ACCOUNT_MAX
BOOK_MAX = limits.BOOK_ORDERS_MAX
BPS = 10_000  # compiled, a C constant: the fee arithmetic stays in C (engine.pxd)
_NO_LIMIT = limits.PRICE_TICKS_MAX + 1  # a market buy's price limit
INT64_MAX = limits.INT64_MAX  # compiled, a C constant (engine.pxd)


class Engine:
    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        self.assets: tuple[str, ...] = tuple(a.name for a in config.assets)
        self._asset_index = {name: i for i, name in enumerate(self.assets)}
        self.books: dict[str, Book] = {}
        for i, market in enumerate(config.markets):
            self.books[market.symbol] = Book(
                market, i, self._asset_index[market.base.name], self._asset_index[market.quote.name]
            )
        self.book_list: list[Book] = list(self.books.values())  # by Book.index (an order's `market`)
        self.accounts: dict[int, Account] = {}
        self._accounts_replaced()  # compiled: the cache in front of `accounts` (_cached_account)
        self.fee_account = Account(FEE_ACCOUNT, len(self.assets))
        self.accounts[FEE_ACCOUNT] = self.fee_account
        self.next_order_id = 1
        self.next_trade_id = 1
        self.deposited = [0] * len(self.assets)
        self.withdrawn = [0] * len(self.assets)
        # Incremental state hash (see dex/engine/snapshot.py): accounts whose
        # digest is stale, and the sum of every account's digest.
        self.dirty_accounts: list[Account] = []
        self.accounts_sum = 0
        self._handlers: dict[type, Callable] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            AmendOrder: self._amend,
            Deposit: self._deposit,
            Withdraw: self._withdraw,
        }

    # ------------------------------------------------------------------ apply

    def apply(self, command, block_time_ms: int) -> list:
        """Apply one command at the block's time; return its events in order."""
        # `type(command)`: compiled, a read of the object's type slot, where
        # `command.__class__` was a generic attribute lookup (1.5% of apply).
        kind = type(command)
        if kind is PlaceOrder:  # most commands: a direct call (a C call when compiled)
            return self._place(command, block_time_ms)
        if kind is CancelOrder:  # the next most: a cancel follows most resting orders
            return self._cancel(command, block_time_ms)
        return self._handlers[kind](command, block_time_ms)

    # ------------------------------------------------------------------ place

    def _place(self, cmd: PlaceOrder, now: int) -> list:
        # One unpack instead of ten attribute reads (a PlaceOrder is a
        # NamedTuple: dex/core/commands.py; a test pins its field order).
        # Compiled, cast to tuple first: Cython unpacks only an exact tuple
        # item by item, a NamedTuple through an iterator (~4% of the engine's
        # time); indexing the NamedTuple instead was 26% slower. Then C ints
        # for the checks below (see _SIDE_CODE).
        if _COMPILED:
            account_id, symbol, side, otype, tif, price, qty, quote_qty, post_only, stp, cid = cython.cast(tuple, cmd)
            # An exact member (what the decoder and the API put in a command)
            # is its own code: a type check and a C conversion, not a dict
            # lookup (four a place); anything else as the dicts decide.
            side_i = side if type(side) is Side else _SIDE_CODE.get(side, -1)
            otype_i = otype if type(otype) is OrderType else _TYPE_CODE.get(otype, -1)
            tif_i = tif if type(tif) is TimeInForce else _TIF_CODE.get(tif, -1)
            stp_i = stp if type(stp) is SelfTradePrevention else _STP_CODE.get(stp, -1)
            acct = _account_of(self, account_id)
            book = _book_of(self, symbol)
        else:  # the objects themselves: the pure engine compares them as fast
            account_id, symbol, side, otype, tif, price, qty, quote_qty, post_only, stp, cid = cmd
            side_i = side
            otype_i = otype
            tif_i = tif
            stp_i = stp
            acct = self.accounts.get(account_id)
            book = self.books.get(symbol)
        if book is None:
            return [_new(OrderRejected, (account_id, symbol, cid, 0, Reason.UNKNOWN_SYMBOL))]
        if cid is not None:
            if acct is not None:
                prev = acct.cids.get(cid)
                if prev is not None:
                    return [_duplicate(prev, self.book_list[prev.market].symbol)]
            if not (_valid_cid(cid) if _COMPILED else valid_client_order_id(cid)):
                return [_new(OrderRejected, (account_id, symbol, cid, 0, Reason.BAD_CLIENT_ORDER_ID))]
        if otype_i != LIMIT_I:
            return self._place_market(cmd, book, acct, now)

        # LIMIT: the checks of _check_place, in the same order, inlined, on
        # the price and quantity as machine integers (`_lots`: compiled, C
        # ints, so no check below boxes a book's bound to compare it).
        p = _lots(price)
        q = _lots(qty)
        if (side_i != BUY_I and side_i != SELL_I) or (tif_i != GTC_I and tif_i != IOC_I and tif_i != FOK_I) or not 0 <= stp_i <= 2:
            reason = Reason.BAD_PARAMETER
        elif acct is None:
            reason = Reason.INSUFFICIENT_BALANCE
        elif acct.id == FEE_ACCOUNT:
            reason = Reason.RESERVED_ACCOUNT
        elif quote_qty:
            reason = Reason.BAD_PARAMETER
        elif not 0 < p <= book.max_price:
            reason = Reason.PRICE_FILTER
        elif not book.min_qty <= q <= book.max_qty:
            reason = Reason.LOT_SIZE
        else:
            reason = None
            # p x notional_units fits 2^62 (a market rule); times q it may
            # not: capped, it still exceeds every balance and min_notional
            # (both <= 2^62), so every decision below is the exact cost's.
            cost = _mul_capped(p * book.notional_units, q)
            # Against the best price read as a C int (compiled): no negated
            # key is allocated and `p` is not boxed to compare.
            crosses = False
            if side_i == BUY_I:
                ask_keys = book.ask_keys
                if ask_keys:
                    top = ask_keys[-1]
                    crosses = -top <= p
            else:
                bid_prices = book.bid_prices
                if bid_prices:
                    top = bid_prices[-1]
                    crosses = top >= p
            if cost < book.min_notional:
                reason = Reason.NOTIONAL
            elif post_only and tif_i != GTC_I:
                reason = Reason.BAD_PARAMETER
            elif post_only and crosses:
                reason = Reason.WOULD_TAKE
            elif tif_i == GTC_I and len(acct.open) >= (open_max := OPEN_MAX):  # compiled: C ints compared (engine.pxd)
                reason = Reason.MAX_NUM_ORDERS
            elif tif_i == GTC_I and book.order_count >= (book_max := BOOK_MAX):
                reason = Reason.BOOK_FULL
            else:
                # The account's balances: compiled, C pointers into its
                # arrays (book.Account), so the checks and the lock below are
                # C arithmetic; in pure Python, its lists. Cython decides
                # `cython.compiled` when it compiles: the other arm is dropped.
                af = acct.free.data.as_longlongs if cython.compiled else acct.free
                al = acct.locked.data.as_longlongs if cython.compiled else acct.locked
                if side_i == BUY_I:
                    if af[book.quote] < cost:
                        reason = Reason.INSUFFICIENT_BALANCE
                elif af[book.base] < _mul_capped(q, book.lot_units):
                    reason = Reason.INSUFFICIENT_BALANCE
        if reason is not None:
            return [_new(OrderRejected, (account_id, symbol, cid, 0, reason))]

        if not acct.dirty:
            acct.dirty = True
            self.dirty_accounts.append(acct)
        book.digest = None
        oid = self.next_order_id
        self.next_order_id = oid + 1
        events = [_new(OrderAccepted, (oid, acct.id, book.symbol, side, LIMIT, tif, price, qty, 0, cid))]
        kind = (tif_i << 1) | (8 if post_only else 0) | (stp_i << 4) | (side_i << 6)  # pack_kind(LIMIT, tif, post_only, stp, side)

        if not crosses:  # passive: no matching
            if tif_i != GTC_I:
                events.append(_new(OrderExpired, (oid, acct.id, book.symbol, qty, STOP_IOC if tif_i == IOC_I else STOP_FOK)))
                if cid is not None:
                    order = _order(oid, acct, book, p, q, 0, cid, now, EXPIRED, kind)
                    acct.cids[cid] = order
                    _finish(acct, order)
                return events
            # Rest it (inlined _rest). `amount` is at most the free balance
            # just checked: it fits 64 bits.
            if side_i == BUY_I:
                amount = cost
                af[book.quote] -= amount
                al[book.quote] += amount
                levels = book.bids
                level = levels.get(price)
                if level is None:
                    level = _add_level(book, levels, book.bid_prices, book.bid_records, book.bid_levels, price, price)
            else:
                amount = q * book.lot_units
                af[book.base] -= amount
                al[book.base] += amount
                levels = book.asks
                level = levels.get(price)
                if level is None:
                    level = _add_level(book, levels, book.ask_keys, book.ask_records, book.ask_levels, -price, price)
            order = _order(oid, acct, book, level.price, q, 0, cid, now, NEW, kind)
            digest = level.digest
            if digest is not None and digest is not APPENDED:  # _appended(book, level, key), inlined
                level.digest = APPENDED
                _list_stale(book, price if side_i == BUY_I else -price)
            _append(level.orders, order)
            level.total += q
            level.count += 1
            acct.open.put(oid, order)
            book.order_count += 1
            if cid is not None:
                acct.cids[cid] = order
            return events

        if tif_i == FOK_I and not _fok_fillable(book, acct, side_i, p, q, stp_i):
            events.append(_new(OrderExpired, (oid, acct.id, book.symbol, qty, STOP_FOK)))
            if cid is not None:
                order = _order(oid, acct, book, p, q, 0, cid, now, EXPIRED, kind)
                acct.cids[cid] = order
                _finish(acct, order)
            return events

        # Crossing: match, then rest or expire what remains. Without a client
        # id nothing needs the order object until it rests (most takers never
        # do), so it is built only then; with one, the dedup window holds it
        # from the start.
        order = None
        if cid is not None:
            order = _order(oid, acct, book, p, q, 0, cid, now, NEW, kind)
            acct.cids[cid] = order
        if side_i == BUY_I:
            remaining, stop = self._take_buy(book, acct, oid, p, q, af[book.quote], stp_i, events, order)
        else:
            remaining, stop = self._take_sell(book, acct, oid, p, q, stp_i, events, order)
        if remaining == 0:
            if order is not None:
                order.qty = 0
                order.status = FILLED
                _finish(acct, order)
            return events
        if stop is None:
            if tif_i == GTC_I:
                status = PARTIALLY_FILLED if remaining < q else NEW
                if order is None:
                    order = _order(oid, acct, book, p, remaining, q - remaining, None, now, status, kind)
                else:
                    order.qty = remaining
                    order.status = status
                _rest(book, acct, order)
                return events
            stop = STOP_IOC if tif_i == IOC_I else STOP_FOK
        events.append(_new(OrderExpired, (oid, acct.id, book.symbol, remaining, stop)))
        if order is not None:
            order.qty = remaining
            order.status = EXPIRED
            _finish(acct, order)
        return events

    def _place_market(self, cmd: PlaceOrder, book: Book, acct: Account | None, now: int) -> list:
        cid = cmd.client_order_id
        reason = self._check_place(cmd, book, acct)
        if reason is not None:
            return [_new(OrderRejected, (cmd.account, cmd.symbol, cid, 0, reason))]
        if not acct.dirty:
            acct.dirty = True
            self.dirty_accounts.append(acct)
        book.digest = None
        side = cmd.side
        qty = cmd.qty
        quote_qty = cmd.quote_qty
        oid = self.next_order_id
        self.next_order_id = oid + 1
        events = [_new(OrderAccepted, (oid, acct.id, book.symbol, side, MARKET, IOC, 0, qty, quote_qty, cid))]
        order = None
        if cid is not None:
            order = _order(oid, acct, book, 0, qty, 0, cid, now, NEW, pack_kind(MARKET, IOC, False, cmd.stp, side))
            acct.cids[cid] = order
        if side == BUY:
            if quote_qty:
                self._take_buy(book, acct, oid, _NO_LIMIT, 0, quote_qty, cmd.stp, events, order)
            else:
                self._take_buy(book, acct, oid, _NO_LIMIT, qty, acct.free[book.quote], cmd.stp, events, order)
        else:
            self._take_sell(book, acct, oid, 0, qty, cmd.stp, events, order)
        if order is not None:
            _finish(acct, order)
        return events

    def _check_place(self, cmd: PlaceOrder, book: Book, acct: Account | None) -> Reason | None:
        """Every reason a place can be rejected, checked before any effect."""
        side = cmd.side
        otype = cmd.type
        if side not in _SIDE_CODE or otype not in _TYPE_CODE or cmd.tif not in _TIF_CODE or cmd.stp not in _STP_CODE:
            return Reason.BAD_PARAMETER
        if acct is None:
            return Reason.INSUFFICIENT_BALANCE
        if acct.id == FEE_ACCOUNT:
            return Reason.RESERVED_ACCOUNT
        # The price and quantity as _place reads them (`_lots`: an int in
        # [0, 2^62), else -1, which every bound refuses).
        qty = _lots(cmd.qty)
        price = cmd.price
        if otype == LIMIT:
            price = _lots(price)
            if cmd.quote_qty:
                return Reason.BAD_PARAMETER
            if not 0 < price <= book.max_price:
                return Reason.PRICE_FILTER
            if not book.min_qty <= qty <= book.max_qty:
                return Reason.LOT_SIZE
            cost = price * qty * book.notional_units
            if cost < book.min_notional:
                return Reason.NOTIONAL
            if cmd.post_only:
                if cmd.tif != GTC:
                    return Reason.BAD_PARAMETER
                if side == BUY:
                    if book.ask_keys and -book.ask_keys[-1] <= price:
                        return Reason.WOULD_TAKE
                elif book.bid_prices and book.bid_prices[-1] >= price:
                    return Reason.WOULD_TAKE
            if cmd.tif == GTC:
                if len(acct.open) >= OPEN_MAX:
                    return Reason.MAX_NUM_ORDERS
                if book.order_count >= BOOK_MAX:
                    return Reason.BOOK_FULL
            if side == BUY:
                if acct.free[book.quote] < cost:
                    return Reason.INSUFFICIENT_BALANCE
            elif acct.free[book.base] < qty * book.lot_units:
                return Reason.INSUFFICIENT_BALANCE
            return None
        # MARKET
        if price != 0 or cmd.post_only:
            return Reason.BAD_PARAMETER
        if cmd.quote_qty:
            if side == SELL:
                return Reason.QUOTE_QTY_SELL
            if qty != 0 or not isinstance(cmd.quote_qty, int) or cmd.quote_qty < 0 or cmd.quote_qty > limits.AMOUNT_UNITS_MAX:
                return Reason.BAD_PARAMETER
            if cmd.quote_qty < book.min_notional:
                return Reason.NOTIONAL
            if acct.free[book.quote] < cmd.quote_qty:
                return Reason.INSUFFICIENT_BALANCE
            return None
        if not book.min_qty <= qty <= book.max_qty:
            return Reason.LOT_SIZE
        if side == BUY:
            if acct.free[book.quote] <= 0:
                return Reason.INSUFFICIENT_BALANCE
        elif acct.free[book.base] < qty * book.lot_units:
            return Reason.INSUFFICIENT_BALANCE
        return None

    def _take_buy(self, book, acct, oid, limit, qty, budget, stp, events, order):
        """Buy from the asks up to `limit`, for `qty` lots or, when qty is 0,
        for as much as `budget` quote units buy. Never spends more than
        `budget`. Returns (lots left, or budget left when buying by quote;
        StopReason or None). For a market order it also finishes the order."""
        ask_keys = book.ask_keys
        ask_levels = book.ask_levels
        asks = book.asks
        nu = book.notional_units
        lu = book.lot_units
        mbps = book.maker_bps
        tbps = book.taker_bps
        b = book.base
        q = book.quote
        tf = acct.free.data.as_longlongs if cython.compiled else acct.free  # see _place
        ff = self.fee_account.free.data.as_longlongs if cython.compiled else self.fee_account.free
        acct_id = acct.id
        accounts = self.accounts
        dirty = self.dirty_accounts
        symbol = book.symbol
        by_quote = qty == 0
        remaining = qty
        trades = 0
        trades_max = TRADES_MAX
        stop = None
        filled = 0
        tid = self.next_trade_id
        # The price and the taker's id as Python ints made once (a level's,
        # the command's), for the dict lookups and every trade event: compiled,
        # `best` and `oid` are C integers that each use would box again.
        oid_obj = oid
        while ask_keys:
            ask_key = ask_keys[-1]
            best_obj = -ask_key
            best = best_obj
            if best > limit:
                break
            level = ask_levels[-1]  # the level at ask_keys[-1] (book.py): no dict lookup
            if level.digest is not None:  # _stale(book, level, -best), inlined
                if level.digest is not APPENDED:
                    _list_stale(book, ask_key)
                level.digest = None
            orders = level.orders
            unit_cost = best * nu
            while True:
                maker = orders[0]
                if maker.status > LIVE_MAX_I:  # cancelled: dead in the queue
                    _popleft(orders)
                    continue
                if by_quote and budget < unit_cost:
                    # Done: what is left buys no lot here. Checked before
                    # self-trade prevention, which must not touch a maker the
                    # order would never have traded with.
                    stop = STOP_NO_BALANCE
                    break
                mq = maker.qty
                if maker.account == acct_id:
                    if stp == EXPIRE_TAKER:
                        stop = STOP_SELF_TRADE
                        break
                    self._stp_cancel(book, level, maker, acct, events)
                    if stp == EXPIRE_BOTH:
                        stop = STOP_SELF_TRADE
                        break
                    if level.count == 0:
                        break
                    continue
                if trades == trades_max:
                    stop = STOP_TRADES_MAX
                    break
                mk = _cached_account(self, maker.account) if _COMPILED else accounts[maker.account]
                if by_quote:
                    fill = budget // unit_cost
                    if fill == 0:
                        stop = STOP_NO_BALANCE
                        break
                    if fill > mq:
                        fill = mq
                else:
                    fill = mq if mq < remaining else remaining
                    # `budget < fill * unit_cost`; compiled, without the
                    # product, which can pass 2^63 (its integers are 64-bit).
                    if (budget // unit_cost < fill) if _COMPILED else (budget < fill * unit_cost):
                        fill = budget // unit_cost
                        # It buys the lots it can; the rest expires for want of balance,
                        # whatever the next step would have hit (ENGINE.md).
                        stop = STOP_NO_BALANCE
                        if fill == 0:
                            break
                if not mk.dirty:
                    mk.dirty = True
                    dirty.append(mk)
                notional = unit_cost * fill
                base_amt = fill * lu
                # `amount * bps // BPS`; compiled, without the product, which
                # can pass 2^63. (The pure engine's ints do not overflow and
                # the split form costs it 4% of its throughput.)
                if _COMPILED:
                    mfee = notional // BPS * mbps + notional % BPS * mbps // BPS
                    tfee = base_amt // BPS * tbps + base_amt % BPS * tbps // BPS
                else:
                    mfee = notional * mbps // BPS
                    tfee = base_amt * tbps // BPS
                budget -= notional
                tf[q] -= notional
                tf[b] += base_amt - tfee
                mkl = mk.locked.data.as_longlongs if cython.compiled else mk.locked  # as tf
                mkf = mk.free.data.as_longlongs if cython.compiled else mk.free
                mkl[b] -= base_amt
                mkf[q] += notional - mfee
                ff[b] += tfee
                ff[q] += mfee
                events.append(_new(Trade, (tid, symbol, best_obj, fill, BUY, maker.id, oid_obj, mk.id, acct.id, mfee, tfee)))
                tid += 1
                trades += 1
                filled += fill
                remaining -= fill
                level.total -= fill
                maker.filled += fill
                if mq == fill:  # the maker is done
                    maker.qty = 0
                    maker.status = FILLED
                    _popleft(orders)
                    level.count -= 1
                    book.order_count -= 1
                    mk.open.remove(maker.id)
                    if maker.cid is not None:
                        _finish(mk, maker)
                    if level.count == 0:
                        break
                else:
                    maker.qty = mq - fill
                    maker.status = PARTIALLY_FILLED
                    if stop is not None:  # a fill the budget cut short (it never empties the maker)
                        break
                if not by_quote and remaining == 0:
                    break
            if level.count == 0:
                del asks[best_obj]
                ask_keys.pop()
                ask_levels.pop()
                book.ask_records.pop()
                _spare(book, level)
            if stop is not None or (not by_quote and remaining == 0):
                break
        self.next_trade_id = tid
        if order is not None:
            order.filled = filled
        if by_quote:
            remaining = budget
        if limit == _NO_LIMIT:  # market order: finish it here
            self._end_market(book, acct, oid, by_quote, remaining, filled, stop, events, order)
        return remaining, stop

    def _take_sell(self, book, acct, oid, limit, qty, stp, events, order):
        """Sell `qty` lots into the bids down to `limit` (0 for a market sell)."""
        bid_prices = book.bid_prices
        bid_levels = book.bid_levels
        bids = book.bids
        nu = book.notional_units
        lu = book.lot_units
        mbps = book.maker_bps
        tbps = book.taker_bps
        b = book.base
        q = book.quote
        tf = acct.free.data.as_longlongs if cython.compiled else acct.free  # see _place
        ff = self.fee_account.free.data.as_longlongs if cython.compiled else self.fee_account.free
        acct_id = acct.id
        accounts = self.accounts
        dirty = self.dirty_accounts
        symbol = book.symbol
        remaining = qty
        trades = 0
        trades_max = TRADES_MAX
        stop = None
        filled = 0
        tid = self.next_trade_id
        oid_obj = oid  # as in _take_buy
        while bid_prices:
            best_obj = bid_prices[-1]
            best = best_obj
            if best < limit:
                break
            level = bid_levels[-1]  # as in _take_buy
            if level.digest is not None:  # _stale(book, level, best), inlined
                if level.digest is not APPENDED:
                    _list_stale(book, best_obj)
                level.digest = None
            orders = level.orders
            unit_cost = best * nu
            while True:
                maker = orders[0]
                if maker.status > LIVE_MAX_I:  # cancelled: dead in the queue
                    _popleft(orders)
                    continue
                mq = maker.qty
                if maker.account == acct_id:
                    if stp == EXPIRE_TAKER:
                        stop = STOP_SELF_TRADE
                        break
                    self._stp_cancel(book, level, maker, acct, events)
                    if stp == EXPIRE_BOTH:
                        stop = STOP_SELF_TRADE
                        break
                    if level.count == 0:
                        break
                    continue
                if trades == trades_max:
                    stop = STOP_TRADES_MAX
                    break
                mk = _cached_account(self, maker.account) if _COMPILED else accounts[maker.account]
                fill = mq if mq < remaining else remaining
                if not mk.dirty:
                    mk.dirty = True
                    dirty.append(mk)
                notional = unit_cost * fill
                base_amt = fill * lu
                if _COMPILED:  # as in _take_buy
                    mfee = base_amt // BPS * mbps + base_amt % BPS * mbps // BPS
                    tfee = notional // BPS * tbps + notional % BPS * tbps // BPS
                else:
                    mfee = base_amt * mbps // BPS
                    tfee = notional * tbps // BPS
                tf[b] -= base_amt
                tf[q] += notional - tfee
                mkl = mk.locked.data.as_longlongs if cython.compiled else mk.locked  # as tf
                mkf = mk.free.data.as_longlongs if cython.compiled else mk.free
                mkl[q] -= notional
                mkf[b] += base_amt - mfee
                ff[b] += mfee
                ff[q] += tfee
                events.append(_new(Trade, (tid, symbol, best_obj, fill, SELL, maker.id, oid_obj, mk.id, acct.id, mfee, tfee)))
                tid += 1
                trades += 1
                filled += fill
                remaining -= fill
                level.total -= fill
                maker.filled += fill
                if mq == fill:  # the maker is done
                    maker.qty = 0
                    maker.status = FILLED
                    _popleft(orders)
                    level.count -= 1
                    book.order_count -= 1
                    mk.open.remove(maker.id)
                    if maker.cid is not None:
                        _finish(mk, maker)
                    if level.count == 0:
                        break
                else:
                    maker.qty = mq - fill
                    maker.status = PARTIALLY_FILLED
                if remaining == 0:
                    break
            if level.count == 0:
                del bids[best_obj]
                bid_prices.pop()
                bid_levels.pop()
                book.bid_records.pop()
                _spare(book, level)
            if stop is not None or remaining == 0:
                break
        self.next_trade_id = tid
        if order is not None:
            order.filled = filled
        if limit == 0:
            self._end_market(book, acct, oid, False, remaining, filled, stop, events, order)
        return remaining, stop

    def _end_market(self, book, acct, oid, by_quote, remaining, filled, stop, events, order):
        """A market order never rests: expire what it could not fill."""
        if by_quote:
            # By quote amount (`remaining` is the budget left): FILLED once
            # the budget buys no further lot at the best price or is spent;
            # EXPIRED if the book ran out first, or nothing filled at all.
            done = filled > 0 and (stop == STOP_NO_BALANCE or remaining == 0)
            if not done:
                events.append(_new(OrderExpired, (oid, acct.id, book.symbol, 0, stop or STOP_IOC)))
            if order is not None:
                order.qty = 0
                order.status = FILLED if done else EXPIRED
            return
        if remaining:
            events.append(_new(OrderExpired, (oid, acct.id, book.symbol, remaining, stop or STOP_IOC)))
        if order is not None:
            order.qty = remaining
            order.status = EXPIRED if remaining else FILLED

    # ----------------------------------------------------------------- cancel

    def _touch(self, acct: Account) -> None:
        """`acct` is about to change: its digest must be recomputed."""
        if not acct.dirty:
            acct.dirty = True
            self.dirty_accounts.append(acct)

    def _stp_cancel(self, book: Book, level: Level, maker: Order, acct: Account, events: list) -> None:
        """Self-trade prevention cancels `maker`, the front of `level` and an
        order of `acct` (the taker's own), in the middle of matching: the
        caller's loop removes the level if it empties."""
        qty = maker.qty
        af = acct.free.data.as_longlongs if cython.compiled else acct.free  # see _place
        al = acct.locked.data.as_longlongs if cython.compiled else acct.locked
        if (maker.kind >> 6) == BUY:
            amount = maker.price * qty * book.notional_units  # what it locked: it fits 64 bits
            al[book.quote] -= amount
            af[book.quote] += amount
        else:
            amount = qty * book.lot_units
            al[book.base] -= amount
            af[book.base] += amount
        _popleft(level.orders)
        level.total -= qty
        level.count -= 1
        book.order_count -= 1
        maker.status = CANCELED
        acct.open.remove(maker.id)
        if maker.cid is not None:
            _finish(acct, maker)
        events.append(_new(OrderCancelled, (maker.id, acct.id, book.symbol, qty, STOP_SELF_TRADE)))

    def _cancel_order(self, order: Order, acct: Account, reason: StopReason, events: list) -> None:
        """Take a live order of `acct` out of its book, release its lock, finish it."""
        book = self.book_list[order.market]
        qty = order.qty
        self._touch(acct)
        book.digest = None
        af = acct.free.data.as_longlongs if cython.compiled else acct.free  # see _place
        al = acct.locked.data.as_longlongs if cython.compiled else acct.locked
        if (order.kind >> 6) == BUY_I:
            amount = order.price * qty * book.notional_units  # what it locked: it fits 64 bits
            al[book.quote] -= amount
            af[book.quote] += amount
            levels = book.bids
        else:
            amount = qty * book.lot_units
            al[book.base] -= amount
            af[book.base] += amount
            levels = book.asks
        order.status = CANCELED
        _unqueue(book, levels, order)
        acct.open.remove(order.id)
        if order.cid is not None:
            _finish(acct, order)
        events.append(_new(OrderCancelled, (order.id, acct.id, book.symbol, qty, reason)))

    def _find(self, acct: Account | None, symbol: str, order_id: int, cid: str | None) -> Order | None:
        """The account's order in `symbol` by id (live only) or by client id
        (live or within the dedup window)."""
        if acct is None:
            return None
        if order_id:
            order = acct.open.get(order_id)
        elif cid is not None:
            order = acct.cids.get(cid)
        else:
            return None
        if order is None:
            return None
        book = self.books.get(symbol)
        if book is None or order.market != book.index:
            return None
        return order

    def _cancel(self, cmd: CancelOrder, now: int) -> list:
        # One unpack, not four attribute reads (as _place; a test pins the
        # field order of CancelOrder).
        account_id, symbol, order_id, cid = cython.cast(tuple, cmd) if _COMPILED else cmd
        acct = _account_of(self, account_id) if _COMPILED else self.accounts.get(account_id)
        order = self._find(acct, symbol, order_id, cid)
        if order is None:
            reason = Reason.UNKNOWN_ORDER if symbol in self.books else Reason.UNKNOWN_SYMBOL
            return [OrderRejected(account_id, symbol, cid, order_id, reason)]
        if order.status > LIVE_MAX_I:
            return [OrderRejected(account_id, symbol, cid, order.id, Reason.CANCEL_REJECTED)]
        events: list = []
        self._cancel_order(order, acct, STOP_USER, events)
        return events

    def _cancel_all(self, cmd: CancelAll, now: int) -> list:
        if cmd.symbol is not None and cmd.symbol not in self.books:
            return [OrderRejected(cmd.account, cmd.symbol, None, 0, Reason.UNKNOWN_SYMBOL)]
        acct = self.accounts.get(cmd.account)
        events: list = []
        if acct is None:
            return events
        market = -1 if cmd.symbol is None else self.books[cmd.symbol].index
        for order_id in acct.open.ids():
            order = acct.open.get(order_id)
            if market < 0 or order.market == market:
                self._cancel_order(order, acct, STOP_CANCEL_ALL, events)
        return events

    # ------------------------------------------------------------------ amend

    def _amend(self, cmd: AmendOrder, now: int) -> list:
        acct = self.accounts.get(cmd.account)
        order = self._find(acct, cmd.symbol, cmd.order_id, cmd.client_order_id)

        def reject(reason: Reason) -> list:
            target = order.id if order is not None else cmd.order_id
            return [OrderRejected(cmd.account, cmd.symbol, cmd.client_order_id, target, reason)]

        if order is None:
            return reject(Reason.UNKNOWN_ORDER if cmd.symbol in self.books else Reason.UNKNOWN_SYMBOL)
        if order.status > LIVE_MAX_I:
            return reject(Reason.UNKNOWN_ORDER)
        book = self.book_list[order.market]
        price = cmd.price or order.price
        total = cmd.qty or (order.filled + order.qty)
        if cmd.price < 0 or cmd.qty < 0:
            return reject(Reason.BAD_PARAMETER)
        if not 0 < price <= book.max_price:
            return reject(Reason.PRICE_FILTER)
        if not (book.min_qty <= total <= book.max_qty) or total <= order.filled:
            return reject(Reason.LOT_SIZE)
        remaining = total - order.filled
        if price * total * book.notional_units < book.min_notional:
            return reject(Reason.NOTIONAL)
        # What the order will reserve against what it reserves now.
        if (order.kind >> 6) == BUY:
            asset = book.quote
            delta = price * remaining * book.notional_units - order.price * order.qty * book.notional_units
            crosses = bool(book.ask_keys) and -book.ask_keys[-1] <= price
        else:
            asset = book.base
            delta = (remaining - order.qty) * book.lot_units
            crosses = bool(book.bid_prices) and book.bid_prices[-1] >= price
        if delta > acct.free[asset]:
            return reject(Reason.INSUFFICIENT_BALANCE)
        if crosses and kind_post_only(order.kind):
            return reject(Reason.WOULD_TAKE)
        self._touch(acct)
        book.digest = None

        if price == order.price and remaining <= order.qty:
            # Lower (or same) quantity at the same price keeps its place.
            if (order.kind >> 6) == BUY:
                level, key = book.bids[price], price
            else:
                level, key = book.asks[price], -price
            level.total -= order.qty - remaining
            _stale(book, level, key)
            acct.locked[asset] += delta
            acct.free[asset] -= delta
            order.qty = remaining
            return [OrderAmended(order.id, acct.id, book.symbol, price, total, True)]

        # New price or more quantity: leave the queue and come back as if new
        # (matching first if the new price crosses), keeping id and fills.
        if (order.kind >> 6) == BUY:
            old_lock = order.price * order.qty * book.notional_units
            levels = book.bids
        else:
            old_lock = order.qty * book.lot_units
            levels = book.asks
        acct.locked[asset] -= old_lock
        acct.free[asset] += old_lock
        status = order.status
        order.status = CANCELED  # the old queue entry is dead; `fresh` replaces it
        _unqueue(book, levels, order)
        acct.open.remove(order.id)
        fresh = _order(order.id, acct, book, price, remaining, order.filled, order.cid, now, status, order.kind)
        if fresh.cid is not None:
            acct.cids[fresh.cid] = fresh
        events: list = [OrderAmended(order.id, acct.id, book.symbol, price, total, False)]
        if not crosses:
            _rest(book, acct, fresh)
            return events
        filled_before = fresh.filled
        if (fresh.kind >> 6) == BUY:
            remaining_after, stop = self._take_buy(book, acct, fresh.id, price, remaining, acct.free[book.quote], kind_stp(fresh.kind), events, None)
        else:
            remaining_after, stop = self._take_sell(book, acct, fresh.id, price, remaining, kind_stp(fresh.kind), events, None)
        fresh.filled = filled_before + (remaining - remaining_after)
        if remaining_after == 0:
            fresh.qty = 0
            fresh.status = FILLED
            if fresh.cid is not None:
                _finish(acct, fresh)
        elif stop is not None:
            events.append(OrderExpired(fresh.id, acct.id, book.symbol, remaining_after, stop))
            fresh.qty = remaining_after
            fresh.status = EXPIRED
            if fresh.cid is not None:
                _finish(acct, fresh)
        else:
            fresh.qty = remaining_after
            fresh.status = PARTIALLY_FILLED if fresh.filled else NEW
            _rest(book, acct, fresh)
        return events

    # ---------------------------------------------------------------- wallet

    def _deposit(self, cmd: Deposit, now: int) -> list:
        a = self._asset_index.get(cmd.asset)
        if a is None:
            return [OrderRejected(cmd.account, None, None, 0, Reason.UNKNOWN_ASSET)]
        if cmd.account <= FEE_ACCOUNT:
            return [OrderRejected(cmd.account, None, None, 0, Reason.RESERVED_ACCOUNT)]
        if cmd.account > limits.ACCOUNT_ID_MAX:
            return [OrderRejected(cmd.account, None, None, 0, Reason.BAD_PARAMETER)]
        if not 0 < cmd.amount <= limits.AMOUNT_UNITS_MAX:
            return [OrderRejected(cmd.account, None, None, 0, Reason.BAD_AMOUNT)]
        if self.deposited[a] - self.withdrawn[a] + cmd.amount > limits.BALANCE_UNITS_MAX:
            return [OrderRejected(cmd.account, None, None, 0, Reason.BALANCE_OVERFLOW)]
        acct = self.accounts.get(cmd.account)
        if acct is None:
            if len(self.accounts) > limits.ACCOUNTS_MAX:
                return [OrderRejected(cmd.account, None, None, 0, Reason.TOO_MANY_ACCOUNTS)]
            acct = self.accounts[cmd.account] = Account(cmd.account, len(self.assets))
        self._touch(acct)
        acct.free[a] += cmd.amount
        self.deposited[a] += cmd.amount
        return [BalanceChanged(acct.id, cmd.asset, cmd.amount, acct.free[a])]

    def _withdraw(self, cmd: Withdraw, now: int) -> list:
        a = self._asset_index.get(cmd.asset)
        if a is None:
            return [OrderRejected(cmd.account, None, None, 0, Reason.UNKNOWN_ASSET)]
        if cmd.account <= FEE_ACCOUNT:
            return [OrderRejected(cmd.account, None, None, 0, Reason.RESERVED_ACCOUNT)]
        if cmd.account > limits.ACCOUNT_ID_MAX:
            return [OrderRejected(cmd.account, None, None, 0, Reason.BAD_PARAMETER)]
        if not 0 < cmd.amount <= limits.AMOUNT_UNITS_MAX:
            return [OrderRejected(cmd.account, None, None, 0, Reason.BAD_AMOUNT)]
        acct = self.accounts.get(cmd.account)
        if acct is None or acct.free[a] < cmd.amount:
            return [OrderRejected(cmd.account, None, None, 0, Reason.WITHDRAW_INSUFFICIENT)]
        self._touch(acct)
        acct.free[a] -= cmd.amount
        self.withdrawn[a] += cmd.amount
        return [BalanceChanged(acct.id, cmd.asset, -cmd.amount, acct.free[a])]

    # ---------------------------------------------------------------- queries

    def order(self, account: int, symbol: str, order_id: int = 0, client_order_id: str | None = None) -> OrderView | None:
        order = self._find(self.accounts.get(account), symbol, order_id, client_order_id)
        return None if order is None else _view(order, symbol)

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]:
        acct = self.accounts.get(account)
        if acct is None:
            return []
        books = self.book_list
        orders = [acct.open.get(i) for i in acct.open.ids()]
        return [_view(o, books[o.market].symbol) for o in orders if symbol is None or books[o.market].symbol == symbol]

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        """asset -> (free, locked) units, every asset listed."""
        acct = self.accounts.get(account)
        if acct is None:
            return {name: (0, 0) for name in self.assets}
        return {name: (acct.free[i], acct.locked[i]) for i, name in enumerate(self.assets)}

    def depth(self, symbol: str, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `limit` levels per side as (price ticks, lots), best first."""
        book = self.books[symbol]
        bids = [(p, book.bids[p].total) for p in book.bid_prices[: -limit - 1 : -1]]
        asks = [(-k, book.asks[-k].total) for k in book.ask_keys[: -limit - 1 : -1]]
        return bids, asks

    def live_orders(self, symbol: str) -> Iterator[Order]:
        """Every live order of a market: bids best first, then asks, FIFO."""
        book = self.books[symbol]
        for p in reversed(book.bid_prices):
            for o in book.bids[p].orders:
                if o.status <= LIVE_MAX_I:
                    yield o
        for k in reversed(book.ask_keys):
            for o in book.asks[-k].orders:
                if o.status <= LIVE_MAX_I:
                    yield o

    # ------------------------------------------------- state hash and snapshot

    def snapshot(self) -> bytes:
        from .snapshot import encode

        return encode(self)

    def state_hash(self, version: int = 2) -> str:
        """The state hash of `version` (1 or 2: dex.engine.snapshot), the
        one a block header of that version carries."""
        from .snapshot import state_hash

        return state_hash(self, version)

    @classmethod
    def restore(cls, config: MarketConfig, data: bytes) -> Engine:
        from .snapshot import decode

        return decode(cls(config), data)

    def _accounts_replaced(self) -> None:
        """`accounts` is being refilled (a snapshot read into this engine):
        compiled, empty the account cache in front of it."""
        if cython.compiled:
            self._account_ids = array("Q", bytes(8 * _ACCOUNT_CACHE))
            self._account_slots = [None] * _ACCOUNT_CACHE

    # -------------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        from .invariants import check

        check(self)


# ---------------------------------------------------------------- helpers


CLIENT_ORDER_ID_MAX = limits.CLIENT_ORDER_ID_LENGTH_MAX  # compiled, a C constant (engine.pxd)
_LOTS_END = 2**62  # compiled, a C constant (engine.pxd): `_lots` compares without boxing


def _lots(v) -> int:
    """A command's price or quantity as the engine checks it: `v` when it is
    an int in [0, 2^62), else -1, which every bound refuses (a price or a
    quantity is at most 2^40, dex/core/markets.py). Compiled, a C int, read
    without allocating anything."""
    if isinstance(v, int):
        try:
            x = v  # compiled: a C long long (OverflowError past it), so the bounds below are C compares
        except OverflowError:
            return -1
        if 0 <= x < _LOTS_END:
            return x
    return -1


def _mul_capped(a, b) -> int:
    """a x b for 0 <= a, b < 2^63, capped at 2^63 - 1 (compiled, C arithmetic
    that cannot overflow)."""
    if b != 0 and a > INT64_MAX // b:
        return INT64_MAX
    return a * b


# Compiled, an Engine keeps a direct-mapped cache of its accounts by u64 id in
# front of the `accounts` dict: _ACCOUNT_CACHE slots, an id's slot picked by a
# multiplicative hash (2^64 / the golden ratio, as book.OrderIndex). A maker
# looked up by its order's C id then costs a load and a compare, where the
# dict needed the id boxed, hashed and compared as an int object (each fill,
# and each place's taker). A slot is filled only from the dict and an id's
# Account never changes once made (accounts are added, never replaced or
# removed; a snapshot read into an engine empties its cache first), so a hit
# is what the dict holds.
_ACCOUNT_CACHE = 4096
_ACCOUNT_SHIFT = 52  # 64 - log2(_ACCOUNT_CACHE)
_ACCOUNT_FIB = 0x9E3779B97F4A7C15


def _cached_account(engine, account_id):
    """Compiled only: `engine.accounts.get(account_id)` for a u64 id."""
    i = (account_id * _ACCOUNT_FIB) >> _ACCOUNT_SHIFT
    ids = engine._account_ids.data.as_ulonglongs
    acct = engine._account_slots[i]
    if acct is not None and ids[i] == account_id:
        return acct
    acct = engine.accounts.get(account_id)
    if acct is not None:
        ids[i] = account_id
        engine._account_slots[i] = acct
    return acct


def _book_of(engine, symbol):
    """Compiled only: `engine.books.get(symbol)`, answered without the dict
    when `symbol` is the very object found last time (the block decoder
    hands every command of a run in one market the same str: dex/engine/wire.py).
    `books` never changes after the engine is made."""
    if symbol is engine._last_symbol:
        return engine._last_book
    book = engine.books.get(symbol)
    if book is not None:
        engine._last_symbol = symbol
        engine._last_book = book
    return book


def _account_of(engine, account_id):
    """Compiled only: `engine.accounts.get(account_id)` for a command's account
    field, through the cache when it is an int that fits a u64."""
    if type(account_id) is int:
        try:
            aid = account_id
        except OverflowError:  # negative or past 2^64: the dict decides (it holds no such id)
            return engine.accounts.get(account_id)
        return _cached_account(engine, aid)
    return engine.accounts.get(account_id)


def _order(id, account, book, price, qty, filled, cid, time_ms, status, kind) -> Order:
    """`Order(...)` without the class call. In CPython 3.11 calling a class
    with a Python __init__ costs about three times a list literal; this (one
    tp_new and ten slot stores) about half the class call. Compiled, it is a
    C function: tp_new and ten C field stores."""
    o = Order.__new__(Order)
    o.id = id
    o.account = account.id
    o.market = book.index
    o.price = price
    o.qty = qty
    o.filled = filled
    o.cid = cid
    o.time_ms = time_ms
    o.status = status
    o.kind = kind
    return o


def _rest(book: Book, acct: Account, order: Order) -> None:
    """Queue a live order at the back of its level and lock what it reserves."""
    price = order.price
    qty = order.qty
    af = acct.free.data.as_longlongs if cython.compiled else acct.free  # see Engine._place
    al = acct.locked.data.as_longlongs if cython.compiled else acct.locked
    if (order.kind >> 6) == BUY:
        cost = price * qty * book.notional_units  # checked against the free balance: it fits 64 bits
        af[book.quote] -= cost
        al[book.quote] += cost
        levels = book.bids
        level = levels.get(price)
        if level is None:
            level = _add_level(book, levels, book.bid_prices, book.bid_records, book.bid_levels, price, price)
    else:
        amount = qty * book.lot_units
        af[book.base] -= amount
        al[book.base] += amount
        levels = book.asks
        level = levels.get(price)
        if level is None:
            level = _add_level(book, levels, book.ask_keys, book.ask_records, book.ask_levels, -price, price)
    order.price = level.price  # share one int object per level
    _appended(book, level, price if (order.kind >> 6) == BUY else -price)
    _append(level.orders, order)
    level.total += qty
    level.count += 1
    acct.open.put(order.id, order)
    book.order_count += 1


def _unqueue(book: Book, levels: dict[int, Level], order: Order) -> None:
    """Take an order that was just marked finished out of its level (lazily:
    it stays in the deque, dead, until it reaches the front)."""
    assert order.status > LIVE_MAX_I
    price = order.price
    level = levels[price]
    if level.digest is not None:  # _stale(book, level, key), inlined
        if level.digest is not APPENDED:
            _list_stale(book, price if levels is book.bids else -price)
        level.digest = None
    level.total -= order.qty
    level.count -= 1
    book.order_count -= 1
    if level.count == 0:
        del levels[price]
        if levels is book.bids:
            i = _index(book.bid_prices, price)
            book.bid_prices.pop(i)
            book.bid_records.pop(i)
            book.bid_levels.pop(i)
        else:
            i = _index(book.ask_keys, -price)
            book.ask_keys.pop(i)
            book.ask_records.pop(i)
            book.ask_levels.pop(i)
        _spare(book, level)
    elif len(level.orders) > 2 * level.count + 32:
        level.orders = deque([o for o in level.orders if o.status <= LIVE_MAX_I])


def _index(keys: list[int], key: int) -> int:
    i = _c_bisect(keys, key) if _COMPILED else bisect_left(keys, key)  # noqa: F821 (compiled: engine.pxd)
    assert keys[i] == key
    return i


# The state hash's level records (dex/engine/book.py, "State-hash records").
# Every change to a level goes through one of these (inlined in `_place`,
# `_take_buy`, `_take_sell` and `_unqueue`), so a level whose digest was
# current has its key on `book.stale_keys` until the next state hash
# refreshes its record. A level's key is its price for a bid, the negated
# price for an ask (its place in `bid_prices` / `ask_keys`).


def _add_level(book: Book, levels: dict, keys: list, records: list, ordered: list, key: int, price: int) -> Level:
    """A new empty level at `price` (key `key`): in `levels`, in `keys`
    and, at the same index, in `ordered` and a placeholder in `records`;
    listed as stale."""
    spare = book.spare_levels
    if spare:
        level = spare.pop()
        level.price = price
    else:
        level = Level(price)
    levels[price] = level
    i = _c_bisect(keys, key) if _COMPILED else bisect_left(keys, key)  # noqa: F821 (compiled: engine.pxd)
    keys.insert(i, key)
    records.insert(i, RECORD_NONE)
    ordered.insert(i, level)
    _list_stale(book, key)
    return level


def _spare(book: Book, level: Level) -> None:
    """`level` has just been taken out of its book (no live order left): keep
    it, emptied, for the book's next new level. A level and its deque cost
    about 1,000 instructions to make and free (the deque's first block is
    over pymalloc's 512-byte limit), and the levels near the touch come and
    go with every few commands. Nothing else holds a level once it is out of
    `bids`/`asks` (the state hash keeps keys, not levels)."""
    spare = book.spare_levels
    if len(spare) < SPARE_LEVELS_MAX:
        level.orders.clear()  # the dead orders still queued in it
        level.digest = None
        level.hasher = None
        level.hashed = 0
        spare.append(level)


def _stale(book: Book, level: Level, key: int) -> None:
    """`level` (key `key`) is about to change other than by queueing at its back."""
    digest = level.digest
    if digest is not None:
        if digest is not APPENDED:
            _list_stale(book, key)
        level.digest = None


def _appended(book: Book, level: Level, key: int) -> None:
    """An order is about to be queued at the back of `level` (key `key`)."""
    digest = level.digest
    if digest is not None and digest is not APPENDED:
        level.digest = APPENDED
        _list_stale(book, key)


def _list_stale(book: Book, key: int) -> None:
    """The record of the level at `key` no longer matches it (called when a
    level's digest leaves a current value, and for a new level). Keys, not
    levels: a removed level listed here must not be kept alive."""
    stale = book.stale_keys
    if len(stale) < STALE_LEVELS_MAX:
        stale.append(key)
    else:  # long unhashed: rebuild every record instead
        stale.clear()
        book.records_rebuild = True


def _finish(acct: Account, order: Order) -> None:
    """An order with a client id has finished: it joins the dedup window and
    pushes the oldest finished order out once the window is full."""
    finished = acct.finished
    finished.append(order)
    window_fold(acct, acct.finished_total, order, True)  # compiled, a C call (engine.pxd)
    acct.finished_total += 1
    if len(finished) > DEDUP_MAX:
        old_position = acct.finished_total - len(finished)
        old = _popleft(finished)
        window_fold(acct, old_position, old, False)
        if acct.cids.get(old.cid) is old:
            del acct.cids[old.cid]


def _valid_cid(cid) -> bool:
    """Compiled only: `valid_client_order_id(cid)` (dex/core/commands.py) as a
    C loop over a str's characters, where the Python function cost a frame
    and three method calls an order with a client id. For an ASCII string,
    printable is 0x20..0x7E; anything but a str goes to the function."""
    if type(cid) is not str:
        return valid_client_order_id(cid)
    text = cid  # compiled, typed str: the loop below runs over its characters in C
    n = len(text)
    if n == 0 or n > CLIENT_ORDER_ID_MAX:
        return False
    for ch in text:
        if ch < 0x20 or ch > 0x7E:
            return False
    return True


def _fok_fillable(book: Book, acct: Account, side: int, limit: int, qty: int, stp: int) -> bool:
    """Would a FOK fill completely? Walks makers in priority order exactly as
    matching would: own orders are skipped under EXPIRE_MAKER and stop the
    walk otherwise; the walk also stops at TRADES_PER_ORDER_MAX makers."""
    if side == BUY:
        keys = book.ask_keys
        levels = book.asks
        sign = -1
    else:
        keys = book.bid_prices
        levels = book.bids
        sign = 1
    need = qty
    makers = 0
    acct_id = acct.id
    for i in range(len(keys) - 1, -1, -1):
        price = sign * keys[i]
        if (side == BUY and price > limit) or (side == SELL and price < limit):
            return False
        for o in levels[price].orders:
            if o.status > LIVE_MAX_I:
                continue
            if o.account == acct_id:
                if stp == EXPIRE_MAKER:
                    continue
                return False
            if makers == TRADES_MAX:
                return False
            makers += 1
            need -= o.qty
            if need <= 0:
                return True
    return False


def _duplicate(order: Order, symbol: str) -> OrderDuplicate:
    return OrderDuplicate(
        order.id,
        order.account,
        symbol,
        order.cid,
        OrderStatus(order.status),  # the field may hold a plain int (compiled engine, restored snapshot)
        order.filled,
        order.filled + order.qty,
    )


def _view(order: Order, symbol: str) -> OrderView:
    return OrderView(
        order.id,
        order.account,
        symbol,
        Side((order.kind >> 6)),
        OrderType(kind_type(order.kind)),
        TimeInForce(kind_tif(order.kind)),
        kind_post_only(order.kind),
        order.price,
        order.filled + order.qty,
        order.filled,
        OrderStatus(order.status),
        order.cid,
        order.time_ms,
    )
