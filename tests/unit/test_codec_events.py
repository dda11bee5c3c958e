"""A command's events through the ledger codec: encode_events writes the bytes
the results root is computed over, decode_events reads them back (the API
reads a block's results from the chain this way).

The bytes are part of the chain format: the digest pinned below is of what
the encoder wrote before it was rewritten to unpack events and cache names
(f41806b); a change there changes every block's results root.

The encoder is dex/engine/wire.py's, in both builds: compiled, the common
events (accepted, trade, cancelled, expired, balance) are written with C
stores; every test here runs against each build's encode_events.
"""

from __future__ import annotations

import hashlib
import struct
from decimal import Decimal

import pytest

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
from dex.ledger import codec
from dex.ledger.codec import CodecError, decode_events
from tests import engines


@pytest.fixture(params=engines.NAMES)
def wire(request):
    """dex/engine/wire.py of each build (the compiled one skipped where it is not built)."""
    if request.param == "pure":
        return pure_wire
    engines.module("compiled")  # skips the test if the compiled engine is not built
    from dex.engine._compiled import wire as compiled_wire

    return compiled_wire

U64 = 2**64 - 1
EVENTS = [
    OrderAccepted(7, U64, "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 5_000_000, 37, 0, "c-1"),
    OrderAccepted(8, 3, "ETHUSDT", Side.SELL, OrderType.MARKET, TimeInForce.IOC, 0, 0, 10**18, None),
    Trade(2**63, "BTCUSDT", 5_000_000, 37, Side.SELL, 7, 9, U64, 4, 12, 2**62),
    OrderRejected(5, "NOPE", "x" * 36, 0, Reason.UNKNOWN_SYMBOL),
    OrderRejected(5, None, None, 11, Reason.UNKNOWN_ORDER),
    OrderDuplicate(7, U64, "BTCUSDT", "c-1", OrderStatus.PARTIALLY_FILLED, 3, 37),
    OrderCancelled(7, U64, "BTCUSDT", 34, StopReason.USER),
    OrderExpired(9, 4, "BTCUSDT", 1, StopReason.SELF_TRADE),
    OrderAmended(7, U64, "BTCUSDT", 4_999_999, 30, True),
    BalanceChanged(U64, "USDT", -(2**63), U64),
]
# sha256 of encode_events(EVENTS) as the encoder before f41806b wrote it.
PINNED_SHA256 = "0c075edfcb539e446101d8d1a29aac186bbe26122b6752dd9fe7e565373b20fc"


def test_the_codec_encodes_with_the_engine_that_runs():
    import dex.engine

    assert codec.encode_events is dex.engine.wire_module.encode_events


def test_every_event_round_trips(wire):
    data = wire.encode_events(EVENTS)

    decoded, end = decode_events(data)

    assert decoded == EVENTS and [e.__class__ for e in decoded] == [e.__class__ for e in EVENTS]
    assert end == len(data)


def test_the_encoding_is_the_one_the_chain_was_written_with(wire):
    assert hashlib.sha256(wire.encode_events(EVENTS)).hexdigest() == PINNED_SHA256


COMMON = [e for e in EVENTS if e.__class__ in (OrderAccepted, Trade, OrderCancelled, OrderExpired, BalanceChanged)]


def test_the_common_events_encode_to_the_same_bytes_in_both_builds(wire):
    # A list of only these takes the compiled build's C writer.
    for events in ([], COMMON, COMMON * 3, [COMMON[0]], [COMMON[-1]], [BalanceChanged(0, "USDT", -1, 0)]):
        assert wire.encode_events(events) == pure_wire.encode_events(events)
        assert wire.encode_events(tuple(events)) == pure_wire.encode_events(events)  # any sequence
        assert decode_events(wire.encode_events(events))[0] == events


def test_a_list_longer_than_the_c_buffer_encodes_the_same(wire):
    events = [Trade(i, "BTCUSDT", 5, 6, Side.BUY, 1, 2, 3, 4, 5, 6) for i in range(100)]  # past 16 KiB of worst case

    assert wire.encode_events(events) == pure_wire.encode_events(events)


@pytest.mark.parametrize("event", [
    OrderAccepted(-1, 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 1, 1, 0, None),
    OrderAccepted(1, 2**64, "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 1, 1, 0, None),
    OrderCancelled(1, 2, "BTCUSDT", 3, 256),
    Trade(1, "BTCUSDT", 5, 6, 300, 1, 2, 3, 4, 5, 6),
    BalanceChanged(1, "USDT", 2**63, 0),
    BalanceChanged(1, "USDT", -(2**63) - 1, 0),
])
def test_a_field_outside_its_width_is_refused_by_both_builds(wire, event):
    with pytest.raises((CodecError, OverflowError, struct.error)):
        wire.encode_events([event])


@pytest.mark.parametrize("symbol", ["BTCUSDT\u00e9", "", "S" * 256])
def test_a_name_the_codec_cannot_store_is_a_codec_error_and_is_not_cached(wire, symbol):
    with pytest.raises(CodecError):
        wire.encode_events([OrderCancelled(1, 2, symbol, 3, StopReason.USER)])
    assert symbol not in wire._NAMES


def test_the_name_cache_stays_bounded(wire, monkeypatch):
    monkeypatch.setattr(wire, "_NAMES", {})
    for i in range(wire._NAMES_MAX * 2 + 1):
        wire.encode_events([BalanceChanged(1, f"A{i}", 1, 1)])
        assert len(wire._NAMES) <= wire._NAMES_MAX
    assert decode_events(wire.encode_events([BalanceChanged(1, "A0", 1, 1)]))[0] == [BalanceChanged(1, "A0", 1, 1)]


@pytest.mark.parametrize("event", [
    Trade(1, "BTCUSDT", 5.9, 6, Side.BUY, 1, 2, 3, 4, 5, 6),  # C would take a float through __int__
    OrderCancelled(1, 2, "BTCUSDT", 3.0, StopReason.USER),
    BalanceChanged(1, "USDT", Decimal(5), 0),
])
def test_a_field_that_is_not_an_int_is_refused_by_both_builds(wire, event):
    with pytest.raises(struct.error):
        wire.encode_events([event])
