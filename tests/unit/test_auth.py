"""dex.auth: Ed25519 through libsodium, the same signatures as any RFC 8032 signer.

Signatures are deterministic, so a client that signs with another library
(OpenSSL through `cryptography` here, as a browser or a Go client would with
theirs) must produce the bytes `Keypair.sign` produces, and `verify` must take
them. What it refuses it refuses with False, never an exception.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dex.auth import Keypair, account_id, signed_payload, verify


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000, 70_000])
def test_signatures_are_openssls_bytes_and_verify_both_ways(size):
    seed = os.urandom(32)
    ours = Keypair.from_private(seed)
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    assert ours.public == theirs.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    payload = os.urandom(size)
    signature = ours.sign(payload)
    assert signature == theirs.sign(payload)
    assert verify(ours.public, signature, payload)
    theirs.public_key().verify(signature, payload)  # raises if OpenSSL disagrees


def test_a_known_answer_from_rfc8032():
    # RFC 8032, 7.1, TEST 2: one byte of message.
    seed = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    key = Keypair.from_private(seed)
    assert key.public.hex() == "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
    signature = key.sign(b"\x72")
    assert signature.hex() == (
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    )
    assert verify(key.public, signature, b"\x72")


def test_what_does_not_verify_is_false():
    key = Keypair.generate()
    payload = signed_payload(1_700_000_000_000, "post", "/api/v1/order", "", b'{"symbol":"BTCUSDT"}')
    signature = key.sign(payload)
    assert verify(key.public, signature, payload)
    assert not verify(key.public, signature, payload + b" ")
    assert not verify(key.public, signature, payload[:-1])
    assert not verify(Keypair.generate().public, signature, payload)
    flipped = bytearray(signature)
    flipped[10] ^= 1
    assert not verify(key.public, bytes(flipped), payload)
    # Wrong lengths, and keys that are no point or a small-order one.
    assert not verify(key.public[:31], signature, payload)
    assert not verify(key.public + b"\0", signature, payload)
    assert not verify(key.public, signature[:63], payload)
    assert not verify(key.public, signature + b"\0", payload)
    assert not verify(b"", b"", payload)
    assert not verify(b"\0" * 32, signature, payload)
    assert not verify(b"\x01" + b"\0" * 31, bytes(64), payload)  # the identity point, an all-zero signature
    assert not verify(b"\xff" * 32, signature, payload)


def test_any_bytes_like_input_is_checked_alike():
    key = Keypair.generate()
    payload = b"1700000000000GET/api/v1/openOrders"
    signature = key.sign(payload)
    for wrap in (bytes, bytearray, memoryview):
        assert verify(wrap(key.public), wrap(signature), wrap(payload))
        assert not verify(wrap(key.public), wrap(signature), wrap(payload + b"x"))


def test_a_non_canonical_s_is_refused():
    # S + L (the group order) is the same scalar mod L; RFC 8032 requires S < L.
    L = 2**252 + 27742317777372353535851937790883648493
    key = Keypair.generate()
    signature = key.sign(b"m")
    s = int.from_bytes(signature[32:], "little") + L
    assert s < 2**256
    assert not verify(key.public, signature[:32] + s.to_bytes(32, "little"), b"m")


def test_a_seed_must_be_32_bytes_and_the_keypair_never_prints_it():
    with pytest.raises(ValueError):
        Keypair.from_private(b"\0" * 31)
    key = Keypair.from_private(bytes(range(32)))
    assert key.account == account_id(key.public)
    assert bytes(range(32)).hex() not in repr(key) and "private" not in repr(key).lower()
