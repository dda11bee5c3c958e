"""A command as a block carries it, and its events as the block's results hold them.

    place      u8 1, u64 account, u8 side, u8 type, u8 tif,
               u8 flags (post_only | stp << 1), u64 price, u64 qty,
               u64 quote_qty, str symbol, str client order id
    cancel     u8 2, u64 account, u64 order_id, str symbol, str client order id
    cancel all u8 3, u64 account, u8 has_symbol[, str symbol]
    amend      u8 4, u64 account, u64 order_id, u64 price, u64 qty, str symbol,
               str client order id
    deposit    u8 5 / withdraw u8 6: u64 account, u64 amount, str asset
               (7 / 8: the same, then str client transfer id)
    str        u8 length + ASCII bytes; length 0 means none

Little-endian. In a proposal each command follows its u16 auth index
(dex/ledger/codec.py frames the rest: leader, term, time, the signatures).

Events (`encode_events`, `decode_events`): u16 count, then per event a tag,
its fixed fields (the structs below) and its strings.

This module is part of the engine's source because a node decodes every
command and encodes every event of every block. Compiled (docs/ENGINE.md,
"Two implementations"), `decode_commands` reads places and cancels with C
loads from a typed view of the proposal and makes each command, its string
fields and its leaf bytes straight from it, where the pure module unpacks
with `struct` and slices; `encode_command` writes a place or a cancel, and
`encode_events` the common events, with C stores; `decode_events` reads the
common events with C loads. The rest (rare commands and events) take the
`struct` code in both. tests/unit/test_wire.py, test_wire_events.py and
test_codec_events.py hold the two builds to each other, malformed input
included.
"""

from __future__ import annotations

import struct

from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw
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
from dex.core.reasons import Reason, StopReason
from dex.core.types import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from dex.engine.shared import CodecError

try:  # the compiled branch below uses it; the pure module never reaches it
    import cython
except ImportError:  # pragma: no cover (Cython is a build requirement, not a run one)
    cython = None

# This module compiled by Cython (its __file__ is then the extension's).
_COMPILED = not __file__.endswith(".py")

NO_AUTH = 0xFFFF  # a command no signature covers (the faucet, operators)


def _members(enum) -> dict:
    """value -> member: a dict lookup costs a tenth of calling the enum (and a
    value it lacks is a KeyError, which the decoders turn into CodecError)."""
    return {m.value: m for m in enum}


_SIDE = _members(Side)
_TYPE = _members(OrderType)
_TIF = _members(TimeInForce)
_STP = _members(SelfTradePrevention)


def _by_value(enum) -> tuple:
    """The members in value order, where the values are 0, 1, 2...: the
    compiled decoder indexes them (a C read after a bounds check) instead of
    looking them up."""
    members = tuple(sorted(enum, key=lambda m: m.value))
    assert [m.value for m in members] == list(range(len(members))), enum
    return members


_SIDES = _by_value(Side)
_TYPES = _by_value(OrderType)
_TIFS = _by_value(TimeInForce)
_STPS = _by_value(SelfTradePrevention)

_new = tuple.__new__  # a command NamedTuple from its fields in order
_U16 = struct.Struct("<H")

_PLACE_TAG, _CANCEL_TAG, _CANCEL_ALL_TAG, _AMEND_TAG, _DEPOSIT_TAG, _WITHDRAW_TAG = 1, 2, 3, 4, 5, 6
# A deposit or withdrawal with a client transfer id: the wallet fields, the
# asset, then the id. Without an id the old tags: their blocks decode as before.
_DEPOSIT_ID_TAG, _WITHDRAW_ID_TAG = 7, 8
# tag, account, side, type, tif, flags (post_only | stp << 1), price, qty, quote_qty
_PLACE = struct.Struct("<BQBBBBQQQ")
# tag, account, order_id
_CANCEL = struct.Struct("<BQQ")
# tag, account, has_symbol
_CANCEL_ALL = struct.Struct("<BQB")
# tag, account, order_id, price, qty
_AMEND = struct.Struct("<BQQQQ")
# tag, account, amount
_WALLET = struct.Struct("<BQQ")
_PLACE_SIZE = _PLACE.size  # 37
_CANCEL_SIZE = _CANCEL.size  # 17


def put_str(out: list, text: str | None) -> None:
    if text is None:
        out.append(b"\x00")
        return
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise CodecError("string not ASCII") from None
    if not 0 < len(raw) < 256:
        raise CodecError(f"string of {len(raw)} bytes")
    out.append(bytes((len(raw),)))
    out.append(raw)


def get_str(buf, at: int) -> tuple[str | None, int]:
    n = buf[at]
    if n == 0:
        return None, at + 1
    end = at + 1 + n
    if end > len(buf):
        raise CodecError("string runs past the end")
    return str(buf[at + 1 : end], "ascii"), end  # decoded from the buffer, no bytes copy


def encode_command(cmd) -> bytes:
    """A command as a block carries it (the module docstring). Compiled, a
    place or a cancel is written with C stores (`_encode_command_c`)."""
    if _COMPILED:
        raw = _encode_command_c(cmd)
        if raw is not None:
            return raw
    try:
        return _encode_command(cmd)
    except struct.error as e:  # a number outside its field: the edge should have refused it
        raise CodecError(f"{cmd.__class__.__name__}: {e}") from None


def _encode_command_c(cmd):
    """Compiled only: a place or a cancel written with C stores into a stack
    buffer, the same bytes as `_encode_command`; None for any other command,
    or for a field that is not an int or does not fit its width (the caller
    then takes the `struct` path, which refuses it as it always has)."""
    buf = cython.declare(cython.uchar[640])
    cls = cmd.__class__
    try:
        if cls is PlaceOrder:
            account, symbol, side, otype, tif, price, qty, quote_qty, post_only, stp, cid = cython.cast(tuple, cmd)
            for v in (account, side, otype, tif, price, qty, quote_qty, post_only, stp):
                if not isinstance(v, int):
                    return None  # C would convert a float through __int__: struct decides instead
            # Typed locals (wire.pxd): a value outside its C type is an OverflowError.
            u_account = account
            u_side = side
            u_type = otype
            u_tif = tif
            u_flags = int(post_only) | (int(stp) << 1)
            u_price = price
            u_qty = qty
            u_quote = quote_qty
            buf[0] = _PLACE_TAG
            _w64(buf, 1, u_account)
            buf[9] = u_side
            buf[10] = u_type
            buf[11] = u_tif
            buf[12] = u_flags
            _w64(buf, 13, u_price)
            _w64(buf, 21, u_qty)
            _w64(buf, 29, u_quote)
            at = _PLACE_SIZE
        elif cls is CancelOrder:
            account, symbol, order_id, cid = cython.cast(tuple, cmd)
            if not (isinstance(account, int) and isinstance(order_id, int)):
                return None
            u_account = account
            u_order = order_id
            buf[0] = _CANCEL_TAG
            _w64(buf, 1, u_account)
            _w64(buf, 9, u_order)
            at = _CANCEL_SIZE
        else:
            return None
    except OverflowError:
        return None
    at = _put_str_c(buf, at, symbol)
    at = _put_str_c(buf, at, cid)
    return PyBytes_FromStringAndSize(cython.cast(cython.p_char, buf), at)  # noqa: F821


def _put_str_c(buf, at: int, text) -> int:
    """Compiled only: put_str's bytes for `text` written at `at`; the offset
    after them. None, or an ASCII str of 1 to 255 characters, is written
    here (copied from the string's own bytes); anything else goes through
    put_str, which writes it or refuses it with a CodecError."""
    if text is None:
        buf[at] = 0
        return at + 1
    if type(text) is str:
        n = PyUnicode_GET_LENGTH(text)  # noqa: F821
        if 0 < n <= 255 and PyUnicode_KIND(text) == 1 and text.isascii():  # noqa: F821
            buf[at] = n
            memcpy(cython.address(buf[at + 1]), PyUnicode_1BYTE_DATA(text), n)  # noqa: F821
            return at + 1 + n
    return _copy(buf, at, _str_bytes(text))


def _encode_command(cmd) -> bytes:
    out: list[bytes] = []
    cls = cmd.__class__
    if cls is PlaceOrder:
        flags = int(cmd.post_only) | (int(cmd.stp) << 1)
        out.append(_PLACE.pack(_PLACE_TAG, cmd.account, cmd.side, cmd.type, cmd.tif, flags, cmd.price, cmd.qty, cmd.quote_qty))
        put_str(out, cmd.symbol)
        put_str(out, cmd.client_order_id)
    elif cls is CancelOrder:
        out.append(_CANCEL.pack(_CANCEL_TAG, cmd.account, cmd.order_id))
        put_str(out, cmd.symbol)
        put_str(out, cmd.client_order_id)
    elif cls is CancelAll:
        out.append(_CANCEL_ALL.pack(_CANCEL_ALL_TAG, cmd.account, cmd.symbol is not None))
        if cmd.symbol is not None:
            put_str(out, cmd.symbol)
    elif cls is AmendOrder:
        out.append(_AMEND.pack(_AMEND_TAG, cmd.account, cmd.order_id, cmd.price, cmd.qty))
        put_str(out, cmd.symbol)
        put_str(out, cmd.client_order_id)
    elif cls is Deposit or cls is Withdraw:
        if cmd.transfer_id is None:
            out.append(_WALLET.pack(_DEPOSIT_TAG if cls is Deposit else _WITHDRAW_TAG, cmd.account, cmd.amount))
            put_str(out, cmd.asset)
        else:
            out.append(_WALLET.pack(_DEPOSIT_ID_TAG if cls is Deposit else _WITHDRAW_ID_TAG, cmd.account, cmd.amount))
            put_str(out, cmd.asset)
            put_str(out, cmd.transfer_id)
    else:
        raise CodecError(f"not a command: {cls.__name__}")
    return b"".join(out)


def decode_command(buf, at: int = 0):
    """Return (command, offset after it)."""
    try:
        tag = buf[at]
        if tag == _PLACE_TAG:
            _, account, side, otype, tif, flags, price, qty, quote_qty = _PLACE.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _PLACE_SIZE)
            cid, at = get_str(buf, at)
            if symbol is None or flags >> 3:
                raise CodecError("bad place")
            # The NamedTuple built from its fields in order, without the
            # keyword call (half the cost; tests/unit/test_engine_place.py
            # pins PlaceOrder's field order).
            fields = (account, symbol, _SIDE[side], _TYPE[otype], _TIF[tif], price, qty, quote_qty, bool(flags & 1), _STP[flags >> 1], cid)
            return _new(PlaceOrder, fields), at
        if tag == _CANCEL_TAG:
            _, account, order_id = _CANCEL.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _CANCEL_SIZE)
            cid, at = get_str(buf, at)
            return _new(CancelOrder, (account, symbol, order_id, cid)), at
        if tag == _CANCEL_ALL_TAG:
            _, account, has_symbol = _CANCEL_ALL.unpack_from(buf, at)
            at += _CANCEL_ALL.size
            symbol = None
            if has_symbol:
                symbol, at = get_str(buf, at)
            return CancelAll(account=account, symbol=symbol), at
        if tag == _AMEND_TAG:
            _, account, order_id, price, qty = _AMEND.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _AMEND.size)
            cid, at = get_str(buf, at)
            return AmendOrder(account=account, symbol=symbol, order_id=order_id, client_order_id=cid, price=price, qty=qty), at
        if tag in (_DEPOSIT_TAG, _WITHDRAW_TAG):
            _, account, amount = _WALLET.unpack_from(buf, at)
            asset, at = get_str(buf, at + _WALLET.size)
            cls = Deposit if tag == _DEPOSIT_TAG else Withdraw
            return cls(account=account, asset=asset, amount=amount), at
        if tag in (_DEPOSIT_ID_TAG, _WITHDRAW_ID_TAG):
            _, account, amount = _WALLET.unpack_from(buf, at)
            asset, at = get_str(buf, at + _WALLET.size)
            transfer_id, at = get_str(buf, at)
            if transfer_id is None:
                raise CodecError("a transfer tagged with an id has none")
            cls = Deposit if tag == _DEPOSIT_ID_TAG else Withdraw
            return cls(account=account, asset=asset, amount=amount, transfer_id=transfer_id), at
    except (struct.error, IndexError, KeyError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, CodecError):
            raise
        raise CodecError(f"bad command at {at}: {e!r}") from e
    raise CodecError(f"unknown command tag {tag}")


def decode_commands(buf, at: int, count: int, auths: int) -> tuple[list, list, list, int]:
    """The `count` commands of a proposal from `buf[at:]` (a memoryview), each
    after its u16 auth index (NO_AUTH, or below `auths`): (commands, auth
    indexes, each command's bytes with its index, which the commands root is
    computed over; the offset after the last)."""
    if _COMPILED:
        if buf is None:
            raise TypeError("decode_commands needs a buffer, not None")
        return _decode_commands_c(buf, at, count, auths)
    commands = []
    indexes = []
    leaves = []
    for _ in range(count):
        start = at
        (index,) = _U16.unpack_from(buf, at)
        if index != NO_AUTH and index >= auths:
            raise CodecError("auth index out of range")
        cmd, at = decode_command(buf, at + 2)
        commands.append(cmd)
        indexes.append(index)
        leaves.append(bytes(buf[start:at]))
    return commands, indexes, leaves, at


def _decode_commands_c(view, at: int, count: int, auths: int) -> tuple[list, list, list, int]:
    """Compiled only: decode_commands with `view` typed (wire.pxd), places and
    cancels read with C loads, a command's leaf made from the view."""
    commands = []
    indexes = []
    leaves = []
    end = len(view)
    if at < 0:  # the view's indexes are not checked below, and a negative one would wrap
        raise CodecError(f"bad proposal: commands at {at}")
    no_auth = NO_AUTH
    symbol = None  # the last place's or cancel's symbol: the next one's is most often the same
    for _ in range(count):
        start = at
        if at + 2 > end:
            raise CodecError("bad proposal: an auth index cut short")
        index = view[at] | (view[at + 1] << 8)
        if index != no_auth and index >= auths:
            raise CodecError("auth index out of range")
        at += 2
        cmd = None
        if at < end:
            tag = view[at]
            if tag == _PLACE_TAG or tag == _CANCEL_TAG:
                try:
                    cmd, at = _decode_c(view, at, end, tag, symbol)
                except (KeyError, UnicodeDecodeError) as e:
                    raise CodecError(f"bad command at {at}: {e!r}") from e
                symbol = cmd[1]  # PlaceOrder.symbol, CancelOrder.symbol
        if cmd is None:
            cmd, at = decode_command(view, at)
        commands.append(cmd)
        indexes.append(index)
        leaves.append(PyBytes_FromStringAndSize(cython.cast(cython.p_char, cython.address(view[start])), at - start))  # noqa: F821
    return commands, indexes, leaves, at


def _decode_c(view, at: int, end: int, tag: int, last_symbol):
    """Compiled only: a place or cancel at `at`, read with C loads; the same
    command and offset as decode_command. Bounds are checked here (the
    compiled module does not check indexes). `last_symbol` (the previous
    command's, or None) is reused when the bytes are its: no new string to
    make, and the engine's market lookup finds its hash already computed."""
    if tag == _PLACE_TAG:
        if at + _PLACE_SIZE > end:
            raise CodecError("bad command: a place cut short")
        flags = view[at + 12]
        account = _u64(view, at + 1)
        side = view[at + 9]
        otype = view[at + 10]
        tif = view[at + 11]
        price = _u64(view, at + 13)
        qty = _u64(view, at + 21)
        quote_qty = _u64(view, at + 29)
        at += _PLACE_SIZE
        symbol = _symbol(view, at, end, last_symbol)
        at += 1 + view[at]
        cid = _ascii(view, at, end)
        at += 1 + view[at]
        stp = flags >> 1
        if symbol is None or flags >> 3:
            raise CodecError("bad place")
        if side >= len(_SIDES) or otype >= len(_TYPES) or tif >= len(_TIFS) or stp >= len(_STPS):
            raise KeyError((side, otype, tif, stp))  # as the decoders' lookups would
        fields = (account, symbol, _SIDES[side], _TYPES[otype], _TIFS[tif], price, qty, quote_qty, bool(flags & 1), _STPS[stp], cid)
        return _new(PlaceOrder, fields), at
    if at + _CANCEL_SIZE > end:
        raise CodecError("bad command: a cancel cut short")
    account = _u64(view, at + 1)
    order_id = _u64(view, at + 9)
    at += _CANCEL_SIZE
    symbol = _symbol(view, at, end, last_symbol)
    at += 1 + view[at]
    cid = _ascii(view, at, end)
    at += 1 + view[at]
    return _new(CancelOrder, (account, symbol, order_id, cid)), at


def _u64(view, at: int) -> int:
    """The little-endian u64 at view[at:at + 8]."""
    v = 0
    for k in range(7, -1, -1):
        v = (v << 8) | view[at + k]
    return v


def _ascii(view, at: int, end: int):
    """Compiled only: get_str's string from a typed view, decoded in place;
    the caller steps past it (1 + view[at] bytes, checked here to fit)."""
    if at >= end:
        raise CodecError("a string cut short")
    n = view[at]
    if n == 0:
        return None
    if at + 1 + n > end:
        raise CodecError("string runs past the end")
    return PyUnicode_DecodeASCII(cython.cast(cython.p_char, cython.address(view[at + 1])), n, cython.NULL)  # noqa: F821


def _symbol(view, at: int, end: int, last):
    """Compiled only: _ascii, returning `last` itself when the bytes are its
    (an ASCII str's characters are its bytes)."""
    if last is not None and at < end:
        n = view[at]
        if n == PyUnicode_GET_LENGTH(last) and at + 1 + n <= end and PyUnicode_KIND(last) == 1:  # noqa: F821
            if memcmp(PyUnicode_1BYTE_DATA(last), cython.address(view[at + 1]), n) == 0:  # noqa: F821
                return last
    return _ascii(view, at, end)


# --------------------------------------------------------------------- results

EVENTS_PER_COMMAND_MAX = 65535
_STATUS = _members(OrderStatus)
_REASON = _members(Reason)
_STOP = _members(StopReason)

_EV_ACCEPTED, _EV_REJECTED, _EV_DUPLICATE, _EV_TRADE, _EV_CANCELLED, _EV_EXPIRED, _EV_AMENDED, _EV_BALANCE = range(1, 9)
_ACCEPTED = struct.Struct("<BQQBBBQQQ")  # tag, order_id, account, side, type, tif, price, qty, quote_qty (+symbol, cid)
_REJECTED = struct.Struct("<BQQB")  # tag, account, order_id, reason (+symbol, cid)
_DUPLICATE = struct.Struct("<BQQBQQ")  # tag, order_id, account, status, filled, qty (+symbol, cid)
_TRADE = struct.Struct("<BQQQBQQQQQQ")  # tag, trade_id, price, qty, taker_side, maker oid, taker oid, maker acct, taker acct, fees (+symbol)
_STOPPED = struct.Struct("<BQQQB")  # tag, order_id, account, qty, reason (+symbol)
_AMENDED = struct.Struct("<BQQQQB")  # tag, order_id, account, price, qty, priority_kept (+symbol)
_BALANCE = struct.Struct("<BQqQ")  # tag, account, delta, free (+asset)


def encode_events(events: list) -> bytes:
    """A command's events as a block's results hold them:
    u16 count, then per event its tag, fixed fields and strings."""
    if len(events) > EVENTS_PER_COMMAND_MAX:
        raise CodecError("too many events")
    if _COMPILED:
        raw = _encode_events_c(events)
        if raw is not None:
            return raw
    out: list[bytes] = [_U16.pack(len(events))]
    append = out.append
    for ev in events:
        # Each event unpacked in one step (its NamedTuple field order), its
        # symbol's bytes from a cache: a third less than attribute reads and
        # an encode per string (bench/engine.py --block-apply, encode phase).
        cls = ev.__class__
        if cls is OrderAccepted:
            order_id, account, symbol, side, otype, tif, price, qty, quote_qty, cid = ev
            append(_ACCEPTED.pack(_EV_ACCEPTED, order_id, account, side, otype, tif, price, qty, quote_qty))
            append(_NAMES.get(symbol) or _name(symbol))
            put_str(out, cid)
        elif cls is Trade:
            trade_id, symbol, price, qty, taker_side, maker_oid, taker_oid, maker_account, taker_account, maker_fee, taker_fee = ev
            append(_TRADE.pack(_EV_TRADE, trade_id, price, qty, taker_side, maker_oid, taker_oid, maker_account, taker_account, maker_fee, taker_fee))
            append(_NAMES.get(symbol) or _name(symbol))
        elif cls is OrderRejected:
            account, symbol, cid, order_id, reason = ev
            append(_REJECTED.pack(_EV_REJECTED, account, order_id, reason))
            put_str(out, symbol)  # not cached: a rejected symbol can be anything the client sent
            put_str(out, cid)
        elif cls is OrderDuplicate:
            order_id, account, symbol, cid, status, filled, qty = ev
            append(_DUPLICATE.pack(_EV_DUPLICATE, order_id, account, status, filled, qty))
            append(_NAMES.get(symbol) or _name(symbol))
            put_str(out, cid)
        elif cls is OrderCancelled or cls is OrderExpired:
            order_id, account, symbol, qty, reason = ev
            append(_STOPPED.pack(_EV_CANCELLED if cls is OrderCancelled else _EV_EXPIRED, order_id, account, qty, reason))
            append(_NAMES.get(symbol) or _name(symbol))
        elif cls is OrderAmended:
            order_id, account, symbol, price, qty, priority_kept = ev
            append(_AMENDED.pack(_EV_AMENDED, order_id, account, price, qty, priority_kept))
            append(_NAMES.get(symbol) or _name(symbol))
        elif cls is BalanceChanged:
            account, asset, delta, free = ev
            append(_BALANCE.pack(_EV_BALANCE, account, delta, free))
            append(_NAMES.get(asset) or _name(asset))
        else:
            raise CodecError(f"not an event: {cls.__name__}")
    return b"".join(out)


# A market's symbol or an asset's name as _put_str writes it. Only names the
# engine accepted reach the cache (a market's or an asset's in its config),
# so it holds a handful; it is emptied past _NAMES_MAX all the same.
_NAMES: dict[str, bytes] = {}
_NAMES_MAX = 1024


def _name(text: str) -> bytes:
    out: list[bytes] = []
    put_str(out, text)
    encoded = b"".join(out)
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[text] = encoded
    return encoded


def decode_events(buf, at: int = 0) -> tuple[list, int]:
    """A command's events from `buf` at `at` (bytes or a memoryview), as
    encode_events wrote them: (events, offset after them). Malformed bytes
    are a CodecError. Compiled, the common events are read with C loads
    (`_decode_events_c`); the rest, and the pure module, with `struct`."""
    if _COMPILED:
        if buf is None:
            raise TypeError("decode_events needs a buffer, not None")
        return _decode_events_c(buf, buf, at)
    try:
        (n,) = _U16.unpack_from(buf, at)
    except struct.error as e:
        raise CodecError(f"bad events at {at}: {e}") from e
    at += 2
    events = []
    for _ in range(n):
        event, at = _event_at(buf, at)
        events.append(event)
    return events, at


def _event_at(buf, at: int):
    """The event at `at` and the offset after it, read with `struct`."""
    try:
        tag = buf[at]
        if tag == _EV_TRADE:
            f = _TRADE.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _TRADE.size)
            return Trade(f[1], symbol, f[2], f[3], _SIDE[f[4]], f[5], f[6], f[7], f[8], f[9], f[10]), at
        if tag == _EV_ACCEPTED:
            f = _ACCEPTED.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _ACCEPTED.size)
            cid, at = get_str(buf, at)
            return OrderAccepted(f[1], f[2], symbol, _SIDE[f[3]], _TYPE[f[4]], _TIF[f[5]], f[6], f[7], f[8], cid), at
        if tag == _EV_REJECTED:
            f = _REJECTED.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _REJECTED.size)
            cid, at = get_str(buf, at)
            return OrderRejected(f[1], symbol, cid, f[2], _REASON[f[3]]), at
        if tag == _EV_DUPLICATE:
            f = _DUPLICATE.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _DUPLICATE.size)
            cid, at = get_str(buf, at)
            return OrderDuplicate(f[1], f[2], symbol, cid, _STATUS[f[3]], f[4], f[5]), at
        if tag == _EV_CANCELLED or tag == _EV_EXPIRED:
            f = _STOPPED.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _STOPPED.size)
            cls = OrderCancelled if tag == _EV_CANCELLED else OrderExpired
            return cls(f[1], f[2], symbol, f[3], _STOP[f[4]]), at
        if tag == _EV_AMENDED:
            f = _AMENDED.unpack_from(buf, at)
            symbol, at = get_str(buf, at + _AMENDED.size)
            return OrderAmended(f[1], f[2], symbol, f[3], f[4], bool(f[5])), at
        if tag == _EV_BALANCE:
            f = _BALANCE.unpack_from(buf, at)
            asset, at = get_str(buf, at + _BALANCE.size)
            return BalanceChanged(f[1], asset, f[2], f[3]), at
    except (struct.error, IndexError, KeyError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, CodecError):
            raise
        raise CodecError(f"bad events at {at}: {e}") from e
    raise CodecError(f"unknown event tag {tag}")


_ACCEPTED_SIZE = _ACCEPTED.size  # 44
_TRADE_SIZE = _TRADE.size  # 74
_STOPPED_SIZE = _STOPPED.size  # 26
_BALANCE_SIZE = _BALANCE.size  # 25


def _decode_events_c(buf, view, at: int) -> tuple[list, int]:
    """Compiled only: decode_events with `view` typed (wire.pxd), the common
    events (accepted, trade, cancelled, expired, balance) read with C loads,
    their strings decoded in place and a repeated symbol reused; the others
    through `_event_at` on `buf`. The same events and offset as the pure
    decoder, and a CodecError wherever it raises one (tests/unit/test_wire_events.py)."""
    end = len(view)
    if at < 0 or at + 2 > end:  # the view's indexes are not checked below
        raise CodecError(f"bad events at {at}: no event count")
    n = view[at] | (view[at + 1] << 8)
    at += 2
    events = []
    symbol = None  # the last event's symbol: most often the next one's
    for _ in range(n):
        if at >= end:
            raise CodecError(f"bad events at {at}: cut short")
        tag = view[at]
        try:
            if tag == _EV_TRADE:
                if at + _TRADE_SIZE > end:
                    raise CodecError(f"bad events at {at}: a trade cut short")
                side = view[at + 25]
                if side >= len(_SIDES):
                    raise KeyError(side)
                trade_id = _u64(view, at + 1)
                price = _u64(view, at + 9)
                qty = _u64(view, at + 17)
                maker_oid = _u64(view, at + 26)
                taker_oid = _u64(view, at + 34)
                maker_account = _u64(view, at + 42)
                taker_account = _u64(view, at + 50)
                maker_fee = _u64(view, at + 58)
                taker_fee = _u64(view, at + 66)
                at += _TRADE_SIZE
                symbol = _symbol(view, at, end, symbol)
                at += 1 + view[at]
                events.append(_new(Trade, (trade_id, symbol, price, qty, _SIDES[side], maker_oid, taker_oid, maker_account,
                                           taker_account, maker_fee, taker_fee)))
            elif tag == _EV_ACCEPTED:
                if at + _ACCEPTED_SIZE > end:
                    raise CodecError(f"bad events at {at}: an accept cut short")
                side = view[at + 17]
                otype = view[at + 18]
                tif = view[at + 19]
                if side >= len(_SIDES) or otype >= len(_TYPES) or tif >= len(_TIFS):
                    raise KeyError((side, otype, tif))
                order_id = _u64(view, at + 1)
                account = _u64(view, at + 9)
                price = _u64(view, at + 20)
                qty = _u64(view, at + 28)
                quote_qty = _u64(view, at + 36)
                at += _ACCEPTED_SIZE
                symbol = _symbol(view, at, end, symbol)
                at += 1 + view[at]
                cid = _ascii(view, at, end)
                at += 1 + view[at]
                events.append(_new(OrderAccepted, (order_id, account, symbol, _SIDES[side], _TYPES[otype], _TIFS[tif],
                                                   price, qty, quote_qty, cid)))
            elif tag == _EV_CANCELLED or tag == _EV_EXPIRED:
                if at + _STOPPED_SIZE > end:
                    raise CodecError(f"bad events at {at}: a stop cut short")
                reason = _STOP[view[at + 25]]
                order_id = _u64(view, at + 1)
                account = _u64(view, at + 9)
                qty = _u64(view, at + 17)
                at += _STOPPED_SIZE
                symbol = _symbol(view, at, end, symbol)
                at += 1 + view[at]
                events.append(_new(OrderCancelled if tag == _EV_CANCELLED else OrderExpired, (order_id, account, symbol, qty, reason)))
            elif tag == _EV_BALANCE:
                if at + _BALANCE_SIZE > end:
                    raise CodecError(f"bad events at {at}: a balance cut short")
                account = _u64(view, at + 1)
                delta = cython.cast(cython.longlong, _u64(view, at + 9))
                free = _u64(view, at + 17)
                at += _BALANCE_SIZE
                asset = _ascii(view, at, end)
                at += 1 + view[at]
                events.append(_new(BalanceChanged, (account, asset, delta, free)))
            else:
                event, at = _event_at(buf, at)
                events.append(event)
        except (KeyError, UnicodeDecodeError) as e:
            raise CodecError(f"bad events at {at}: {e!r}") from e
    return events, at


# Compiled only: the common events (accepted, trade, cancelled, expired,
# balance) written with C stores into one stack buffer, then one bytes
# object; the same bytes as the struct path above. A list holding any other
# event, or too long for the buffer, returns None and takes that path.
_EVENTS_BUFFER_BYTES = 16384  # the buffer's size in _encode_events_c
_EVENT_BYTES_MAX = 74 + 2 * 256  # the widest fixed part (a trade's) and two strings


def _encode_events_c(events: list):
    buf = cython.declare(cython.uchar[16384])
    names = _NAMES
    n = len(events)
    buf[0] = n & 0xFF
    buf[1] = n >> 8
    at = 2
    for ev in events:
        if at + _EVENT_BYTES_MAX > _EVENTS_BUFFER_BYTES:
            return None
        for v in cython.cast(tuple, ev):  # events are NamedTuples
            if not (v is None or isinstance(v, (int, str))):
                return None  # C would convert a float through __int__: struct decides instead
        cls = ev.__class__
        if cls is Trade:
            trade_id, symbol, price, qty, taker_side, maker_oid, taker_oid, maker_account, taker_account, maker_fee, taker_fee = ev
            buf[at] = _EV_TRADE
            _w64(buf, at + 1, trade_id)
            _w64(buf, at + 9, price)
            _w64(buf, at + 17, qty)
            buf[at + 25] = _byte(taker_side)
            _w64(buf, at + 26, maker_oid)
            _w64(buf, at + 34, taker_oid)
            _w64(buf, at + 42, maker_account)
            _w64(buf, at + 50, taker_account)
            _w64(buf, at + 58, maker_fee)
            _w64(buf, at + 66, taker_fee)
            at = _copy(buf, at + 74, names.get(symbol) or _name(symbol))
        elif cls is BalanceChanged:
            account, asset, delta, free = ev
            buf[at] = _EV_BALANCE
            _w64(buf, at + 1, account)
            _w64(buf, at + 9, _i64(delta))
            _w64(buf, at + 17, free)
            at = _copy(buf, at + 25, names.get(asset) or _name(asset))
        elif cls is OrderAccepted:
            order_id, account, symbol, side, otype, tif, price, qty, quote_qty, cid = ev
            buf[at] = _EV_ACCEPTED
            _w64(buf, at + 1, order_id)
            _w64(buf, at + 9, account)
            buf[at + 17] = _byte(side)
            buf[at + 18] = _byte(otype)
            buf[at + 19] = _byte(tif)
            _w64(buf, at + 20, price)
            _w64(buf, at + 28, qty)
            _w64(buf, at + 36, quote_qty)
            at = _copy(buf, at + 44, names.get(symbol) or _name(symbol))
            at = _put_str_c(buf, at, cid)
        elif cls is OrderCancelled or cls is OrderExpired:
            order_id, account, symbol, qty, reason = ev
            buf[at] = _EV_CANCELLED if cls is OrderCancelled else _EV_EXPIRED
            _w64(buf, at + 1, order_id)
            _w64(buf, at + 9, account)
            _w64(buf, at + 17, qty)
            buf[at + 25] = _byte(reason)
            at = _copy(buf, at + 26, names.get(symbol) or _name(symbol))
        else:
            return None
    return PyBytes_FromStringAndSize(cython.cast(cython.p_char, buf), at)  # noqa: F821


def _w64(buf, at: int, v: int) -> None:
    """buf[at:at + 8] = v, a u64, little-endian."""
    for k in range(8):
        buf[at + k] = (v >> (8 * k)) & 0xFF


def _i64(v: int) -> int:
    """An i64 as the u64 of its two's complement (its bytes)."""
    return cython.cast(cython.ulonglong, v)


def _byte(v: int) -> int:
    """A u8 field, refused as struct refuses it outside 0..255."""
    if not 0 <= v <= 255:
        raise CodecError(f"byte field out of range: {v}")
    return v


def _str_bytes(text: str) -> bytes:
    """A string field as put_str writes it (length byte, ASCII)."""
    out: list[bytes] = []
    put_str(out, text)
    return b"".join(out)


def _copy(buf, at: int, raw: bytes) -> int:
    """buf[at:at + len(raw)] = raw; the offset after it."""
    for k in range(len(raw)):
        buf[at + k] = raw[k]
    return at + len(raw)
