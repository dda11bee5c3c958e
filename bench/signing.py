"""What one Ed25519 signature costs: dex.auth (libsodium, through PyNaCl) against
OpenSSL (through `cryptography`, which dex.auth used before), on an order's
signed payload, in one process so the ratio means something on a busy machine.

    python bench/signing.py [--rounds 3] [--calls 5000] [--json]

verify parses the public key on each call, as a node does for each request;
sign uses a key parsed once, as dex.client does. Each figure is the best of 3
repeats of --calls calls, in µs per call; the rounds alternate the libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey  # noqa: E402

from machine import describe  # noqa: E402 (bench/machine.py, beside this script)
from dex.auth import Keypair, signed_payload, verify  # noqa: E402

BODY = b'{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","timeInForce":"GTC","price":"105000.00","quantity":"0.001"}'


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    seed = os.urandom(32)
    ours = Keypair.from_private(seed)
    openssl = Ed25519PrivateKey.from_private_bytes(seed)
    payload = signed_payload(1_733_400_000_000, "POST", "/api/v1/order", "", BODY)
    signature = ours.sign(payload)
    assert signature == openssl.sign(payload)
    public = ours.public

    def openssl_verify() -> None:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, payload)

    def dex_verify() -> None:
        if not verify(public, signature, payload):
            raise AssertionError("dex.auth.verify refused a good signature")

    cases = {
        "verify_openssl_us": openssl_verify,
        "verify_dex_us": dex_verify,
        "sign_openssl_us": lambda: openssl.sign(payload),
        "sign_dex_us": lambda: ours.sign(payload),
    }
    rounds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            rounds[name].append(round(min(timeit.repeat(fn, number=args.calls, repeat=3)) / args.calls * 1e6, 1))
    result = {
        "machine": describe(),
        "payload_bytes": len(payload),
        **rounds,
        "verify_ratio": round(min(rounds["verify_openssl_us"]) / min(rounds["verify_dex_us"]), 2),
        "sign_ratio": round(min(rounds["sign_openssl_us"]) / min(rounds["sign_dex_us"]), 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"  {key:<20} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
