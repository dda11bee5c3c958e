"""AsyncClient over a real four-node cluster: place, query, cancel; and
failover when the node it talks to is SIGKILLed with requests in flight,
with no order placed twice (retries carry the same client order id)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from dex.auth import Keypair
from dex.client import AsyncClient, Client, DexError
from tests.cluster.harness import Cluster

ORDERS = 60
CONCURRENCY = 6
KILL_AFTER_ACKS = 10
PRICE_BASE = 40_000


def test_async_client_places_queries_and_cancels(cluster: Cluster) -> None:
    async def main() -> None:
        async with AsyncClient(cluster.urls, Keypair.generate()) as c:
            await c.deposit("USDT", "100000")
            a = await c.place_order("BTCUSDT", "BUY", price="40000.00", quantity="0.010", client_order_id="async-a")
            b = await c.place_order("BTCUSDT", "BUY", price="40001.00", quantity="0.020")
            assert a["status"] == "NEW" and a["clientOrderId"] == "async-a"
            assert {o["orderId"] for o in await c.open_orders("BTCUSDT")} == {a["orderId"], b["orderId"]}

            again = await c.place_order("BTCUSDT", "BUY", price="40000.00", quantity="0.010", client_order_id="async-a")
            assert again["orderId"] == a["orderId"] and again.get("duplicate") is True

            assert (await c.cancel_order("BTCUSDT", order_id=a["orderId"]))["status"] == "CANCELED"
            assert (await c.cancel_order("BTCUSDT", client_order_id=b["clientOrderId"]))["status"] == "CANCELED"
            assert await c.open_orders("BTCUSDT") == []
            with pytest.raises(DexError) as info:
                await c.cancel_order("BTCUSDT", order_id=a["orderId"])
            assert info.value.code in (-2011, -2013) and info.value.status in (400, 404)
            with pytest.raises(DexError) as info:
                await c.place_order("BTCUSDT", "BUY", price="40000.001", quantity="0.010")
            assert info.value.code == -1013

    asyncio.run(main())


def test_async_client_fails_over_when_its_node_is_killed_and_places_nothing_twice(cluster: Cluster) -> None:
    first = cluster.wait_leader()  # the worst node to lose: its requests fail and an election follows
    urls = [cluster.url(first)] + [cluster.url(n) for n in cluster.ids if n != first]
    keys = Keypair.generate()
    acked: dict[str, int] = {}

    async def main() -> None:
        async with AsyncClient(urls, keys) as c:
            await c.deposit("USDT", "10000000")
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(ORDERS):
                queue.put_nowait(i)
            killed = asyncio.Event()

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    cid = f"fo-{i:03d}"
                    r = await c.place_order("BTCUSDT", "BUY", price=f"{PRICE_BASE + i}.00", quantity="0.001", client_order_id=cid)
                    assert r["clientOrderId"] == cid, r
                    acked[cid] = r["orderId"]
                    if len(acked) == KILL_AFTER_ACKS and not killed.is_set():
                        killed.set()
                        await asyncio.to_thread(cluster.kill, first)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            assert killed.is_set()
            assert c.url != cluster.url(first), "the client still points at the killed node"
            open_ids = sorted(o["orderId"] for o in await c.open_orders("BTCUSDT"))
            assert open_ids == sorted(acked.values())

    asyncio.run(main())

    assert len(acked) == ORDERS and len(set(acked.values())) == ORDERS
    survivors = [n for n in cluster.ids if n != first]
    head = cluster.wait_converged(survivors)
    placed = Counter(a.client_order_id for a in cluster.accepted_orders(survivors[0], head.height) if a.client_order_id.startswith("fo-"))
    assert placed == Counter({cid: 1 for cid in acked}), f"placed twice: {[c for c, k in placed.items() if k > 1]}"
    with Client(cluster.url(survivors[0]), keys) as c:
        assert len(c.open_orders("BTCUSDT")) == ORDERS
