# Cython declarations that type dex/engine/book.py when it is compiled
# (an "augmenting .pxd": the .py stays the one source, see docs/ENGINE.md).
# Quantities are lots (< 2^40), prices ticks (< 2^40): 64-bit integers.
# Ids, balances and money stay Python ints where a value can pass 2^63
# (account ids are u64; window sums are 256-bit).

cdef class Account:
    cdef public object id
    cdef public list free
    cdef public list locked
    cdef public dict open
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
    cdef public long long order_count
    cdef public object digest
    cdef public list bid_records
    cdef public list ask_records
    cdef public list stale_keys
    cdef public bint records_rebuild

cdef class Order:
    cdef public long long id
    cdef public Account account
    cdef public Book book
    cdef public long long price
    cdef public long long qty
    cdef public long long filled
    cdef public object cid
    cdef public long long time_ms
    cdef public int status
    cdef public int kind

cdef class Level:
    cdef public long long price
    cdef public long long total
    cdef public long long count
    cdef public object orders
    cdef public object digest
    cdef public object hasher
    cdef public Py_ssize_t hashed
