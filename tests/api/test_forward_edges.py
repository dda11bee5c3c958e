"""What a client can do to the forwarding path between nodes, on real nodes:
a header claiming a forward means nothing, a frame captured on the forward
channel executes nowhere again (not on its connection, not on another), the
signed bytes reach the leader unchanged (a client order id with a quote in
the query), the leader's block-height header reaches the client through a
follower, and the chain verification anyone may ask for runs at most once
per interval. The tests share one cluster, each with accounts of its own."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import time
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dex.api import channel as ch
from dex.api.execute import Call
from dex.auth import Keypair, signed_payload
from dex.client import Client
from tests.cluster.harness import SIGNED_REQUEST_TIMEOUT_S, Cluster


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    return shared_cluster


def follower(cluster: Cluster) -> str:
    leader = cluster.wait_leader()
    return next(n for n in cluster.ids if n != leader)


def signed(keys: Keypair, path: str, body: bytes) -> tuple[dict, bytes]:
    ts = time.time_ns() // 1_000_000
    return {"Content-Type": "application/json", **keys.headers(ts, "POST", path, "", body)}, signed_payload(ts, "POST", path, "", body)


def test_a_clients_own_forwarded_header_is_ignored_not_a_503_loop(cluster: Cluster) -> None:
    keys = Keypair.generate()
    body = b'{"asset":"USDT","amount":"5"}'
    headers, _ = signed(keys, "/api/v1/deposit", body)
    headers.update({"X-DEX-FORWARDED": "n1", "X-DEX-FORWARD-MAC": "ab" * 32})
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        r = http.post(cluster.url(follower(cluster)) + "/api/v1/deposit", content=body, headers=headers)

    assert r.status_code == 200, r.text


async def _open_channel(url: str, secret: str, node_id: str):
    """A channel to the leader as follower `node_id` would open it: (the
    WebSocket, the connection's key)."""
    ws = await connect(url, compression=None, proxy=None)
    first = await ws.recv()
    challenge = first[len(ch.MAGIC) : len(ch.MAGIC) + ch.CHALLENGE_BYTES]
    key = ch.channel_key(secret)
    nonce = os.urandom(ch.CHALLENGE_BYTES)
    await ws.send(nonce + ch.hello_mac(key, challenge, nonce, node_id) + node_id.encode())
    conn_key = ch.connection_key(key, challenge, nonce, node_id)
    assert ch.unseal(conn_key, ch.TO_FOLLOWER, 0, await ws.recv()) == ch.WELCOME
    return ws, conn_key


async def _refused(ws, frame: bytes) -> int | None:
    """Send a frame the leader must refuse: the close code it answers with."""
    await ws.send(frame)
    try:
        await asyncio.wait_for(ws.recv(), ch.FORWARD_TIMEOUT_S)
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None
    raise AssertionError("the leader answered a replayed frame")


def test_the_channel_refuses_a_captured_frame_a_wrong_hello_and_idle_handshakes(cluster: Cluster) -> None:
    keys = Keypair.generate()
    body = b'{"asset":"USDT","amount":"3"}'
    headers, _ = signed(keys, "/api/v1/deposit", body)
    call = Call("POST", "/api/v1/deposit", "", body, headers["X-API-KEY"], headers["X-TIMESTAMP"], headers["X-SIGNATURE"])
    leader = cluster.wait_leader()
    url = cluster.url(leader).replace("http", "ws", 1) + ch.CHANNEL_PATH
    peer = follower(cluster)

    async def run():
        ws, conn_key = await _open_channel(url, cluster.cfg.secret(), peer)
        frame = ch.seal(conn_key, ch.TO_LEADER, 1, ch.encode_requests([ch.encode_request(1, call)]))
        await ws.send(frame)
        [(request_id, answer)] = ch.decode_answers(ch.unseal(conn_key, ch.TO_FOLLOWER, 1, await ws.recv()))
        again = await _refused(ws, frame)  # the same frame, again on its connection
        ws2, _ = await _open_channel(url, cluster.cfg.secret(), peer)
        elsewhere = await _refused(ws2, frame)  # on a new connection
        try:  # a hello under another secret
            await _open_channel(url, "not the cluster secret " * 2, peer)
        except ConnectionClosed as e:
            stranger = e.rcvd.code if e.rcvd else None
        # Connections that never say hello: HANDSHAKES_MAX are held, the next is refused at once.
        idle = [await connect(url, compression=None, proxy=None) for _ in range(ch.HANDSHAKES_MAX)]
        try:
            await connect(url, compression=None, proxy=None)
            one_too_many = None
        except InvalidStatus as e:
            one_too_many = e.response.status_code
        try:  # ... and each is closed after HANDSHAKE_TIMEOUT_S
            await asyncio.wait_for(idle[0].wait_closed(), ch.HANDSHAKE_TIMEOUT_S * 5)
            idle_code = idle[0].close_code
        finally:
            for ws in idle:
                await ws.close()
        ws3, _ = await _open_channel(url, cluster.cfg.secret(), peer)  # the slots are free again (the module shares this cluster)
        await ws3.close()
        return request_id, answer, again, elsewhere, stranger, one_too_many, idle_code

    request_id, answer, again, elsewhere, stranger, one_too_many, idle_code = asyncio.run(run())

    assert request_id == 1 and answer.status == 200, answer
    assert again == elsewhere == stranger == idle_code == ch.CLOSE_POLICY
    assert one_too_many == 403
    with Client(cluster.urls, keys) as me:
        assert next(b["free"] for b in me.account()["balances"] if b["asset"] == "USDT").startswith("3.")


def _raw_request(url: str, keys: Keypair, method: str, path: str, query: str) -> tuple[int, dict]:
    """A signed request sent with its query exactly as written (no client re-encodes it)."""
    ts = time.time_ns() // 1_000_000
    conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=SIGNED_REQUEST_TIMEOUT_S)
    try:
        conn.request(method, f"{path}?{query}", headers=keys.headers(ts, method, path, query, b""))
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_a_signed_query_with_a_quote_passes_through_a_follower_unchanged(cluster: Cluster) -> None:
    keys = Keypair.generate()
    cid = 'say"hi"'
    with Client(cluster.urls, keys) as c:
        c.deposit("USDT", "1000")
        c.place_order("BTCUSDT", "BUY", price="40000.00", quantity="0.001", client_order_id=cid)

    status, answer = _raw_request(cluster.url(follower(cluster)), keys, "DELETE", "/api/v1/order", f'symbol=BTCUSDT&origClientOrderId={cid}')

    assert status == 200, answer
    assert answer["status"] == "CANCELED" and answer["origClientOrderId"] == cid


def test_a_batch_through_a_follower_carries_the_block_height_header(cluster: Cluster) -> None:
    keys = Keypair.generate()
    with Client(cluster.urls, keys) as c:
        c.deposit("USDT", "100000")
    body = b'{"batchOrders":[{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","price":"40000.00","quantity":"0.001"}]}'
    headers, _ = signed(keys, "/api/v1/batchOrders", body)
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        r = http.post(cluster.url(follower(cluster)) + "/api/v1/batchOrders", content=body, headers=headers)

    assert r.status_code == 200, r.text
    assert r.headers.get("X-DEX-BLOCK-HEIGHT", "").isdigit()
    assert int(r.headers["X-DEX-BLOCK-HEIGHT"]) == r.json()[0]["blockHeight"]


def test_chain_verification_runs_at_most_once_per_interval(cluster: Cluster) -> None:
    url = cluster.url(cluster.ids[0]) + "/api/v1/chain/verify"
    with httpx.Client(timeout=30) as http:
        first = http.get(url).json()
        again = [http.get(url).json() for _ in range(5)]

    assert first["ok"] and first["ageS"] == 0.0
    assert all(a["tookMs"] == first["tookMs"] and a["ageS"] >= 0.0 for a in again)
    assert any(a["ageS"] > 0.0 for a in again)
