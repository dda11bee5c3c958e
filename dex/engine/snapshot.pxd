# Cython declarations that type dex/engine/snapshot.py when it is compiled
# (an augmenting .pxd: the .py stays the one source, see docs/ENGINE.md).
# Order records are written with C stores into one buffer per level.

cimport cython
from .book cimport Account, Book, Level, Order

cdef bint _COMPILED
cdef Py_ssize_t _ORDER_SIZE
cdef int _LIVE

@cython.locals(o=Order, size=Py_ssize_t, i=Py_ssize_t, at=Py_ssize_t, buf=bytearray, view=cython.uchar[::1])
cpdef _orders_bytes(orders, Py_ssize_t start, bint live_only)

@cython.locals(kind=cython.int, n=Py_ssize_t, k=Py_ssize_t, raw=bytes)
cdef Py_ssize_t _put_order(cython.uchar[::1] view, Py_ssize_t at, Order o) except -1

cdef void _put_u64(cython.uchar[::1] view, Py_ssize_t at, unsigned long long v) noexcept

cdef void _put_i64(cython.uchar[::1] view, Py_ssize_t at, long long v) noexcept

@cython.locals(free=list, locked=list, n=Py_ssize_t, i=Py_ssize_t, at=Py_ssize_t, size=Py_ssize_t,
               buf=bytearray, view=cython.uchar[::1])
cpdef object _account_term(Account acct, balances)
