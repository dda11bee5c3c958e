"""Overload is shed, not queued (dex/ledger/admission.py), on a real cluster.

The cluster is set so that the leader's admission budget is tiny (1 ms of
expected wait, blocks of 2 commands): a flood of orders sent at once to the
leader must then be partly refused with 503 -1008 and a Retry-After header,
and every order that was answered 200 must be in every node's ledger, while
no refused one is anywhere (refused before it was queued). Sent through a
follower, the excess is refused there too, before its signatures are checked,
once the leader has shed one of that follower's forwards (dex/api/channel.py):
every 503 is one the leader or the follower counted."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from dex.auth import RECV_WINDOW_MS_MAX, Keypair
from dex.client import Client
from tests.cluster.harness import Cluster, metric_value

# The leader admits ~1 ms of expected wait, in blocks of 2 commands.
pytestmark = pytest.mark.cluster_settings(admission_delay_ms=1, block_commands_max=2, rate_limit_per_s=100_000, rate_limit_burst=100_000)

FLOOD_ORDERS = 240
RECV_WINDOW = f"recvWindow={RECV_WINDOW_MS_MAX}"  # signed, in the query
ACCOUNTS = 8


def _order(cid: str, i: int) -> bytes:
    return json.dumps({
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": f"{30000 + i % 50}.00",
        "quantity": "0.00100", "newClientOrderId": cid, "newOrderRespType": "ACK",
    }, separators=(",", ":")).encode()


async def _flood(url: str, keys: list[Keypair], prefix: str = "flood") -> list[tuple[str, int, dict, str | None]]:
    """Every order sent at once, each once: (client id, status, body, Retry-After)."""
    limits = httpx.Limits(max_connections=FLOOD_ORDERS, max_keepalive_connections=FLOOD_ORDERS)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, trust_env=False) as http:

        async def one(i: int):
            cid = f"{prefix}-{i}"
            body = _order(cid, i)
            headers = {"Content-Type": "application/json"}
            # The widest signed window: 240 requests at once on a machine that
            # other test processes share may wait longer than the default 5 s
            # for the node's event loop; what is tested is admission, not that.
            headers.update(keys[i % len(keys)].headers(time.time_ns() // 1_000_000, "POST", "/api/v1/order", RECV_WINDOW, body))
            r = await http.post(f"/api/v1/order?{RECV_WINDOW}", content=body, headers=headers)
            return cid, r.status_code, r.json(), r.headers.get("retry-after")

        return await asyncio.gather(*(one(i) for i in range(FLOOD_ORDERS)))


def test_a_flood_is_shed_with_retry_after_and_no_accepted_order_is_lost(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.wait_leader()
    keys = [Keypair.generate() for _ in range(ACCOUNTS)]
    for k in keys:
        with Client(c.url(leader), k) as client:
            client.deposit("USDT", "10000000")

    answers = asyncio.run(_flood(c.url(leader), keys))

    accepted = [cid for cid, status, _, _ in answers if status == 200]
    shed = [(cid, body, retry) for cid, status, body, retry in answers if status == 503]
    others = [(status, body) for _, status, body, _ in answers if status not in (200, 503)]
    assert not others, others[:5]
    assert accepted, "nothing was accepted"
    assert shed, "nothing was shed: the flood was queued"
    assert all(body["code"] == -1008 for _, body, _ in shed), shed[:3]
    assert all(retry is not None and int(retry) >= 1 for _, _, retry in shed), shed[:3]
    assert c.self_status(leader)["shedRequests"] >= len(shed)
    head = c.wait_converged(c.ids)
    for node in c.ids:
        in_ledger = {a.client_order_id for a in c.accepted_orders(node, head.height)}
        assert set(accepted) <= in_ledger, f"{node} lacks accepted orders {sorted(set(accepted) - in_ledger)[:5]}"
        assert not in_ledger & {cid for cid, _, _ in shed}, f"{node} holds orders that were answered 503 -1008"


def _forward_shed(c: Cluster, node: str) -> int:
    """The follower's dex_forward_shed_total from its /metrics."""
    r = c.http.get(c.url(node) + "/metrics")
    assert r.status_code == 200
    value = metric_value(r.text, "dex_forward_shed_total")
    assert value is not None, "no dex_forward_shed_total in /metrics"
    return int(value)


def test_a_flood_through_a_follower_is_shed_there_or_at_the_leader_and_loses_nothing(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    keys = [Keypair.generate() for _ in range(ACCOUNTS)]
    for k in keys:
        with Client(c.url(leader), k) as client:
            client.deposit("USDT", "10000000")
    shed_at_leader = c.self_status(leader)["shedRequests"]
    shed_at_follower = _forward_shed(c, follower)

    answers = asyncio.run(_flood(c.url(follower), keys, prefix="via-follower"))

    accepted = [cid for cid, status, _, _ in answers if status == 200]
    shed = [(cid, body, retry) for cid, status, body, retry in answers if status == 503]
    others = [(status, body) for _, status, body, _ in answers if status not in (200, 503)]
    assert not others, others[:5]
    assert accepted and shed, (len(accepted), len(shed))
    assert all(body["code"] == -1008 for _, body, _ in shed), shed[:3]
    assert all(retry is not None and int(retry) >= 1 for _, _, retry in shed), shed[:3]
    by_leader = c.self_status(leader)["shedRequests"] - shed_at_leader
    by_follower = _forward_shed(c, follower) - shed_at_follower
    assert by_leader + by_follower == len(shed), (by_leader, by_follower, len(shed))
    print(f"through {follower}: {len(accepted)} accepted, {by_leader} shed by the leader, {by_follower} by the follower itself")
    head = c.wait_converged(c.ids)
    for node in c.ids:
        in_ledger = {a.client_order_id for a in c.accepted_orders(node, head.height) if a.client_order_id.startswith("via-follower-")}
        assert set(accepted) <= in_ledger, f"{node} lacks accepted orders {sorted(set(accepted) - in_ledger)[:5]}"
        assert not in_ledger & {cid for cid, _, _ in shed}, f"{node} holds orders that were answered 503 -1008"
