"""A node that was down catches up: from its own data, or from nothing.

A restarted node replays its Raft journal onto its stored chain, then takes
what it missed from the leader. A node whose data directory is gone starts
from genesis and rebuilds the whole chain from the leader's log. Either way
it must end on the same head hash and state hash as the others.
"""

from __future__ import annotations

from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster

ORDERS_WHILE_DOWN = 60
ORDERS_BEFORE = 30


def place_orders(cluster: Cluster, urls: list[str], count: int, tag: str) -> int:
    """Place `count` crossing orders through `urls` (in turn); return the highest block height."""
    seller, buyer = Keypair.generate(), Keypair.generate()
    clients = [(Client(u, seller), Client(u, buyer)) for u in urls]
    try:
        clients[0][0].deposit("BTC", "10")
        clients[-1][1].deposit("USDT", "1000000")
        height = 0
        for k in range(count):
            s, b = clients[k % len(clients)]
            side, c = ("SELL", s) if k % 2 == 0 else ("BUY", b)
            r = c.place_order("BTCUSDT", side, price="50000", quantity="0.001", client_order_id=f"{tag}-{k}")
            height = max(height, r["blockHeight"])
        return height
    finally:
        for s, b in clients:
            s.close()
            b.close()


def test_killed_follower_restarted_on_its_data_catches_up(cluster: Cluster) -> None:
    first = place_orders(cluster, cluster.urls, ORDERS_BEFORE, "before")
    leader = cluster.wait_leader()
    victim = next(n for n in cluster.ids if n != leader)
    cluster.wait_converged(cluster.ids, height_min=first)
    cluster.kill(victim)
    live = [n for n in cluster.ids if n != victim]

    last = place_orders(cluster, [cluster.url(n) for n in live], ORDERS_WHILE_DOWN, "down")
    head = cluster.wait_converged(live, height_min=last)
    assert cluster.head(leader) == head
    stale = cluster.head(victim)
    assert stale is None  # it is down

    cluster.start(victim)

    assert cluster.wait_converged(cluster.ids, height_min=head.height) == head
    assert cluster.headers(victim, head.height) == cluster.headers(leader, head.height)


def test_node_with_its_data_deleted_rebuilds_the_same_chain_and_state(cluster: Cluster) -> None:
    first = place_orders(cluster, cluster.urls, ORDERS_BEFORE, "before")
    leader = cluster.wait_leader()
    victim = next(n for n in cluster.ids if n != leader)
    cluster.wait_converged(cluster.ids, height_min=first)
    cluster.kill(victim)
    cluster.wipe(victim)
    live = [n for n in cluster.ids if n != victim]
    last = place_orders(cluster, [cluster.url(n) for n in live], ORDERS_WHILE_DOWN // 2, "wiped")
    head = cluster.wait_converged(live, height_min=last)

    cluster.start(victim)

    assert cluster.wait_converged(cluster.ids, height_min=head.height) == head
    assert cluster.headers(victim, head.height) == cluster.headers(leader, head.height)
    # It serves what it rebuilt: the whole chain, and the orders in it.
    accepted = cluster.accepted_orders(victim, head.height)
    assert len(accepted) == ORDERS_BEFORE + ORDERS_WHILE_DOWN // 2
    assert len({a.client_order_id for a in accepted}) == len(accepted)
