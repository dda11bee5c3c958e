"""A proposal's commands decoded by both builds of dex/engine/wire.py.

Compiled, `decode_commands` reads places and cancels with C loads and its own
bounds checks; pure, it unpacks with `struct`. Here both decode the same
proposals through `dex.ledger.codec.decode_proposal` and must agree exactly:
the same commands (types included), auth indexes and leaf bytes on valid
input, and a CodecError on the same malformed input (every truncation, bytes
overwritten at every offset, bad enum values and flags, non-ASCII strings,
strings running past the end, auth indexes out of range).
"""

from __future__ import annotations

import random

import pytest

import dex.engine
import dex.ledger.codec as codec
from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw
from dex.core.types import OrderType, SelfTradePrevention, Side, TimeInForce
from dex.engine import wire as pure_wire
from dex.engine.shared import CodecError
from dex.ledger.codec import NO_AUTH, Auth, assemble_proposal, encode_command


def _compiled_wire():
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    from dex.engine._compiled import wire

    return wire


def _commands(rng: random.Random, count: int) -> list:
    made = []
    for _ in range(count):
        kind = rng.random()
        account = rng.choice((0, 1, 2**63, 2**64 - 1, rng.getrandbits(64)))
        cid = rng.choice((None, "a", "x" * 36, "client-1"))
        if kind < 0.6:
            made.append(PlaceOrder(
                account=account, symbol=rng.choice(("BTCUSDT", "ETHUSDT", "X" * 20)), side=rng.choice(list(Side)),
                type=rng.choice(list(OrderType)), tif=rng.choice(list(TimeInForce)),
                price=rng.choice((0, 1, 2**40, 2**64 - 1)), qty=rng.getrandbits(40), quote_qty=rng.choice((0, 2**64 - 1)),
                post_only=rng.random() < 0.5, stp=rng.choice(list(SelfTradePrevention)), client_order_id=cid,
            ))
        elif kind < 0.85:
            made.append(CancelOrder(account=account, symbol="BTCUSDT", order_id=rng.choice((0, 7, 2**64 - 1)), client_order_id=cid))
        elif kind < 0.9:
            made.append(CancelAll(account=account, symbol=rng.choice((None, "BTCUSDT"))))
        elif kind < 0.95:
            made.append(AmendOrder(account=account, symbol="BTCUSDT", order_id=3, client_order_id=cid, price=5, qty=6))
        else:
            cls = rng.choice((Deposit, Withdraw))
            made.append(cls(account=account, asset="USDT", amount=rng.getrandbits(64), transfer_id=rng.choice((None, "t-1"))))
    return made


def _proposal(rng: random.Random, count: int) -> bytes:
    auths = [Auth(public_key=bytes(32), timestamp_ms=i, signature=bytes(64), payload=b"p%d" % i) for i in range(3)]
    commands = [(rng.choice((0, 1, 2, NO_AUTH)), encode_command(c)) for c in _commands(rng, count)]
    return assemble_proposal(leader="n1", term=2, time_ms=3, auths=auths, commands=commands)


def _decode_with(monkeypatch, wire, data: bytes):
    """decode_proposal(data) with `wire`'s decode_commands: the result, or the CodecError's class."""
    monkeypatch.setattr(codec, "_decode_commands", wire.decode_commands)
    try:
        proposal, leaves = codec.decode_proposal(data)
    except CodecError:
        return CodecError
    return proposal, leaves, [type(c) for c in proposal.commands], [type(x) for x in leaves]


@pytest.mark.parametrize("seed", range(20))
def test_both_builds_decode_valid_proposals_alike(monkeypatch, seed):
    compiled = _compiled_wire()
    data = _proposal(random.Random(seed), 60)

    pure = _decode_with(monkeypatch, pure_wire, data)
    assert pure is not CodecError
    assert _decode_with(monkeypatch, compiled, data) == pure
    proposal, leaves = pure[0], pure[1]
    assert [pure_wire.decode_command(leaf, 2)[0] for leaf in leaves] == list(proposal.commands)


def test_both_builds_refuse_every_truncation_alike(monkeypatch):
    compiled = _compiled_wire()
    data = _proposal(random.Random(99), 12)
    for cut in range(len(data)):
        short = data[:cut]
        assert _decode_with(monkeypatch, compiled, short) == _decode_with(monkeypatch, pure_wire, short), cut


@pytest.mark.parametrize("seed", range(4))
def test_both_builds_agree_on_overwritten_bytes(monkeypatch, seed):
    compiled = _compiled_wire()
    rng = random.Random(seed)
    data = _proposal(rng, 8)
    refused = 0
    for at in range(len(data)):
        for value in (0x00, 0x03, 0x07, 0x80, 0xFF, rng.randrange(256)):
            bad = data[:at] + bytes((value,)) + data[at + 1 :]
            pure = _decode_with(monkeypatch, pure_wire, bad)
            assert _decode_with(monkeypatch, compiled, bad) == pure, (at, value)
            refused += pure is CodecError
    assert refused > 0  # the mutations did reach the decoders' refusals


def test_bad_enum_values_flags_strings_and_indexes_are_refused_by_both(monkeypatch):
    compiled = _compiled_wire()
    place = bytearray(encode_command(PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6)))
    cancel = bytearray(encode_command(CancelOrder(account=1, symbol="BTCUSDT", order_id=9, client_order_id="c")))
    cases = []
    for offset, value in ((9, 2), (10, 9), (11, 9), (12, 8), (12, 7 << 1)):  # side, type, tif, flags >> 3, stp
        bad = bytearray(place)
        bad[offset] = value
        cases.append([(0, bytes(bad))])
    non_ascii = bytearray(cancel)
    non_ascii[18] = 0xE9  # the symbol's first byte
    cases.append([(0, bytes(non_ascii))])
    long_string = bytearray(cancel)
    long_string[17] = 200  # the symbol's length, past the end
    cases.append([(0, bytes(long_string))])
    no_symbol = bytearray(place[:37]) + b"\x00\x00"
    cases.append([(0, bytes(no_symbol))])
    cases.append([(3, bytes(place))])  # auth index 3 of 3 auths
    auths = [Auth(public_key=bytes(32), timestamp_ms=i, signature=bytes(64), payload=b"") for i in range(3)]
    for commands in cases:
        data = assemble_proposal(leader="n1", term=1, time_ms=1, auths=auths, commands=commands)
        assert _decode_with(monkeypatch, pure_wire, data) is CodecError, commands
        assert _decode_with(monkeypatch, compiled, data) is CodecError, commands


def test_an_offset_outside_the_buffer_is_refused_by_both_builds():
    compiled = _compiled_wire()
    buf = memoryview(bytes(100))
    for at in (-1000, -1, 99, 101, 10**6):
        with pytest.raises(Exception):
            pure_wire.decode_commands(buf, at, 1, 1)
        with pytest.raises(CodecError):
            compiled.decode_commands(buf, at, 1, 1)
    for at in (100, 102):  # no command to read: both return nothing, as far as they got
        assert compiled.decode_commands(buf, at, 0, 1) == pure_wire.decode_commands(buf, at, 0, 1) == ([], [], [], at)


def test_commands_of_one_symbol_decode_to_one_string_and_equal_fields():
    # The compiled decoder reuses the previous command's symbol when the
    # bytes are its; a different symbol between two of them is decoded anew.
    from dex.core.commands import CancelOrder, PlaceOrder
    from dex.core.types import Side
    from dex.engine import decode_commands
    from dex.engine.wire import NO_AUTH, encode_command

    cmds = [
        PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=10, qty=1),
        CancelOrder(account=1, symbol="BTCUSDT", order_id=5),
        PlaceOrder(account=2, symbol="ETHUSDT", side=Side.SELL, price=11, qty=2, client_order_id="BTCUSDT"),
        PlaceOrder(account=3, symbol="BTCUSD", side=Side.BUY, price=12, qty=3),
        PlaceOrder(account=3, symbol="BTCUSDT", side=Side.BUY, price=12, qty=3),
    ]
    buf = b"".join(NO_AUTH.to_bytes(2, "little") + encode_command(c) for c in cmds)
    decoded, _, _, at = decode_commands(memoryview(buf), 0, len(cmds), 0)
    assert at == len(buf)
    assert list(decoded) == cmds
    assert [c.symbol for c in decoded] == ["BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSD", "BTCUSDT"]


# ------------------------------------------------------------------ encoding
#
# Compiled, encode_command writes a place or a cancel with C stores and
# leaves anything else (other commands, a field that is not an int or does
# not fit, a string put_str would refuse) to the struct path: both builds
# must write the same bytes, and refuse the same commands with CodecError.


def _encoded(wire, cmd):
    """The bytes, or the class of what was raised (a CodecError for a value the
    codec refuses; a command built with a wrong type can raise another)."""
    try:
        return wire.encode_command(cmd)
    except Exception as e:  # noqa: BLE001 - compared, not swallowed
        return type(e)


def test_the_codec_encodes_commands_with_the_engine_that_runs():
    assert codec.encode_command is dex.engine.wire_module.encode_command


@pytest.mark.parametrize("seed", range(10))
def test_both_builds_encode_commands_to_the_same_bytes(seed):
    compiled = _compiled_wire()
    for cmd in _commands(random.Random(seed), 200):
        raw = compiled.encode_command(cmd)
        assert raw == pure_wire.encode_command(cmd), cmd
        assert pure_wire.decode_command(raw)[0] == cmd


@pytest.mark.parametrize("cmd", [
    PlaceOrder(account=-1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6),
    PlaceOrder(account=2**64, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5.0, qty=6),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=2**64),
    PlaceOrder(account=1, symbol="BTCUSDT", side=256, price=5, qty=6),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6, stp=128),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6, post_only="yes"),
    PlaceOrder(account=1, symbol="BTCUSDT\u00e9", side=Side.BUY, price=5, qty=6),
    PlaceOrder(account=1, symbol="", side=Side.BUY, price=5, qty=6),
    PlaceOrder(account=1, symbol="S" * 256, side=Side.BUY, price=5, qty=6),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6, client_order_id="c" * 256),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6, client_order_id=""),
    PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6, client_order_id="\u00e9t\u00e9"),
    PlaceOrder(account=1, symbol=None, side=Side.BUY, price=5, qty=6),  # writable (0 length); the decoder refuses it
    PlaceOrder(account=1, symbol="S" * 255, side=Side.SELL, price=5, qty=6, client_order_id="c" * 255),  # the widest
    CancelOrder(account=1, symbol="BTCUSDT", order_id=-1, client_order_id=None),
    CancelOrder(account=1, symbol="BTCUSDT", order_id=2**64, client_order_id=None),
    CancelOrder(account=1.5, symbol="BTCUSDT", order_id=3, client_order_id="c"),
    CancelOrder(account=1, symbol=b"BTCUSDT", order_id=3, client_order_id=None),
])
def test_both_builds_encode_or_refuse_edge_commands_alike(cmd):
    compiled = _compiled_wire()
    assert _encoded(compiled, cmd) == _encoded(pure_wire, cmd)


def test_out_of_range_fields_are_codec_errors_in_both_builds():
    compiled = _compiled_wire()
    for cmd in (PlaceOrder(account=-1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=6),
                PlaceOrder(account=1, symbol="BTCUSDT", side=Side.BUY, price=5, qty=2**64),
                PlaceOrder(account=1, symbol="BTCUSDT\u00e9", side=Side.BUY, price=5, qty=6),
                CancelOrder(account=1, symbol="BTCUSDT", order_id=2**64, client_order_id=None)):
        assert _encoded(compiled, cmd) is CodecError and _encoded(pure_wire, cmd) is CodecError
