"""The client's local book, kept from a real node's depth stream, equals
GET /api/v1/depth at the same height: after a burst of orders from several
accounts through several nodes, after a forced gap in the stream (one diff
dropped inside the client), and after the keeper's node is SIGKILLed.

The burst is random (prices, sides, sizes, cancels); its seed is printed
and can be replayed with DEX_TEST_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import os
import random

from dex.auth import Keypair
from dex.client import AsyncClient, BookKeeper
from tests.cluster.harness import Cluster

SYMBOL = "BTCUSDT"
ACCOUNTS = 4
ORDERS_PER_ACCOUNT = 30
MID = 50_000
SPREAD_TICKS = 40  # prices within MID +- this many whole dollars
DEPTH_LIMIT = 1000  # the whole book: the burst makes far fewer levels
SYNC_TIMEOUT_S = 60.0
POLL_S = 0.05


def seed() -> int:
    value = int(os.environ.get("DEX_TEST_SEED", random.randrange(2**32)))
    print(f"burst seed: {value} (replay with DEX_TEST_SEED={value})")
    return value


async def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Poll `predicate` until true; fail naming `what` after timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def follow(keeper: BookKeeper, errors: list[BaseException]) -> None:
    try:
        async for book in keeper:
            book.check_invariants()
    except Exception as e:  # surfaced by the test, not lost in a task
        errors.append(e)


def rotated(urls: list[str], first: int) -> list[str]:
    return urls[first:] + urls[:first]


async def trader(client: AsyncClient, rng: random.Random, count: int) -> None:
    """Resting orders on both sides, crossing IOCs, cancels of its own orders."""
    mine: list[int] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.15 and mine:
            order_id = mine.pop(rng.randrange(len(mine)))
            try:
                await client.cancel_order(SYMBOL, order_id=order_id)
            except Exception:  # already filled by someone else: fine
                pass
            continue
        side = rng.choice(("BUY", "SELL"))
        offset = rng.randint(1, SPREAD_TICKS)
        price = MID - offset if side == "BUY" else MID + offset
        tif = "GTC"
        if roll > 0.85:  # a taker that crosses the spread
            price = MID + SPREAD_TICKS if side == "BUY" else MID - SPREAD_TICKS
            tif = "IOC"
        qty = f"0.00{rng.randint(1, 5)}"
        r = await client.place_order(SYMBOL, side, price=f"{price}.00", quantity=qty, time_in_force=tif, stp="EXPIRE_TAKER")
        if r.get("status") in ("NEW", "PARTIALLY_FILLED"):
            mine.append(r["orderId"])


async def burst(clients: list[AsyncClient], rng: random.Random) -> int:
    """Every client trades at once; then one last resting order. Its height."""
    seeds = [rng.randrange(2**32) for _ in clients]
    await asyncio.gather(*(trader(c, random.Random(s), ORDERS_PER_ACCOUNT) for c, s in zip(clients, seeds)))
    last = await clients[0].place_order(SYMBOL, "BUY", price=f"{MID - SPREAD_TICKS - 1}.00", quantity="0.001")
    assert last["status"] == "NEW", last
    return last["blockHeight"]


async def funded_clients(cluster: Cluster, count: int, skip: str | None = None) -> list[AsyncClient]:
    urls = [cluster.url(n) for n in cluster.ids if n != skip]
    clients = [AsyncClient(rotated(urls, i % len(urls)), Keypair.generate()) for i in range(count)]
    for c in clients:
        await c.deposit("BTC", "100")
        await c.deposit("USDT", "10000000")
    return clients


async def assert_book_is_depth(keeper: BookKeeper, height: int, errors: list) -> None:
    await wait_until(lambda: errors or keeper.book.last_update_id == height, SYNC_TIMEOUT_S, f"the local book to reach height {height}")
    assert not errors, errors
    async with AsyncClient(keeper.url) as c:
        depth = await c.depth(SYMBOL, DEPTH_LIMIT)
    assert depth["lastUpdateId"] == height, f"{keeper.url} is at {depth['lastUpdateId']}, the burst ended at {height}"
    assert keeper.book.bids() == depth["bids"]
    assert keeper.book.asks() == depth["asks"]
    assert depth["bids"] and depth["asks"], "the burst left an empty side: the comparison proves little"


def test_local_book_equals_depth_after_a_burst_and_after_a_forced_gap(cluster: Cluster) -> None:
    rng = random.Random(seed())
    watched = cluster.ids[1]

    async def main() -> None:
        clients = await funded_clients(cluster, ACCOUNTS)
        errors: list[BaseException] = []
        keeper = BookKeeper(rotated(cluster.urls, 1), SYMBOL)
        task = asyncio.create_task(follow(keeper, errors))
        try:
            await wait_until(lambda: errors or keeper.book.synced, SYNC_TIMEOUT_S, "the first snapshot")
            assert keeper.url == cluster.url(watched)

            height = await burst(clients, rng)
            await assert_book_is_depth(keeper, height, errors)
            assert keeper.gaps == 0 and keeper.book.diffs_applied > 0

            # Lose the diff of a block that makes a level nothing touches later
            # (takers never reach it): a book that missed the gap lacks it.
            keeper.drop_next_diffs(1)
            lonely = f"{MID + SPREAD_TICKS + 7}.00"
            await clients[1].place_order(SYMBOL, "SELL", price=lonely, quantity="0.007")
            height = await burst(clients, rng)
            await assert_book_is_depth(keeper, height, errors)
            assert lonely in [p for p, _ in keeper.book.asks()]
            assert keeper.gaps == 1 and keeper.resubscribes == 1
            assert keeper.book.snapshots >= 2
        finally:
            await keeper.aclose()
            task.cancel()
            for c in clients:
                await c.aclose()

    asyncio.run(main())


def test_local_book_moves_to_another_node_when_its_node_is_killed(cluster: Cluster) -> None:
    rng = random.Random(seed())
    leader = cluster.wait_leader()
    watched = next(n for n in cluster.ids if n != leader)  # a follower: trading goes on without an election

    async def main() -> None:
        clients = await funded_clients(cluster, ACCOUNTS, skip=watched)
        errors: list[BaseException] = []
        first = cluster.ids.index(watched)
        keeper = BookKeeper(rotated(cluster.urls, first), SYMBOL)
        task = asyncio.create_task(follow(keeper, errors))
        try:
            await wait_until(lambda: errors or keeper.book.synced, SYNC_TIMEOUT_S, "the first snapshot")
            height = await burst(clients, rng)
            await assert_book_is_depth(keeper, height, errors)

            await asyncio.to_thread(cluster.kill, watched)
            await wait_until(lambda: errors or keeper.reconnects >= 1, SYNC_TIMEOUT_S, "the keeper to notice its node died")
            height = await burst(clients, rng)
            await assert_book_is_depth(keeper, height, errors)
            assert keeper.url != cluster.url(watched)
        finally:
            await keeper.aclose()
            task.cancel()
            for c in clients:
                await c.aclose()

    asyncio.run(main())
