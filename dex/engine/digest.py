"""The Merkle root over a block's commands and over its results.

    leaf  SHA-256(0x00 + leaf bytes)
    node  SHA-256(0x01 + left + right), the last node of an odd level paired
          with itself
    root  of no leaves: 32 zero bytes

`dex.ledger.codec.merkle_root` is this function, from the engine that runs
(`dex.engine.merkle_root`): compiled, a list of bytes is one C call into
OpenSSL's SHA-256 (dex/engine/dex_sha256.h) where setup.py found OpenSSL;
anything else (other bytes-like leaves, a build without OpenSSL) takes the
same hashlib code as the pure module.
"""

from __future__ import annotations

import hashlib

# This module compiled by Cython (its __file__ is then the extension's).
_COMPILED = not __file__.endswith(".py")
# Compiled with OpenSSL: DEX_C_SHA256 from dex_sha256.h (digest.pxd). The
# names guarded by it exist only in that build.
C_SHA256 = _COMPILED and _have_c_sha256()  # noqa: F821

_sha256 = hashlib.sha256


def sha256(data) -> bytes:
    """SHA-256(data), 32 bytes. Compiled with OpenSSL, bytes are hashed by one
    C call: hashlib's constructor fetches the algorithm from OpenSSL 3 on
    every call, about half of hashing a signed request's few hundred bytes."""
    if C_SHA256 and (type(data) is bytes or type(data) is bytearray):
        return _c_sha256(data)  # noqa: F821
    return _sha256(data).digest()


_LEAF_HASH = hashlib.sha256(b"\x00")  # a leaf's hash starts from a copy of these
_NODE_HASH = hashlib.sha256(b"\x01")


def merkle_root(leaves: list) -> bytes:
    """The binary Merkle root of `leaves` (a list of bytes-like objects)."""
    if not leaves:
        return bytes(32)
    if C_SHA256 and type(leaves) is list:
        root = bytearray(32)
        if _c_merkle_root(leaves, root) == 0:  # noqa: F821 (1: a leaf is not bytes; hashlib below takes any bytes-like one)
            return bytes(root)
    # Each hash from a copy of one already fed its prefix: no concatenated
    # input is built (a tenth less per leaf).
    level = []
    start = _LEAF_HASH.copy
    for leaf in leaves:
        h = start()
        h.update(leaf)
        level.append(h.digest())
    start = _NODE_HASH.copy
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        parents = []
        for i in range(0, len(level), 2):
            h = start()
            h.update(level[i])
            h.update(level[i + 1])
            parents.append(h.digest())
        level = parents
    return level[0]
