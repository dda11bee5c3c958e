"""A cluster whose nodes run different engine implementations agrees.

Two nodes run the compiled engine and two the pure one (restarted with
DEX_PURE_PYTHON=1, docs/ENGINE.md "Two implementations"); orders sent
through every node commit, and every node ends on the same chain, headers
(state hashes included) equal. The restarted nodes rebuild their state
with the pure engine from the others' blocks or snapshots on the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dex.engine
from cluster import local
from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster

ROUNDS = 10  # x 4 nodes x 2 orders = 80 orders
PRICE = "50000"
QUANTITY = "0.001"


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_two_compiled_and_two_pure_nodes_reach_the_same_chain(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    ids = cluster.ids
    pure_ids = ids[2:]
    monkeypatch.delenv(dex.engine.PURE_ENV, raising=False)
    for n in ids[:2]:
        assert _environment(local.node_pid(cluster.cfg, n)).get(dex.engine.PURE_ENV) != "1"
    monkeypatch.setenv(dex.engine.PURE_ENV, "1")  # the nodes started now inherit it
    for n in pure_ids:
        cluster.kill(n)
        cluster.start(n)
        assert _environment(local.node_pid(cluster.cfg, n))[dex.engine.PURE_ENV] == "1"
    monkeypatch.delenv(dex.engine.PURE_ENV)
    cluster.wait_leader()
    status = cluster.get_json(ids[0], "/api/v1/cluster/status")
    assert {n["id"]: n.get("engine") for n in status["nodes"]} == {ids[0]: "compiled", ids[1]: "compiled", ids[2]: "pure", ids[3]: "pure"}

    sellers = {n: Client(cluster.url(n), Keypair.generate()) for n in ids}
    buyers = {n: Client(cluster.url(n), Keypair.generate()) for n in ids}
    try:
        for n in ids:
            sellers[n].deposit("BTC", "10")
            buyers[n].deposit("USDT", "1000000")
        height_max = 0
        for round_ in range(ROUNDS):
            for i, n in enumerate(ids):
                other = ids[(i + 1) % len(ids)]
                sell = sellers[n].place_order("BTCUSDT", "SELL", price=PRICE, quantity=QUANTITY, client_order_id=f"s-{n}-{round_}")
                buy = buyers[other].place_order("BTCUSDT", "BUY", price=PRICE, quantity=QUANTITY, client_order_id=f"b-{other}-{round_}")
                assert buy["status"] == "FILLED" and buy["fills"], buy
                height_max = max(height_max, sell["blockHeight"], buy["blockHeight"])

        head = cluster.wait_converged(ids, height_min=height_max)

        reference = cluster.headers(ids[0], head.height)
        for n in ids[1:]:
            assert cluster.headers(n, head.height) == reference, f"{n}'s chain differs from {ids[0]}'s"
    finally:
        for c in [*sellers.values(), *buyers.values()]:
            c.close()
