"""Proposals through the codec: plain and deflated forms, and their bounds."""

from __future__ import annotations

import json
import zlib

import pytest

from dex.core.commands import CancelOrder, Deposit, PlaceOrder
from dex.core.types import Side
from dex.ledger.codec import (
    NO_AUTH,
    PROPOSAL_COMPRESS_MIN_BYTES,
    PROPOSAL_INFLATED_BYTES_MAX,
    PROPOSAL_VERSION,
    PROPOSAL_VERSION_ZLIB,
    Auth,
    BlockHeader,
    CodecError,
    assemble_proposal,
    compress_proposal,
    decode_header,
    decode_proposal,
    encode_command,
)


def _batch_proposal(orders: int) -> bytes:
    """A block like a POST /batchOrders makes: one signed JSON body, many orders."""
    body = json.dumps({"batchOrders": [
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": f"{50000 + i}.00",
         "quantity": "0.00100", "newClientOrderId": f"c-{i}", "newOrderRespType": "ACK"}
        for i in range(orders)
    ]}).encode()
    auth = Auth(public_key=bytes(range(32)), timestamp_ms=1_700_000_000_000, signature=bytes(64), payload=body)
    commands = [
        (0, encode_command(PlaceOrder(account=7, symbol="BTCUSDT", side=Side.BUY, price=5_000_000 + i, qty=100, client_order_id=f"c-{i}")))
        for i in range(orders)
    ]
    return assemble_proposal(leader="n1", term=3, time_ms=1_700_000_000_123, auths=[auth], commands=commands)


def test_a_batch_deflates_and_decodes_to_the_same_proposal_and_leaves() -> None:
    raw = _batch_proposal(100)
    packed = compress_proposal(raw)
    assert packed[0] == PROPOSAL_VERSION_ZLIB
    assert len(packed) * 4 < len(raw), (len(packed), len(raw))
    assert decode_proposal(packed) == decode_proposal(raw)


def test_small_proposals_travel_as_they_are() -> None:
    raw = assemble_proposal(leader="n1", term=1, time_ms=1, auths=[], commands=[(NO_AUTH, encode_command(Deposit(account=1, asset="USDT", amount=5)))])
    assert len(raw) < PROPOSAL_COMPRESS_MIN_BYTES
    assert compress_proposal(raw) == raw and raw[0] == PROPOSAL_VERSION


def test_a_block_of_single_signed_orders_travels_as_it_is() -> None:
    # What a busy cluster seals from single-order requests: every order its
    # own signature over its own query string. Deflating it halves it at
    # best, for more CPU than the bytes cost to carry (codec.py).
    auths, commands = [], []
    for i in range(16):
        query = f"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&price=50000.{i:02d}&quantity=0.001&newClientOrderId=c-{i}&timestamp=1700000000{i:03d}"
        auths.append(Auth(public_key=bytes([i]) * 32, timestamp_ms=1_700_000_000_000 + i, signature=bytes([i]) * 64, payload=b"POST /api/v1/order?" + query.encode()))
        commands.append((i, encode_command(PlaceOrder(account=7 + i, symbol="BTCUSDT", side=Side.BUY, price=5_000_000 + i, qty=100, client_order_id=f"c-{i}"))))
    raw = assemble_proposal(leader="n1", term=3, time_ms=1_700_000_000_123, auths=auths, commands=commands)
    assert 1024 < len(raw) < PROPOSAL_COMPRESS_MIN_BYTES
    assert compress_proposal(raw) == raw


def test_a_deflated_proposal_may_not_inflate_past_its_bound() -> None:
    bomb = bytes((PROPOSAL_VERSION_ZLIB,)) + zlib.compress(bytes(PROPOSAL_INFLATED_BYTES_MAX + 1))
    with pytest.raises(CodecError, match="inflates past"):
        decode_proposal(bomb)


@pytest.mark.parametrize("tamper", ["cut", "trailing", "garbage"])
def test_damaged_deflated_proposals_are_codec_errors(tamper: str) -> None:
    packed = compress_proposal(_batch_proposal(50))
    damaged = {
        "cut": packed[:-7],
        "trailing": packed + b"\x00\x01",
        "garbage": packed[:1] + b"\xff" * (len(packed) - 1),
    }[tamper]
    with pytest.raises(CodecError):
        decode_proposal(damaged)


@pytest.mark.parametrize("cid", ["ordré", "東京", "x" * 256])
def test_a_string_the_codec_cannot_store_is_a_codec_error(cid: str) -> None:
    """Not a UnicodeEncodeError: the node turns a CodecError into a 400, never a 500."""
    with pytest.raises(CodecError):
        encode_command(PlaceOrder(account=7, symbol="BTCUSDT", side=Side.BUY, price=1, qty=1, client_order_id=cid))


@pytest.mark.parametrize("field", ["price", "qty", "quote_qty", "account"])
def test_a_number_outside_its_field_is_a_codec_error(field: str) -> None:
    fields = {"account": 7, "symbol": "BTCUSDT", "side": Side.BUY, "price": 1, "qty": 1, field: 2**64}
    with pytest.raises(CodecError):
        encode_command(PlaceOrder(**fields))


def test_commands_equal_only_their_own_class() -> None:
    """Commands are NamedTuples (dex/core/commands.py); a plain tuple's
    equality would make commands of different kinds with the same values
    equal, and a decoded block could then compare equal to another."""
    cancel = CancelOrder(account=1, symbol="BTCUSDT", order_id=5)
    deposit = Deposit(account=1, asset="BTCUSDT", amount=5)
    assert tuple(cancel) == tuple(deposit)
    assert cancel != deposit and not cancel == deposit
    assert cancel == CancelOrder(account=1, symbol="BTCUSDT", order_id=5) and not cancel != CancelOrder(account=1, symbol="BTCUSDT", order_id=5)
    assert hash(cancel) == hash(CancelOrder(account=1, symbol="BTCUSDT", order_id=5))
    assert cancel != (1, "BTCUSDT", 5, None)


@pytest.mark.parametrize(("chain_version", "plain", "deflated"), [(1, 1, 2), (2, PROPOSAL_VERSION, PROPOSAL_VERSION_ZLIB)])
def test_a_proposal_names_the_chain_version_it_would_begin_in_either_form(chain_version, plain, deflated) -> None:
    """Versions 1 and 2 begin a version-1 chain, 3 and 4 a version-2 chain
    (codec.py, "Chain versions"); the layout after the byte is the same."""
    body = json.dumps({"batchOrders": [{"price": f"{50000 + i}.00"} for i in range(800)]}).encode()
    auth = Auth(public_key=bytes(32), timestamp_ms=1, signature=bytes(64), payload=body)
    commands = [(0, encode_command(Deposit(account=1, asset="USDT", amount=5)))]
    raw = assemble_proposal(leader="n1", term=1, time_ms=1, auths=[auth], commands=commands, chain_version=chain_version)
    packed = compress_proposal(raw)
    assert (raw[0], packed[0]) == (plain, deflated)
    assert decode_proposal(raw) == decode_proposal(packed)
    assert decode_proposal(raw)[0].chain_version == chain_version
    assert raw[1:] == assemble_proposal(leader="n1", term=1, time_ms=1, auths=[auth], commands=commands, chain_version=3 - chain_version)[1:]


@pytest.mark.parametrize("version", [0, 5, 255])
def test_an_unknown_proposal_version_is_a_codec_error(version: int) -> None:
    raw = assemble_proposal(leader="n1", term=1, time_ms=1, auths=[], commands=[])
    with pytest.raises(CodecError, match=f"proposal version {version}"):
        decode_proposal(bytes((version,)) + raw[1:])
    with pytest.raises(CodecError, match="chain version"):
        assemble_proposal(leader="n1", term=1, time_ms=1, auths=[], commands=[], chain_version=3)


@pytest.mark.parametrize("version", [1, 2])
def test_a_header_round_trips_with_its_version_and_hashes_it(version: int) -> None:
    header = BlockHeader(height=3, parent=bytes(range(32)), leader="n2", term=4, time_ms=5, commands_count=6,
                         commands_root=bytes([7]) * 32, results_root=bytes([8]) * 32, state_hash=bytes([9]) * 32, version=version)
    raw = header.encode()
    assert raw[0] == version
    assert decode_header(raw) == (header, len(raw))
    other = BlockHeader(**{**{k: getattr(header, k) for k in header.__slots__}, "version": 3 - version})
    assert other.hash != header.hash  # the version is hashed: a block's hash names its chain's version
    with pytest.raises(CodecError, match="header version 3"):
        decode_header(bytes((3,)) + raw[1:])


def test_proposals_deflated_by_the_standard_zlib_still_decode() -> None:
    """Earlier builds deflated proposals with the standard library's zlib (the
    chains on disk hold them); this one with ISA-L. Either reads the other's."""
    raw = _batch_proposal(100)
    by_stdlib = bytes((raw[0] + 1,)) + zlib.compress(raw[1:], 1)
    ours = compress_proposal(raw)
    assert by_stdlib != ours and ours[0] == by_stdlib[0] == PROPOSAL_VERSION_ZLIB
    assert decode_proposal(by_stdlib) == decode_proposal(ours) == decode_proposal(raw)
    assert zlib.decompress(ours[1:]) == raw[1:]
