"""The Merkle roots in every block header (dex.ledger.codec.merkle_root): the
definition, written out here independently, for every leaf count up to 40, and
one root pinned as the chain has always computed it."""

from __future__ import annotations

import hashlib

import pytest

from dex.ledger.codec import merkle_root


def _by_the_definition(leaves: list[bytes]) -> bytes:
    """SHA-256(0x00 + leaf) per leaf; SHA-256(0x01 + left + right) per node,
    an odd level's last node paired with itself; no leaves: 32 zero bytes."""
    if not leaves:
        return bytes(32)
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        if len(level) % 2:
            level = level + [level[-1]]
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.parametrize("count", range(41))
def test_the_root_is_the_definitions(count):
    leaves = [bytes([i % 256]) * (i * 7 % 300) for i in range(count)]

    assert merkle_root(leaves) == _by_the_definition(leaves)


def test_the_root_is_the_one_the_chain_was_written_with():
    # As the implementation before the one with prefixed hash copies computed it.
    assert merkle_root([bytes([i]) * i for i in range(7)]).hex() == "9db7679b94e310094f42678ae7dd3e23517f27d29846ca06467cec427f686797"


def test_the_leaves_are_not_changed():
    leaves = [b"a", b"b", b"c"]
    merkle_root(leaves)
    assert leaves == [b"a", b"b", b"c"]
