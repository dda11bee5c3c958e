"""A command's events through the ledger codec: encode_events writes the bytes
the results root is computed over, decode_events reads them back (the API
reads a block's results from the chain this way).

The bytes are part of the chain format: the digest pinned below is of what
the encoder wrote before it was rewritten to unpack events and cache names
(f41806b); a change there changes every block's results root.
"""

from __future__ import annotations

import hashlib

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
from dex.ledger import codec
from dex.ledger.codec import CodecError, decode_events, encode_events

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


def test_every_event_round_trips():
    data = encode_events(EVENTS)

    decoded, end = decode_events(data)

    assert decoded == EVENTS and [e.__class__ for e in decoded] == [e.__class__ for e in EVENTS]
    assert end == len(data)


def test_the_encoding_is_the_one_the_chain_was_written_with():
    assert hashlib.sha256(encode_events(EVENTS)).hexdigest() == PINNED_SHA256


@pytest.mark.parametrize("symbol", ["BTCUSDT\u00e9", "", "S" * 256])
def test_a_name_the_codec_cannot_store_is_a_codec_error_and_is_not_cached(symbol):
    with pytest.raises(CodecError):
        encode_events([OrderCancelled(1, 2, symbol, 3, StopReason.USER)])
    assert symbol not in codec._NAMES


def test_the_name_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(codec, "_NAMES", {})
    for i in range(codec._NAMES_MAX * 2 + 1):
        encode_events([BalanceChanged(1, f"A{i}", 1, 1)])
        assert len(codec._NAMES) <= codec._NAMES_MAX
    assert decode_events(encode_events([BalanceChanged(1, "A0", 1, 1)]))[0] == [BalanceChanged(1, "A0", 1, 1)]
