# Cython declarations that type dex/engine/snapshot.py when it is compiled
# (an augmenting .pxd: the .py stays the one source, see docs/ENGINE.md).
# Order records are written with C stores into one bytearray per level.

cimport cython
from .book cimport Account, Book, Level, Order, OrderIndex

cdef bint _COMPILED, _C_SHA256

cdef extern from "dex_sha256.h":
    bint _have_c_sha256 "dex_have_c_sha256"()
    # free/locked: pointers into the account's balance arrays (book.pxd).
    object _c_account_term "dex_account_term"(object id, const long long *free, const long long *locked, Py_ssize_t assets,
                                               long long finished_total, Py_ssize_t finished, object window)
    object _c_account_fold "dex_account_fold"(object sum, object old, object id, const long long *free,
                                               const long long *locked, Py_ssize_t assets,
                                               long long finished_total, Py_ssize_t finished, object window)
    # A level's running hash (a SHA256_CTX in a bytearray) and a book's digest.
    object _c_ctx_new "dex_sha_ctx_new"(object data)
    int _c_ctx_update "dex_sha_ctx_update"(object ctx, object data) except -1
    bytes _c_ctx_digest "dex_sha_ctx_digest"(object ctx)
    bytes _c_book_digest "dex_book_digest"(bytes symbol, object bids, object asks)
    object _c_sha256_int "dex_sha256_int"(object data)
    int _c_window_fold "dex_window_fold"(object sum, object data, int add) except -1
    object _c_level_fold "dex_level_fold"(object sum, object old, int side, object record)
    # A level's 40-byte record, and bisect_left on a book's price keys, in C.
    bytes _c_level_record "dex_level_record"(unsigned long long price, object digest)
    Py_ssize_t _c_bisect "dex_bisect_left_i64"(list keys, long long key) except -1

# An order's term in its account's dedup-window sum: its record written with
# C stores and hashed by one C call.
cpdef window_term(unsigned long long position, Order order)
cpdef window_fold(Account acct, unsigned long long position, Order order, bint add)
@cython.locals(buf=bytearray, view=cython.p_uchar, cid=str)
cdef bytearray _window_record(unsigned long long position, Order order)

# An account's term in the state hash: packed and hashed by one C call when
# OpenSSL is linked.
@cython.locals(assets=Py_ssize_t)
cpdef _account_term(Account acct, balances)
cdef _check_balances(Account acct, Py_ssize_t assets)

# The state hash's upkeep reads levels, books and accounts through their C
# fields, not by attribute lookups on untyped objects.
cpdef bytes _cache_level_digest(Level level)
cpdef bytes _record(Level level)
@cython.locals(bids=dict, asks=dict, level=Level, records=list, i=Py_ssize_t)
cpdef refresh_records(Book book)
@cython.locals(terms=dict)
cdef _fold_level(Book book, key, int side, record)
cpdef object _level_term(int side, bytes record)
cpdef bytes _book_digest_v2(Book book)
cpdef bytes _book_digest(Book book)
@cython.locals(acct=Account, fee=Account, book=Book, assets=Py_ssize_t, folded=bytearray)
cpdef str state_hash(engine, int version=*)
cdef Py_ssize_t _ORDER_SIZE
cdef int _LIVE

@cython.locals(o=Order, size=Py_ssize_t, i=Py_ssize_t, at=Py_ssize_t, buf=bytearray, view=cython.p_uchar)
cpdef _orders_bytes(orders, Py_ssize_t start, bint live_only)

# The writer stores through a pointer into the buffer _orders_bytes sized
# for exactly these records: plain C stores.
@cython.locals(kind=cython.int, n=Py_ssize_t, k=Py_ssize_t, raw=bytes)
cdef Py_ssize_t _put_order(unsigned char *buf, Py_ssize_t at, Order o) except -1

cdef void _put_u64(unsigned char *buf, Py_ssize_t at, unsigned long long v) noexcept

# Restore: order records read with C loads from a typed view of the snapshot.
@cython.locals(read=Py_ssize_t)
cdef int _claim_id(OrderIndex seen, Order order) except -1

@cython.locals(book=Book, order=Order, level=Level, side=cython.int, n_orders=Py_ssize_t, levels=dict, acct=Account)
cpdef Py_ssize_t _read_books(const unsigned char[::1] data, Py_ssize_t at, list books, dict accounts,
                              unsigned long long next_order_id, OrderIndex seen) except -1

@cython.locals(o=Order, n=Py_ssize_t, kind=cython.int, oid=cython.ulonglong)
cpdef Order _read_order(const unsigned char[::1] data, Py_ssize_t at, Book book, unsigned long long next_order_id)

@cython.locals(v=cython.ulonglong, k=cython.int)
cdef unsigned long long _get_u64(const unsigned char[::1] data, Py_ssize_t at) noexcept

@cython.locals(v=cython.ulonglong)
cdef long long _get_i64(const unsigned char[::1] data, Py_ssize_t at) except? -1
