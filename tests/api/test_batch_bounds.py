"""A batch the API takes always fits a block; a request that could never fit
one (a cluster configured with small blocks) is a 413 that says why, never a
503 the client would retry forever."""

from __future__ import annotations

import pytest

from dex.auth import Keypair
from dex.client import Client, DexError
from tests.cluster.harness import Cluster

BATCH = 100


def widest_orders(n: int) -> list[dict]:
    """Orders with every field at its longest: the biggest body the API takes."""
    return [
        {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": f"{40000 + i}.00",
            "quantity": "0.00100", "newClientOrderId": f"{i:03d}-" + "x" * 32, "postOnly": False,
            "selfTradePreventionMode": "EXPIRE_TAKER", "newOrderRespType": "FULL",
        }
        for i in range(n)
    ]


def test_the_widest_batch_the_api_takes_fits_one_block_through_a_follower(cluster: Cluster) -> None:
    follower = next(n for n in cluster.ids if n != cluster.wait_leader())
    with Client(cluster.url(follower), Keypair.generate()) as c:
        c.deposit("USDT", "10000000")

        answers = c.batch_orders(widest_orders(BATCH))

    assert [a.get("status") for a in answers] == ["NEW"] * BATCH, answers[:2]
    assert len({a["blockHeight"] for a in answers}) == 1


@pytest.mark.cluster_settings(block_bytes_max=8192)
def test_a_request_bigger_than_a_block_is_a_413_not_a_retry(tuned_cluster: Cluster) -> None:
    with Client(tuned_cluster.urls, Keypair.generate()) as c:
        c.deposit("USDT", "10000000")

        with pytest.raises(DexError) as e:
            c.batch_orders(widest_orders(BATCH))

        assert (e.value.status, e.value.code) == (413, -9413)
        assert "bytes of block" in e.value.msg and "8192" in e.value.msg
        assert c.open_orders() == []
