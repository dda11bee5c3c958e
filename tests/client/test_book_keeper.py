"""BookKeeper's protocol handling against scripted WebSocket servers on
loopback (real sockets, recorded message sequences): subscribe, snapshot,
diffs, a gap -> UNSUBSCRIBE + SUBSCRIBE -> fresh snapshot, a dead node ->
the next node, a refused subscription -> StreamError. The same keeper runs
against real nodes in test_stream_book.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import serve

from dex.client import BookKeeper, DexError, StreamError

STREAM = "btcusdt@depth"
STEP_TIMEOUT_S = 10.0


def snap(h: int, bids=(), asks=()) -> str:
    data = {"e": "depthSnapshot", "E": 0, "s": "BTCUSDT", "lastUpdateId": h, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}
    return json.dumps({"stream": STREAM, "data": data})


def upd(first: int, last: int, b=(), a=()) -> str:
    data = {"e": "depthUpdate", "E": 0, "s": "BTCUSDT", "U": first, "u": last, "b": [list(x) for x in b], "a": [list(x) for x in a]}
    return json.dumps({"stream": STREAM, "data": data})


class Script:
    """A server that answers each SUBSCRIBE with the next list of frames."""

    def __init__(self, *replies: list[str], close_after: bool = False) -> None:
        self.replies = list(replies)
        self.close_after = close_after
        self.received: list[dict] = []

    async def handler(self, ws) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            self.received.append(msg)
            await ws.send(json.dumps({"result": None, "id": msg["id"]}))
            if msg["method"] == "SUBSCRIBE" and self.replies:
                for frame in self.replies.pop(0):
                    await ws.send(frame)
                if self.close_after and not self.replies:
                    await ws.close()
                    return


async def books(keeper: BookKeeper, count: int) -> list[tuple]:
    """The first `count` states the keeper yields, as (height, bids, asks)."""
    out = []
    async with asyncio.timeout(STEP_TIMEOUT_S):
        async for book in keeper:
            book.check_invariants()
            out.append((book.last_update_id, book.bids(), book.asks()))
            if len(out) == count:
                return out
    raise AssertionError(f"the keeper stopped after {len(out)} updates")


def test_snapshot_then_diffs_then_a_gap_resubscribes_for_a_fresh_snapshot() -> None:
    script = Script(
        [
            snap(10, bids=[("100.00", "1.0000")], asks=[("101.00", "2.0000")]),
            upd(11, 11, b=[("100.00", "0.5000")]),
            upd(12, 13, a=[("101.00", "0"), ("102.00", "1.0000")]),
            upd(15, 15, b=[("99.00", "3.0000")]),  # 14 was lost
            upd(16, 16, b=[("98.00", "3.0000")]),  # still before the new snapshot: skipped
        ],
        [snap(16, bids=[("100.00", "0.5000"), ("99.00", "3.0000"), ("98.00", "3.0000")], asks=[("102.00", "1.0000")]), upd(17, 17, b=[("100.00", "0")])],
    )

    async def main() -> tuple[list, BookKeeper]:
        async with serve(script.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with BookKeeper([f"http://127.0.0.1:{port}"], "BTCUSDT") as keeper:
                return await books(keeper, 5), keeper

    seen, keeper = asyncio.run(main())
    assert seen == [
        (10, [["100.00", "1.0000"]], [["101.00", "2.0000"]]),
        (11, [["100.00", "0.5000"]], [["101.00", "2.0000"]]),
        (13, [["100.00", "0.5000"]], [["102.00", "1.0000"]]),
        (16, [["100.00", "0.5000"], ["99.00", "3.0000"], ["98.00", "3.0000"]], [["102.00", "1.0000"]]),
        (17, [["99.00", "3.0000"], ["98.00", "3.0000"]], [["102.00", "1.0000"]]),
    ]
    assert keeper.gaps == 1 and keeper.resubscribes == 1 and keeper.reconnects == 0
    assert [(m["method"], m["params"]) for m in script.received] == [("SUBSCRIBE", [STREAM]), ("UNSUBSCRIBE", [STREAM]), ("SUBSCRIBE", [STREAM])]


def test_the_drop_hook_forces_a_gap() -> None:
    script = Script([snap(1), upd(2, 2, b=[("1.00", "1")]), upd(3, 3, b=[("2.00", "1")])], [snap(3, bids=[("2.00", "1"), ("1.00", "1")])])

    async def main() -> tuple[list, BookKeeper]:
        async with serve(script.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with BookKeeper(f"http://127.0.0.1:{port}", "BTCUSDT") as keeper:
                keeper.drop_next_diffs(1)
                return await books(keeper, 2), keeper

    seen, keeper = asyncio.run(main())
    assert seen == [(1, [], []), (3, [["2.00", "1"], ["1.00", "1"]], [])]
    assert keeper.gaps == 1


def test_a_closed_connection_moves_to_the_next_node() -> None:
    a = Script([snap(5, bids=[("1.00", "1")]), upd(6, 6, b=[("1.00", "2")])], close_after=True)
    b = Script([snap(9, bids=[("1.00", "3")])])

    async def main() -> tuple[list, BookKeeper, int]:
        async with serve(a.handler, "127.0.0.1", 0) as sa, serve(b.handler, "127.0.0.1", 0) as sb:
            urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in (sa, sb)]
            async with BookKeeper(urls, "BTCUSDT") as keeper:
                return await books(keeper, 3), keeper, urls

    seen, keeper, urls = asyncio.run(main())
    assert seen == [(5, [["1.00", "1"]], []), (6, [["1.00", "2"]], []), (9, [["1.00", "3"]], [])]
    assert keeper.reconnects == 1 and keeper.url == urls[1]


def test_a_refused_subscription_raises() -> None:
    async def refuse(ws) -> None:
        async for raw in ws:
            await ws.send(json.dumps({"error": {"code": -1121, "msg": "Invalid symbol."}, "id": json.loads(raw)["id"]}))

    async def main() -> None:
        async with serve(refuse, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with BookKeeper(f"http://127.0.0.1:{port}", "NOPE") as keeper:
                await books(keeper, 1)

    with pytest.raises(StreamError) as info:
        asyncio.run(main())
    assert info.value.code == -1121


def test_no_node_at_all_gives_up_with_a_typed_error() -> None:
    async def main() -> None:
        async with BookKeeper(["http://127.0.0.1:9", "http://127.0.0.1:9"], "BTCUSDT", reconnects_max=3) as keeper:
            await books(keeper, 1)

    with pytest.raises(DexError) as info:
        asyncio.run(main())
    assert info.value.code == -1001
