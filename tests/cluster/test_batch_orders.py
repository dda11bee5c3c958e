"""POST /api/v1/batchOrders: one signature, one block, in order."""

from __future__ import annotations

import pytest

from dex.auth import Keypair
from dex.client import Client, DexError
from tests.cluster.harness import Cluster

BATCH = 100


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    """One cluster for the module: every test trades with accounts of its own and only places bids."""
    return shared_cluster


def _orders(n: int, side: str = "BUY") -> list[dict]:
    return [{"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "price": f"{40000 + i}.00", "quantity": "0.001"} for i in range(n)]


def test_a_batch_sent_to_a_follower_lands_in_one_block_in_order(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.ids if n != leader)
    with Client(cluster.url(follower), Keypair.generate()) as c:
        c.deposit("USDT", "10000000")

        answers = c.batch_orders(_orders(BATCH))

        assert len(answers) == BATCH
        assert all(a.get("status") == "NEW" for a in answers), answers[:3]
        heights = {a["blockHeight"] for a in answers}
        assert len(heights) == 1, f"one batch spans blocks {sorted(heights)}"
        ids = [a["orderId"] for a in answers]
        assert ids == sorted(ids) and len(set(ids)) == BATCH, "orders not placed in the batch's order"
        assert [a["price"] for a in answers] == [o["price"] for o in _orders(BATCH)]
        assert cluster.head(follower).height >= heights.pop(), "the follower answered before applying the block"
        assert len(c.open_orders("BTCUSDT")) == BATCH


def test_one_bad_order_is_rejected_alone_and_the_rest_are_placed(cluster: Cluster) -> None:
    orders = _orders(3)
    orders[1]["price"] = "40001.001"  # not a whole number of ticks
    with Client(cluster.urls, Keypair.generate()) as c:
        c.deposit("USDT", "1000000")

        answers = c.batch_orders(orders)

        assert answers[1] == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
        assert answers[0]["status"] == "NEW" and answers[2]["status"] == "NEW"
        assert answers[0]["blockHeight"] == answers[2]["blockHeight"]


def test_a_batch_over_the_bound_is_refused_whole(cluster: Cluster) -> None:
    with Client(cluster.urls, Keypair.generate()) as c:
        c.deposit("USDT", "1000000")

        with pytest.raises(DexError) as e:
            c.batch_orders(_orders(BATCH + 1))

        assert e.value.status == 400 and e.value.code == -1102
        assert c.open_orders() == []


def test_retrying_a_batch_returns_the_original_orders(cluster: Cluster) -> None:
    with Client(cluster.urls, Keypair.generate()) as c:
        c.deposit("USDT", "1000000")
        orders = [{**o, "newClientOrderId": f"b-{i}"} for i, o in enumerate(_orders(5))]
        first = c.batch_orders(orders)

        again = c.batch_orders(orders)

        assert [a["orderId"] for a in again] == [a["orderId"] for a in first]
        assert all(a.get("duplicate") for a in again)
        assert len(c.open_orders("BTCUSDT")) == 5
