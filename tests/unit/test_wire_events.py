"""A command's events decoded by both builds of dex/engine/wire.py.

Compiled, `decode_events` reads the common events (accepted, trade,
cancelled, expired, balance) with C loads and its own bounds checks, and the
rest with `struct`; pure, all of them with `struct`. The trade store, the
history read model and the block explorer read every block's results this
way. Here both decode the same bytes and must agree exactly: the same events
(classes and field types included) and offsets on valid input, and a
CodecError on the same malformed input (every truncation, bytes overwritten
at every offset).
"""

from __future__ import annotations

import random

import pytest

import dex.engine
import dex.ledger.codec as codec
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
from dex.core.types import OrderStatus, OrderType, Side, TimeInForce
from dex.engine import wire as pure_wire
from dex.engine.shared import CodecError
from tests import engines

U64 = 2**64 - 1


def _compiled_wire():
    """The compiled build's wire module (the test is skipped where it is not built)."""
    return dex.engine.implementation_module(engines.module("compiled"), "wire")


def _events(rng: random.Random, count: int) -> list:
    """Every kind of event, the common ones most often, with edge values and
    runs of one symbol (the compiled decoder reuses the last one's string)."""
    u64 = lambda: rng.choice((0, 1, 2**63, U64, rng.getrandbits(64)))  # noqa: E731
    symbol = lambda: rng.choice(("BTCUSDT", "BTCUSDT", "ETHUSDT", "X" * 255))  # noqa: E731
    cid = lambda: rng.choice((None, "a", "x" * 36, "client-1"))  # noqa: E731
    made = []
    for _ in range(count):
        kind = rng.randrange(12)
        if kind < 3:
            made.append(Trade(u64(), symbol(), u64(), u64(), rng.choice(list(Side)), u64(), u64(), u64(), u64(), u64(), u64()))
        elif kind < 5:
            made.append(OrderAccepted(u64(), u64(), symbol(), rng.choice(list(Side)), rng.choice(list(OrderType)),
                                      rng.choice(list(TimeInForce)), u64(), u64(), u64(), cid()))
        elif kind < 7:
            cls = rng.choice((OrderCancelled, OrderExpired))
            made.append(cls(u64(), u64(), symbol(), u64(), rng.choice(list(StopReason))))
        elif kind < 8:
            made.append(BalanceChanged(u64(), rng.choice(("USDT", "BTC")), rng.choice((-(2**63), -1, 0, 2**63 - 1)), u64()))
        elif kind < 9:
            made.append(OrderRejected(u64(), rng.choice((None, "NOPE", "BTCUSDT")), cid(), u64(), rng.choice(list(Reason))))
        elif kind < 10:
            made.append(OrderDuplicate(u64(), u64(), symbol(), cid(), rng.choice(list(OrderStatus)), u64(), u64()))
        elif kind < 11:
            made.append(OrderAmended(u64(), u64(), symbol(), u64(), u64(), rng.random() < 0.5))
        else:
            made.append(OrderAccepted(u64(), u64(), None, Side.SELL, OrderType.MARKET, TimeInForce.IOC, 0, 0, u64(), None))
    return made


def _results(rng: random.Random, commands: int) -> bytes:
    """A block's results: each command's events as the pure encoder writes them."""
    return b"".join(pure_wire.encode_events(_events(rng, rng.randrange(0, 6))) for _ in range(commands))


def _decode_all(wire, buf, commands: int):
    """Every command's events read with `wire`: (events, their field types, end), or CodecError."""
    at = 0
    out = []
    try:
        for _ in range(commands):
            events, at = wire.decode_events(buf, at)
            out.append(events)
    except CodecError:
        return CodecError
    return out, [[[type(v) for v in ev] + [type(ev)] for ev in events] for events in out], at


def test_the_codec_decodes_with_the_engine_that_runs():
    assert codec.decode_events is dex.engine.wire_module.decode_events


@pytest.mark.parametrize("seed", range(20))
def test_both_builds_decode_valid_results_alike(seed):
    compiled = _compiled_wire()
    rng = random.Random(seed)
    data = _results(rng, 40)

    pure = _decode_all(pure_wire, data, 40)
    assert pure is not CodecError and pure[2] == len(data)
    for buf in (data, memoryview(data), bytearray(data)):
        assert _decode_all(compiled, buf, 40) == pure
    # and each command's events are what was encoded
    rng = random.Random(seed)
    assert [ev for events in pure[0] for ev in events] == [
        ev for _ in range(40) for ev in _events(rng, rng.randrange(0, 6))
    ]


def test_a_symbol_repeated_in_the_results_decodes_to_one_string():
    compiled = _compiled_wire()
    events = [Trade(i, "BTCUSDT", 5, 6, Side.BUY, 1, 2, 3, 4, 5, 6) for i in range(3)]
    events.append(OrderCancelled(9, 1, "BTCUSDT", 4, StopReason.USER))

    decoded, _ = compiled.decode_events(pure_wire.encode_events(events))

    assert decoded == events
    assert len({id(ev.symbol) for ev in decoded}) == 1


def test_both_builds_refuse_every_truncation_alike():
    compiled = _compiled_wire()
    data = _results(random.Random(99), 8)
    for cut in range(len(data)):
        short = data[:cut]
        assert _decode_all(compiled, short, 8) == _decode_all(pure_wire, short, 8), cut


@pytest.mark.parametrize("seed", range(4))
def test_both_builds_agree_on_overwritten_bytes(seed):
    compiled = _compiled_wire()
    rng = random.Random(seed)
    data = _results(rng, 4)
    refused = 0
    for at in range(len(data)):
        for value in (0x00, 0x03, 0x07, 0x09, 0x80, 0xFF, rng.randrange(256)):
            bad = data[:at] + bytes((value,)) + data[at + 1 :]
            pure = _decode_all(pure_wire, bad, 4)
            assert _decode_all(compiled, bad, 4) == pure, (at, value)
            refused += pure is CodecError
    assert refused > 0  # the mutations did reach the decoders' refusals


def test_an_offset_outside_the_buffer_is_refused_by_both_builds():
    compiled = _compiled_wire()
    data = pure_wire.encode_events([OrderCancelled(9, 1, "BTCUSDT", 4, StopReason.USER)])
    for at in (len(data) - 1, len(data), len(data) + 1, 10**6):
        with pytest.raises(CodecError):
            pure_wire.decode_events(data, at)
        with pytest.raises(CodecError):
            compiled.decode_events(data, at)
    for at in (-1, -len(data), -(10**6)):  # the compiled view's indexes are unchecked: it refuses these itself
        with pytest.raises(CodecError):
            compiled.decode_events(data, at)
    with pytest.raises(TypeError):
        compiled.decode_events(None)
