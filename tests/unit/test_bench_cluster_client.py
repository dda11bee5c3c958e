"""bench/cluster.py's load generator: its connection bound and what the
overload phase counts as a final answer (logic only; no cluster).

The overload figure measured the generator, not the cluster, when the open
loop opened a connection per request in flight: past the node's per-address
cap every new one was refused 429 and retried, and the generator spent its
CPU on connects (docs/BENCHMARKS.md, overload). These hold the fix.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    saved = list(sys.path)  # the module rearranges sys.path on import
    try:
        spec = importlib.util.spec_from_file_location("bench_cluster", REPO / "bench" / "cluster.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path[:] = saved


SHED = b'{"code":-1008,"msg":"Server is currently overloaded"}'
REFUSED = b'{"code": -1003, "msg": "Too many open connections from one address: at most 512."}'


class ScriptedPool:
    """A pool that answers from a script and records what it was asked."""

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.requests = 0

    async def request(self, method, target, headers, body):
        self.requests += 1
        headers() if callable(headers) else headers  # signs, as the real pools do
        status, payload, hints = self.answers.pop(0)
        return status, payload, hints, time.monotonic()


def make_load(bench, *, overload: bool, answers: list):
    spec = {
        "seeds": [bytes(range(32))],  # Load builds its keys with Keypair.from_private
        "seed": 1,
        "cid_prefix": "t-",
        "worker": 0,
        "book_target": 10,
        "cross_pct": 10.0,
        "shed_is_final": overload,
    }
    load = bench.Load(spec)
    load.pools = [ScriptedPool(answers)]
    return load


def test_overload_final_answers(bench):
    assert bench.overload_final(503, SHED) == "shed"
    assert bench.overload_final(429, REFUSED) == "refused"
    assert bench.overload_final(503, b'{"code":-1001,"msg":"no leader"}') is None  # a failure: retried
    assert bench.overload_final(200, b"{}") is None
    assert bench.overload_final(None, b"") is None


def test_a_429_in_the_overload_phase_is_refused_at_the_door_not_retried(bench):
    load = make_load(bench, overload=True, answers=[(429, REFUSED, (None, "1")), (200, b'{"orderId": 1}', (None, None))])
    asyncio.run(load.place(scheduled=time.monotonic()))
    assert load.pools[0].requests == 1
    assert load.counts["orders_refused_at_door"] == 1
    assert load.counts["refused_with_retry_after"] == 1
    assert load.counts.get("orders_acked", 0) == 0 and load.counts.get("orders_shed", 0) == 0
    assert len(load.shed_lat_ms) == 1 and len(load.send_lag_ms) == 1


def test_a_429_outside_the_overload_phase_is_retried(bench):
    # No Retry-After, so the retry waits only the backoff's first step.
    load = make_load(bench, overload=False, answers=[(429, REFUSED, (None, None)), (200, b'{"orderId": 1, "clientOrderId": "t-1"}', (None, None))])
    asyncio.run(load.place(scheduled=time.monotonic()))
    assert load.pools[0].requests == 2
    assert load.counts["orders_acked"] == 1
    assert load.counts.get("orders_refused_at_door", 0) == 0


def test_a_shed_in_the_overload_phase_is_counted_as_shed(bench):
    load = make_load(bench, overload=True, answers=[(503, SHED, ("20", "1"))])
    asyncio.run(load.place(scheduled=time.monotonic()))
    assert load.pools[0].requests == 1
    assert load.counts["orders_shed"] == 1 and load.counts["shed_with_retry_after"] == 1
    assert load.counts.get("orders_refused_at_door", 0) == 0


def test_the_raw_pool_opens_at_most_its_bound_and_queues_the_rest(bench):
    bound, requests = 2, 5

    async def scenario() -> tuple[int, int, int, list]:
        accepted = 0
        heads = 0
        two_in_hand = asyncio.Event()
        release = asyncio.Event()

        async def serve(reader, writer):
            nonlocal accepted, heads
            accepted += 1
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    heads += 1
                    if heads >= bound:
                        two_in_hand.set()
                    await release.wait()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = bench.RawPool(f"http://127.0.0.1:{port}", bound)
        calls = [asyncio.ensure_future(pool.request("GET", "/x", {}, b"")) for _ in range(requests)]
        await two_in_hand.wait()
        # Every call ran to its first suspension before the server saw a byte:
        # the first `bound` are connecting, the rest wait for a connection.
        accepted_while_held, open_while_held = accepted, pool.open
        release.set()
        answers = await asyncio.gather(*calls)
        await pool.close()
        server.close()
        await server.wait_closed()
        return accepted_while_held, open_while_held, accepted, answers

    accepted_while_held, open_while_held, accepted, answers = asyncio.run(scenario())
    assert accepted_while_held == bound and open_while_held == bound
    assert accepted == bound  # the queued requests reused the kept-alive connections
    assert [a[0] for a in answers] == [200] * requests


def test_the_open_loop_skips_a_send_while_the_clients_own_backlog_is_full(bench):
    """A scheduled order finds as many requests waiting for a connection as
    the bound allows: it is counted as skipped (the generator's backlog, not
    the cluster's refusal) and not sent; with room, it is sent."""

    async def run(waiting: int):
        load = make_load(bench, overload=True, answers=[(503, SHED, (None, "1"))] * 1000)
        load.spec.update(rate=2000.0, backlog_max=8)
        load.pools[0].waiting = waiting
        load.start = time.monotonic()
        load.end = load.start + 0.02  # ~40 scheduled sends
        await load.open_loop()
        return load

    full = asyncio.run(run(waiting=8))
    assert full.counts["open_loop_skipped_backlog"] > 0
    assert full.counts.get("orders_sent", 0) == 0 and full.pools[0].requests == 0
    room = asyncio.run(run(waiting=7))
    assert room.counts.get("open_loop_skipped_backlog", 0) == 0
    assert room.counts["orders_sent"] > 0 and room.pools[0].requests == room.counts["orders_sent"]
