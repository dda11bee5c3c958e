# Cython declarations that type dex/engine/engine.py when it is compiled
# (an augmenting .pxd: the .py stays the one source, see docs/ENGINE.md).
# Only values proven to fit 64 bits are typed: lots and ticks (< 2^40),
# balances and fills (<= 2^62; see the 2^63 notes in engine.py and the
# market rules in dex/core/markets.py). A cost before its balance check
# (ticks x lots x units) can pass 2^63 and stays a Python int.

cimport cython

cdef bint _COMPILED

# Module globals the hot path reads, as C globals: a read is a pointer load,
# not a dict lookup. CPython 3.12 dropped the dict version tags Cython used to
# cache global lookups, so on 3.13 each read of BUY, _new or OrderAccepted was
# a full dict lookup (callgrind, 20,000 benchmark commands: ~125 M of the 280 M
# instructions 3.13 added over 3.11). Same objects, same meaning; they are no
# longer attributes of the compiled module (nothing reads them there). The
# bounds (TRADES_MAX, DEDUP_MAX, OPEN_MAX, BOOK_MAX) stay module attributes:
# the tests swap them.
cdef object PlaceOrder, valid_client_order_id

# An event made in C (engine.py, `_new`): allocated as its class and filled.
from cpython.ref cimport Py_INCREF, Py_REFCNT
from cpython.tuple cimport PyTuple_SET_ITEM
cdef extern from "Python.h":
    object PyType_GenericAlloc(type cls, Py_ssize_t nitems)
    void PyObject_GC_UnTrack(object op)
    void Py_SET_TYPE(object op, type cls)
cdef bint _FAST_NEW
cdef object _tuple_new, _popleft, _append
@cython.locals(n=Py_ssize_t, i=Py_ssize_t)
cdef object _new(type cls, tuple values)
cdef object BalanceChanged, OrderAccepted, OrderAmended, OrderCancelled, OrderDuplicate, OrderExpired, OrderRejected, Trade
cdef object Reason, StopReason, OrderStatus, FEE_ACCOUNT
cdef object BUY, SELL, LIMIT, MARKET, GTC, IOC, FOK, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH
cdef object NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, STOP_USER
cdef object STOP_CANCEL_ALL, STOP_IOC, STOP_FOK, STOP_NO_BALANCE, STOP_SELF_TRADE, STOP_TRADES_MAX
cdef long long BPS, INT64_MAX
cdef Py_ssize_t STALE_LEVELS_MAX, SPARE_LEVELS_MAX  # book.py's, C ints here (bounds no test swaps)
cdef object _NO_LIMIT, APPENDED, RECORD_NONE, pack_kind, kind_stp, kind_post_only, kind_tif, kind_type
cdef dict _SIDE_CODE, _TYPE_CODE, _TIF_CODE, _STP_CODE
cdef object Side, OrderType, TimeInForce, SelfTradePrevention
cdef int BUY_I, SELL_I, LIMIT_I, GTC_I, IOC_I, FOK_I, LIVE_MAX_I
from .book cimport Account, Book, Level, Order
# An account's dedup-window sum with an order's term folded in or out, called
# in C (a cpdef of the snapshot module: through a Python name each call paid a
# generic call).
from .snapshot cimport window_fold
from cpython.array cimport array

cdef extern from "dex_sha256.h":
    # bisect_left on a book's price keys, in C (as snapshot.pxd).
    Py_ssize_t _c_bisect "dex_bisect_left_i64"(list keys, long long key) except -1

cdef class Engine:
    cdef public object config
    cdef public tuple assets
    cdef public dict _asset_index
    cdef public dict books
    cdef public list book_list
    cdef public dict accounts
    cdef public Account fee_account
    cdef public long long next_order_id
    cdef public long long next_trade_id
    cdef public list deposited
    cdef public list withdrawn
    cdef public list dirty_accounts
    cdef public object accounts_sum
    cdef public dict _handlers
    # The account cache (engine.py, _cached_account): ids and Accounts by slot.
    cdef array _account_ids
    cdef list _account_slots
    # The last book `_place` found, and the symbol object it was found by.
    cdef object _last_symbol
    cdef Book _last_book

    # af/al, tf/ff: C pointers into an account's balance arrays (book.pxd).
    @cython.locals(book=Book, acct=Account, level=Level, order=Order, oid=cython.longlong, kind=cython.int,
                   side_i=cython.int, otype_i=cython.int, tif_i=cython.int, stp_i=cython.int,
                   af=cython.p_longlong, al=cython.p_longlong, amount=cython.longlong,
                   p=cython.longlong, q=cython.longlong, cost=cython.longlong, remaining=cython.longlong,
                   crosses=cython.bint, top=cython.longlong, open_max=Py_ssize_t, book_max=cython.longlong)
    cpdef list _place(self, cmd, now)

    @cython.locals(book=Book, acct=Account, order=Order, oid=cython.longlong)
    cpdef list _place_market(self, cmd, book, acct, now)

    @cython.locals(book=Book, acct=Account)
    cpdef _check_place(self, cmd, book, acct)

    @cython.locals(acct=Account)
    cpdef _touch(self, acct)

    @cython.locals(book=Book, level=Level, maker=Order, acct=Account, qty=cython.longlong,
                   af=cython.p_longlong, al=cython.p_longlong, amount=cython.longlong)
    cpdef _stp_cancel(self, book, level, maker, acct, list events)

    @cython.locals(order=Order, book=Book, acct=Account, qty=cython.longlong,
                   af=cython.p_longlong, al=cython.p_longlong, amount=cython.longlong)
    cpdef _cancel_order(self, order, acct, reason, list events)

    @cython.locals(acct=Account, order=Order, book=Book)
    cpdef _find(self, acct, symbol, order_id, cid)

    @cython.locals(acct=Account, order=Order)
    cpdef list _cancel(self, cmd, now)

    @cython.locals(book=Book, acct=Account, oid=cython.longlong, limit=cython.longlong, qty=cython.longlong,
                   budget=cython.longlong, nu=cython.longlong, lu=cython.longlong, mbps=cython.longlong,
                   tbps=cython.longlong, b=cython.Py_ssize_t, q=cython.Py_ssize_t, tf=cython.p_longlong, ff=cython.p_longlong,
                   mkl=cython.p_longlong, mkf=cython.p_longlong, dirty=list,
                   by_quote=cython.bint, remaining=cython.longlong, trades=cython.longlong,
                   trades_max=cython.longlong, filled=cython.longlong, tid=cython.longlong, best=cython.longlong,
                   level=Level, unit_cost=cython.longlong, maker=Order, mq=cython.longlong, mk=Account,
                   fill=cython.longlong, notional=cython.longlong, base_amt=cython.longlong,
                   mfee=cython.longlong, tfee=cython.longlong, ask_keys=list, ask_levels=list, asks=dict, stp=cython.int,
                   acct_id=cython.ulonglong, accounts=dict, oid_obj=object, best_obj=object, ask_key=object)
    cpdef tuple _take_buy(self, book, acct, oid, limit, qty, budget, stp, list events, order)

    @cython.locals(book=Book, acct=Account, oid=cython.longlong, limit=cython.longlong, qty=cython.longlong,
                   nu=cython.longlong, lu=cython.longlong, mbps=cython.longlong,
                   tbps=cython.longlong, b=cython.Py_ssize_t, q=cython.Py_ssize_t, tf=cython.p_longlong, ff=cython.p_longlong,
                   mkl=cython.p_longlong, mkf=cython.p_longlong, dirty=list,
                   remaining=cython.longlong, trades=cython.longlong,
                   trades_max=cython.longlong, filled=cython.longlong, tid=cython.longlong, best=cython.longlong,
                   level=Level, unit_cost=cython.longlong, maker=Order, mq=cython.longlong, mk=Account,
                   fill=cython.longlong, notional=cython.longlong, base_amt=cython.longlong,
                   mfee=cython.longlong, tfee=cython.longlong, bid_prices=list, bid_levels=list, bids=dict, stp=cython.int,
                   acct_id=cython.ulonglong, accounts=dict, oid_obj=object, best_obj=object)
    cpdef tuple _take_sell(self, book, acct, oid, limit, qty, stp, list events, order)


@cython.locals(book=Book, acct=Account, order=Order, level=Level, qty=cython.longlong, price=cython.longlong,
               cost=cython.longlong, amount=cython.longlong, af=cython.p_longlong, al=cython.p_longlong)
cpdef _rest(book, acct, order)

@cython.locals(book=Book, order=Order, level=Level, i=cython.Py_ssize_t)
cpdef _unqueue(book, dict levels, order)

@cython.locals(level=Level, i=cython.Py_ssize_t, spare=list)
cpdef Level _add_level(Book book, dict levels, list keys, list records, list ordered, key, price)

@cython.locals(spare=list)
cpdef _spare(Book book, Level level)

cpdef _stale(Book book, Level level, key)

cpdef _appended(Book book, Level level, key)

@cython.locals(stale=list)
cpdef _list_stale(Book book, key)

@cython.locals(acct=Account, order=Order, old=Order)
cpdef _finish(acct, order)

@cython.locals(book=Book, acct=Account, o=Order, need=cython.longlong, makers=cython.longlong,
               price=cython.longlong, i=cython.Py_ssize_t, limit=cython.longlong, qty=cython.longlong,
               side=cython.int, stp=cython.int, sign=cython.longlong, acct_id=cython.ulonglong)
cpdef bint _fok_fillable(book, acct, side, limit, qty, stp)

# A LIMIT order's price and quantity as C ints, and its cost, for _place.
cdef Py_ssize_t CLIENT_ORDER_ID_MAX
@cython.locals(text=str, n=Py_ssize_t, ch=cython.Py_UCS4)
cdef bint _valid_cid(object cid) except -1
cdef long long _LOTS_END
@cython.locals(x=cython.longlong)
cdef long long _lots(object v) except? -2
cdef long long _mul_capped(long long a, long long b) noexcept

# The account cache (engine.py).
cdef Py_ssize_t _ACCOUNT_CACHE
cdef int _ACCOUNT_SHIFT
cdef unsigned long long _ACCOUNT_FIB
@cython.locals(i=Py_ssize_t, ids=cython.p_ulonglong, acct=Account)
cdef Account _cached_account(Engine engine, unsigned long long account_id)
@cython.locals(aid=cython.ulonglong)
cdef Account _account_of(Engine engine, object account_id)
@cython.locals(book=Book)
cdef Book _book_of(Engine engine, object symbol)

@cython.locals(o=Order)
cpdef Order _order(long long id, Account account, Book book, long long price, long long qty, long long filled,
                   object cid, long long time_ms, int status, int kind)
