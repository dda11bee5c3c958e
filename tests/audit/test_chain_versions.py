"""Chain versions (dex/ledger/codec.py, "Chain versions"): a chain keeps its
first block's header version, and the state hash of that version. Version-1
chains, begun before version 2 existed, still build to the very same bytes,
replay and audit; new chains are version 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from dex.audit import audit, state_at
from dex.auth import Keypair
from dex.ledger.chain import Chain
from dex.ledger.codec import HEADER_VERSION, GENESIS_PARENT, decode_proposal
from dex.ledger.replay import ReplayGuard
from dex.ledger.state import apply_proposal
from dex.engine import Engine
from tests.audit import chainkit
from tests.audit.chainkit import Builder, markets

BUYER = Keypair.from_private(bytes([1]) * 32)
SELLER = Keypair.from_private(bytes([2]) * 32)

# The scenario's head, as dex built it before version 2 (e77b235): a
# version-1 chain must keep hashing to exactly this.
V1_HEAD = "91d9eba007e13134297e6e7116b5b5865e6af7e01da68449437809c1942abddd"
V1_STATE = "ebecb5fbfa49f0dd5135caf1bb6644fa14a7f0211527fb024343116c250f8d95"
# Version 2's, as both engines computed it when it was introduced.
V2_HEAD = "e51ffc47c2c983e8d846e4bc2ac0d276f2f659f49571752188a56b9f3fabcfc5"
V2_STATE = "0cb8747c466b6949c890d69349c77e2bfdf90d14f747c804d032464ccb5324ff"


def _scenario(path: Path, chain_version: int) -> Builder:
    """Deposits, resting orders on three levels, a partial fill, a cancel, an
    amend, a sweep."""
    b = Builder(path, chain_version=chain_version)
    b.block(b.deposit(BUYER, "USDT", "100000"), b.deposit(SELLER, "BTC", "1"))
    b.block(b.order(BUYER, "BTCUSDT", "BUY", "49000.00", "0.01000"), b.order(BUYER, "BTCUSDT", "BUY", "49000.00", "0.01000"),
            b.order(BUYER, "BTCUSDT", "BUY", "48000.00", "0.01000"), b.order(SELLER, "BTCUSDT", "SELL", "51000.00", "0.02000"))
    b.block(b.order(SELLER, "BTCUSDT", "SELL", "49000.00", "0.00500"))
    b.block(b.cancel(BUYER, "BTCUSDT", 3), b.amend(SELLER, "BTCUSDT", 4, "52000.00"))
    b.block(b.order(BUYER, "BTCUSDT", "BUY", "52000.00", "0.03000"))
    b.close()
    return b


@pytest.mark.parametrize(("version", "head", "state"), [(1, V1_HEAD, V1_STATE), (2, V2_HEAD, V2_STATE)])
def test_each_version_builds_its_pinned_chain_and_audits(tmp_path: Path, engine_impl, monkeypatch, version, head, state) -> None:
    monkeypatch.setattr(chainkit, "Engine", engine_impl.Engine)  # the chain built by each engine
    path = tmp_path / "blocks.dat"
    b = _scenario(path, version)

    assert type(b.engine) is engine_impl.Engine
    assert (b.parent_hash.hex(), b.parent.state_hash.hex(), b.parent.height) == (head, state, 5)
    with Chain(path, read_only=True) as chain:
        assert [block.header.version for block in chain.blocks(1, chain.height + 1)] == [version] * 5
    report, engine = audit(path, markets())
    assert report.ok, report.problems
    assert report.chain_version == version and report.as_json()["chainVersion"] == version
    assert engine.state_hash(version) == state
    assert state_at(engine, markets(), version=report.chain_version)["stateHash"] == state


def test_new_chains_are_version_2() -> None:
    assert HEADER_VERSION == 2
    b = Builder.__init__.__kwdefaults__["chain_version"]
    assert b == 2


def test_only_the_first_block_names_the_chain_version(tmp_path: Path) -> None:
    """A version-1 chain extended by proposals that name version 2 (what this
    build's leader proposes) stays version 1, block after block."""
    path = tmp_path / "v1.dat"
    _scenario(path, 1)
    engine, guard, parent, parent_hash = Engine(markets()), ReplayGuard(), None, GENESIS_PARENT
    with Chain(path, read_only=True) as chain:
        blocks = list(chain.blocks(1, chain.height + 1))
    other = tmp_path / "v2.dat"
    v2 = _scenario(other, 2)
    with Chain(other, read_only=True) as chain:
        v2_proposals = [block.proposal for block in chain.blocks(1, chain.height + 1)]
    for block in blocks:
        proposal, leaves = decode_proposal(block.proposal)
        assert proposal.chain_version == 1
        parent, _, _ = apply_proposal(engine, guard, parent, parent_hash, proposal, leaves)
        assert parent == block.header
        parent_hash = parent.hash
    # The version-2 scenario's last proposal, applied on top of the version-1 chain.
    proposal, leaves = decode_proposal(v2_proposals[-1])
    assert proposal.chain_version == 2
    header, _, _ = apply_proposal(engine, ReplayGuard(), parent, parent_hash, proposal, leaves)
    assert header.version == 1 and header.encode()[0] == 1
    assert header.state_hash.hex() == engine.state_hash(1)
    assert v2.parent.version == 2
