"""What a client can do to the forwarding path between nodes, on real nodes:
its own X-DEX-FORWARDED header means nothing, a forward captured with a
valid MAC cannot be replayed, the leader's block-height header reaches the
client through a follower, and the chain verification anyone may ask for
runs at most once per interval."""

from __future__ import annotations

import time

import httpx

from dex.api.ratelimit import FORWARD_MAC_HEADER, FORWARDED_HEADER, forward_key, forward_mac
from dex.auth import Keypair, signed_payload
from dex.client import Client
from tests.cluster.harness import SIGNED_REQUEST_TIMEOUT_S, Cluster


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
    headers.update({FORWARDED_HEADER: "n1", FORWARD_MAC_HEADER: "ab" * 32})
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        r = http.post(cluster.url(follower(cluster)) + "/api/v1/deposit", content=body, headers=headers)

    assert r.status_code == 200, r.text


def test_a_forward_captured_with_its_mac_does_not_execute_again(cluster: Cluster) -> None:
    keys = Keypair.generate()
    body = b'{"asset":"USDT","amount":"3"}'
    headers, payload = signed(keys, "/api/v1/deposit", body)
    mac = forward_mac(forward_key(cluster.cfg.secret()), headers["X-API-KEY"], headers["X-SIGNATURE"], payload)
    captured = {**headers, FORWARDED_HEADER: "n2", FORWARD_MAC_HEADER: mac}
    leader = cluster.wait_leader()
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        first = http.post(cluster.url(leader) + "/api/v1/deposit", content=body, headers=captured)
        again = [http.post(cluster.url(leader) + "/api/v1/deposit", content=body, headers=captured) for _ in range(20)]

    assert first.status_code == 200, first.text
    assert {(r.status_code, r.json()["code"]) for r in again} == {(400, -9006)}
    with Client(cluster.urls, keys) as me:
        assert next(b["free"] for b in me.account()["balances"] if b["asset"] == "USDT").startswith("3.")


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
