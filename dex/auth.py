"""Accounts are Ed25519 key pairs; requests are signed.

The account id is the first 63 bits of SHA-256(public key), so it fits the
ledger's u64 and a JSON client's parser when sent as a string. A request is
signed over `timestamp + METHOD + path + ("?" + query if query) + body`, all
as sent, and carries `X-API-KEY` (the public key, hex), `X-TIMESTAMP` (ms)
and `X-SIGNATURE` (base64). Keys and signatures are never logged.

Signing and checking go through libsodium (PyNaCl): its Ed25519 verify costs
about half of OpenSSL's through `cryptography` on this machine (docs/BENCHMARKS.md),
and every signed request pays one on the node that receives it. Ed25519
signatures are deterministic, so the bytes are the same whichever library
signs. libsodium is the stricter checker (it also refuses small-order keys and
R points, and non-canonical encodings); an honest signer's signature passes
both. `verify` is the only check: the API, the ceiling benchmark and `dex
audit` all call it, so they never disagree on an edge case.
"""

from __future__ import annotations

import base64
import hashlib
import os

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

RECV_WINDOW_MS_DEFAULT = 5_000
RECV_WINDOW_MS_MAX = 60_000


def account_id(public_key: bytes) -> int:
    assert len(public_key) == 32
    value = int.from_bytes(hashlib.sha256(public_key).digest()[:8], "big") >> 1
    return value or 1  # 0 is the fee account


def signed_payload(timestamp_ms: int | str, method: str, path: str, query: str, body: bytes) -> bytes:
    head = f"{timestamp_ms}{method.upper()}{path}{'?' + query if query else ''}".encode()
    return head + body


PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def verify(public_key: bytes, signature: bytes, payload: bytes) -> bool:
    """Whether `signature` is `public_key`'s Ed25519 signature of `payload`."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        # PyNaCl's binding takes signature || message, as bytes (bytes(b) is b itself).
        crypto_sign_open(bytes(signature) + bytes(payload), bytes(public_key))
    except BadSignatureError:
        return False
    return True


class Keypair:
    """An account's key pair. The private key never appears in repr or logs."""

    __slots__ = ("private", "public", "_secret")

    def __init__(self, private: bytes, public: bytes, secret: bytes) -> None:
        self.private = private  # 32-byte seed
        self.public = public
        self._secret = secret  # libsodium's 64-byte secret key (seed || public), expanded once

    @classmethod
    def generate(cls) -> Keypair:
        return cls.from_private(os.urandom(32))

    @classmethod
    def from_private(cls, seed: bytes) -> Keypair:
        if len(seed) != 32:
            raise ValueError("an Ed25519 private key is a 32-byte seed")
        public, secret = crypto_sign_seed_keypair(bytes(seed))
        return cls(bytes(seed), public, secret)

    @property
    def account(self) -> int:
        return account_id(self.public)

    @property
    def api_key(self) -> str:
        return self.public.hex()

    def sign(self, payload: bytes) -> bytes:
        return crypto_sign(payload, self._secret)[:SIGNATURE_BYTES]  # signature || message

    def headers(self, timestamp_ms: int, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
        signature = self.sign(signed_payload(timestamp_ms, method, path, query, body))
        return {
            "X-API-KEY": self.api_key,
            "X-TIMESTAMP": str(timestamp_ms),
            "X-SIGNATURE": base64.b64encode(signature).decode(),
        }

    def __repr__(self) -> str:  # never print the private key
        return f"Keypair(account={self.account})"
