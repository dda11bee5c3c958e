"""The block explorer publishes enough of every header to recompute its hash:
a reader can check the chain it is shown without trusting the node, and the
header names its chain's version (docs/CLUSTER.md, "Chain versions")."""

from __future__ import annotations

from dex.auth import Keypair
from dex.client import Client
from dex.ledger.codec import HEADER_VERSION, BlockHeader
from tests.cluster.harness import Cluster


def _header(h: dict) -> BlockHeader:
    return BlockHeader(height=h["height"], parent=bytes.fromhex(h["parentHash"]), leader=h["leader"], term=h["term"],
                       time_ms=h["time"], commands_count=h["commandsCount"], commands_root=bytes.fromhex(h["commandsRoot"]),
                       results_root=bytes.fromhex(h["resultsRoot"]), state_hash=bytes.fromhex(h["stateHash"]), version=h["version"])


def test_published_headers_hash_to_their_block_hashes_and_chain(cluster: Cluster) -> None:
    c = Client(cluster.urls, Keypair.generate())
    c.deposit("USDT", "10000")
    c.place_order("BTCUSDT", "BUY", price="40000.00", quantity="0.01000")
    node = cluster.ids[-1]
    page = cluster.get_json(node, "/api/v1/blocks", limit=100)
    blocks = sorted(page["blocks"], key=lambda h: h["height"])
    assert len(blocks) >= 2
    for parent, h in zip([None, *blocks], blocks):
        assert h["version"] == HEADER_VERSION  # a chain this build began
        assert _header(h).hash.hex() == h["hash"]
        if parent is not None:
            assert h["parentHash"] == parent["hash"]
    one = cluster.get_json(cluster.ids[0], f"/api/v1/blocks/{blocks[-1]['height']}")["header"]
    assert _header(one).hash.hex() == one["hash"] == blocks[-1]["hash"]
