"""A command as a block carries it: its bytes, and the engine command they decode to.

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

This module is part of the engine's source because a node decodes every
command of every block: compiled (docs/ENGINE.md, "Two implementations"),
`decode_commands` reads places and cancels with C loads from a typed view of
the proposal and makes each command, its string fields and its leaf bytes
straight from it, where the pure module unpacks with `struct` and slices.
The other commands (rare: operators, wallets) take `decode_command` in both.
tests/unit/test_wire.py holds the two builds to each other, malformed input
included.
"""

from __future__ import annotations

import struct

from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw
from dex.core.types import SelfTradePrevention, Side, OrderType, TimeInForce
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
    try:
        return _encode_command(cmd)
    except struct.error as e:  # a number outside its field: the edge should have refused it
        raise CodecError(f"{cmd.__class__.__name__}: {e}") from None


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
    for _ in range(count):
        start = at
        if at + 2 > end:
            raise CodecError("bad proposal: an auth index cut short")
        index = view[at] | (view[at + 1] << 8)
        if index != NO_AUTH and index >= auths:
            raise CodecError("auth index out of range")
        at += 2
        cmd = None
        if at < end:
            tag = view[at]
            if tag == _PLACE_TAG or tag == _CANCEL_TAG:
                try:
                    cmd, at = _decode_c(view, at, end, tag)
                except (KeyError, UnicodeDecodeError) as e:
                    raise CodecError(f"bad command at {at}: {e!r}") from e
        if cmd is None:
            cmd, at = decode_command(view, at)
        commands.append(cmd)
        indexes.append(index)
        leaves.append(PyBytes_FromStringAndSize(cython.cast(cython.p_char, cython.address(view[start])), at - start))  # noqa: F821
    return commands, indexes, leaves, at


def _decode_c(view, at: int, end: int, tag: int):
    """Compiled only: a place or cancel at `at`, read with C loads; the same
    command and offset as decode_command. Bounds are checked here (the
    compiled module does not check indexes)."""
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
        symbol, at = _ascii(view, at + _PLACE_SIZE, end)
        cid, at = _ascii(view, at, end)
        if symbol is None or flags >> 3:
            raise CodecError("bad place")
        fields = (account, symbol, _SIDE[side], _TYPE[otype], _TIF[tif], price, qty, quote_qty, bool(flags & 1), _STP[flags >> 1], cid)
        return _new(PlaceOrder, fields), at
    if at + _CANCEL_SIZE > end:
        raise CodecError("bad command: a cancel cut short")
    account = _u64(view, at + 1)
    order_id = _u64(view, at + 9)
    symbol, at = _ascii(view, at + _CANCEL_SIZE, end)
    cid, at = _ascii(view, at, end)
    return _new(CancelOrder, (account, symbol, order_id, cid)), at


def _u64(view, at: int) -> int:
    """The little-endian u64 at view[at:at + 8]."""
    v = 0
    for k in range(7, -1, -1):
        v = (v << 8) | view[at + k]
    return v


def _ascii(view, at: int, end: int):
    """Compiled only: get_str from a typed view, decoded in place."""
    if at >= end:
        raise CodecError("bad command: a string cut short")
    n = view[at]
    if n == 0:
        return None, at + 1
    if at + 1 + n > end:
        raise CodecError("string runs past the end")
    return PyUnicode_DecodeASCII(cython.cast(cython.p_char, cython.address(view[at + 1])), n, cython.NULL), at + 1 + n  # noqa: F821
