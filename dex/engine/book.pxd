# Cython declarations that type dex/engine/book.py when it is compiled
# (an "augmenting .pxd": the .py stays the one source, see docs/ENGINE.md).
# Quantities are lots (< 2^40), prices ticks (< 2^40): 64-bit integers.
# Balances (<= 2^62, limits.BALANCE_UNITS_MAX) are int64 arrays. Ids and
# sums stay Python ints where a value can pass 2^63 (account ids are u64;
# window sums are 256-bit).

cimport cython
from cpython.array cimport array
from libc.stdlib cimport calloc, free

cdef bint _COMPILED
cdef unsigned long long _FIB
cdef Py_ssize_t _INDEX_MIN
cdef object _U64_MAX

cdef class Order

# An account's live orders by id: C u64 keys beside a list of the orders.
cdef class OrderIndex:
    cdef unsigned long long *_keys
    cdef list _orders
    cdef Py_ssize_t _count
    cdef Py_ssize_t _mask
    cdef int _shift

    cpdef object get(self, object order_id)
    cpdef put(self, unsigned long long order_id, Order order)
    @cython.locals(mask=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, home=Py_ssize_t, key=cython.ulonglong)
    cpdef remove(self, unsigned long long order_id)
    @cython.locals(i=Py_ssize_t, found=list)
    cpdef list ids(self)
    @cython.locals(mask=Py_ssize_t, i=Py_ssize_t, key=cython.ulonglong)
    cdef Py_ssize_t _slot(self, unsigned long long order_id) noexcept
    @cython.locals(keys=cython.p_void, orders=list, old_keys=cython.p_ulonglong, old_orders=list, old_size=Py_ssize_t,
                   bits=cython.int, k=Py_ssize_t, i=Py_ssize_t, key=cython.ulonglong)
    cdef _resize(self, Py_ssize_t size)

cdef class Account:
    cdef public object id
    # array("q"), one balance per asset, made by __init__ (book.py): read-only
    # so the engine's C pointers into them always see that type code.
    cdef readonly array free
    cdef readonly array locked
    cdef readonly OrderIndex open  # readonly: the engine calls it through C, so it must not become None
    cdef public dict cids
    cdef public object finished
    cdef public long long finished_total
    cdef public object window_sum
    cdef public bint dirty
    cdef public object digest

cdef class Book:
    cdef public object market
    cdef public str symbol
    cdef public Py_ssize_t index
    cdef public Py_ssize_t base
    cdef public Py_ssize_t quote
    cdef public long long lot_units
    cdef public long long notional_units
    cdef public long long min_qty
    cdef public long long max_qty
    cdef public long long max_price
    cdef public long long min_notional
    cdef public long long maker_bps
    cdef public long long taker_bps
    cdef public dict bids
    cdef public dict asks
    cdef public list bid_prices
    cdef public list ask_keys
    cdef public list bid_levels
    cdef public list ask_levels
    cdef public long long order_count
    cdef public object digest
    cdef public list bid_records
    cdef public list ask_records
    cdef public list stale_keys
    cdef public bint records_rebuild
    cdef public dict level_terms
    cdef public object levels_sum
    cdef public int digest_version
    cdef public list spare_levels

# No field refers to an object that can hold a reference (the client order id
# is a str), so Cython makes the type without GC support: no GC header, 80
# bytes an order. Keep it so: an Account or Book field here would put orders
# in reference cycles the collector could not see.
cdef class Order:
    cdef public long long id
    cdef public unsigned long long account
    cdef public long long price
    cdef public long long qty
    cdef public long long filled
    cdef public long long time_ms
    cdef public str cid
    cdef public unsigned int market
    cdef public unsigned char status
    cdef public unsigned char kind

cdef class Level:
    cdef public long long price
    cdef public long long total
    cdef public long long count
    cdef public object orders
    cdef public object digest
    cdef public object hasher
    cdef public Py_ssize_t hashed
