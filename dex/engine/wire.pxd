# Cython declarations that type dex/engine/wire.py when it is compiled (an
# augmenting .pxd: the .py stays the one source, see docs/ENGINE.md). A
# proposal's places and cancels are read with C loads from a typed view; the
# common events are written with C stores.

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_1BYTE_DATA
from libc.string cimport memcmp, memcpy

cdef bint _COMPILED
cdef object _new, PlaceOrder, CancelOrder, Trade, BalanceChanged, OrderAccepted, OrderCancelled, OrderExpired
cdef dict _SIDE, _TYPE, _TIF, _STP
cdef tuple _SIDES, _TYPES, _TIFS, _STPS
cdef int _PLACE_TAG, _CANCEL_TAG, _EV_ACCEPTED, _EV_TRADE, _EV_CANCELLED, _EV_EXPIRED, _EV_BALANCE
cdef Py_ssize_t _EVENTS_BUFFER_BYTES, _EVENT_BYTES_MAX
cdef Py_ssize_t _PLACE_SIZE, _CANCEL_SIZE

cpdef tuple decode_commands(buf, Py_ssize_t at, Py_ssize_t count, Py_ssize_t auths)

@cython.locals(commands=list, indexes=list, leaves=list, end=Py_ssize_t, start=Py_ssize_t, index=Py_ssize_t,
               no_auth=Py_ssize_t, tag=cython.int)
cdef tuple _decode_commands_c(const unsigned char[::1] view, Py_ssize_t at, Py_ssize_t count, Py_ssize_t auths)

@cython.locals(flags=cython.int, side=cython.int, otype=cython.int, tif=cython.int, stp=cython.int)
cdef tuple _decode_c(const unsigned char[::1] view, Py_ssize_t at, Py_ssize_t end, int tag, object last_symbol)

@cython.locals(v=cython.ulonglong, k=cython.int)
cdef unsigned long long _u64(const unsigned char[::1] view, Py_ssize_t at) noexcept

@cython.locals(n=Py_ssize_t)
cdef object _ascii(const unsigned char[::1] view, Py_ssize_t at, Py_ssize_t end)

@cython.locals(n=Py_ssize_t)
cdef object _symbol(const unsigned char[::1] view, Py_ssize_t at, Py_ssize_t end, object last)

# Events: the common ones written with C stores into a stack buffer.
@cython.locals(names=dict, n=Py_ssize_t, at=Py_ssize_t)
cdef object _encode_events_c(events)

@cython.locals(k=cython.int)
cdef void _w64(unsigned char *buf, Py_ssize_t at, unsigned long long v) noexcept

cdef unsigned long long _i64(long long v) noexcept

cdef int _byte(long long v) except -1

@cython.locals(k=Py_ssize_t)
cdef Py_ssize_t _copy(unsigned char *buf, Py_ssize_t at, bytes raw) noexcept

# Events read back: the common ones with C loads from a typed view.
cdef dict _STOP
cdef Py_ssize_t _ACCEPTED_SIZE, _TRADE_SIZE, _STOPPED_SIZE, _BALANCE_SIZE
@cython.locals(events=list, end=Py_ssize_t, n=Py_ssize_t, tag=cython.int, side=cython.int, otype=cython.int, tif=cython.int,
               delta=cython.longlong)
cdef tuple _decode_events_c(object buf, const unsigned char[::1] view, Py_ssize_t at)

# A place or a cancel written with C stores (the u_ locals: a value outside
# its C type raises OverflowError, and the struct path decides instead).
@cython.locals(at=Py_ssize_t, u_account=cython.ulonglong, u_side=cython.uchar, u_type=cython.uchar, u_tif=cython.uchar,
               u_flags=cython.uchar, u_price=cython.ulonglong, u_qty=cython.ulonglong, u_quote=cython.ulonglong,
               u_order=cython.ulonglong)
cdef object _encode_command_c(cmd)

@cython.locals(n=Py_ssize_t)
cdef Py_ssize_t _put_str_c(unsigned char *buf, Py_ssize_t at, object text) except -1
