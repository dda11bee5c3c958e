"""The order routes' fast path (dex/api/fastpath.py): on real nodes, a
client's order, cancel and refusals are served without FastAPI's layers and
answer exactly what the framework path answers; a browser's request (an
Origin header) still goes through FastAPI and gets its CORS headers; and the
routes the fast path takes declare nothing FastAPI would have checked."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from dex.api import trading
from dex.api.dashboard import node_origins
from dex.api.trading import FORWARDED
from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import SIGNED_REQUEST_TIMEOUT_S, Cluster, metric_value


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    return shared_cluster


def _fast_path_count(http: httpx.Client, url: str) -> float:
    value = metric_value(http.get(url + "/metrics").text, "dex_fast_path_requests_total")
    assert value is not None, "the node exports no dex_fast_path_requests_total"
    return value


def _send(http: httpx.Client, url: str, keys: Keypair, method: str, path: str, *, query: str = "", body: bytes = b"", extra: dict | None = None) -> httpx.Response:
    ts = time.time_ns() // 1_000_000
    headers = {"Content-Type": "application/json", **keys.headers(ts, method, path, query, body), **(extra or {})}
    return http.request(method, url + path + (f"?{query}" if query else ""), content=body, headers=headers)


def _order(price: str, cid: str) -> bytes:
    return json.dumps({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": price, "quantity": "0.001", "newClientOrderId": cid}).encode()


def test_orders_take_the_fast_path_and_answer_as_the_framework_does(cluster: Cluster) -> None:
    keys = Keypair.generate()
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.ids if n != leader)
    url = cluster.url(follower)
    with Client(cluster.urls, keys) as client:
        client.deposit("USDT", "1000")
    origin = next(o for o in node_origins(cluster.cfg) if o != url)  # the page served by another node
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        before = _fast_path_count(http, url)
        fast = _send(http, url, keys, "POST", "/api/v1/order", body=_order("20000", "fast-1"))
        after_fast = _fast_path_count(http, url)
        framework = _send(http, url, keys, "POST", "/api/v1/order", body=_order("20001", "browser-1"), extra={"Origin": origin})
        after_framework = _fast_path_count(http, url)

        assert fast.status_code == 200 and framework.status_code == 200, (fast.text, framework.text)
        assert after_fast == before + 1 and after_framework == after_fast  # (GET /metrics is not an order route)
        assert framework.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-origin" not in fast.headers
        a, b = fast.json(), framework.json()
        assert a.keys() == b.keys() and a["status"] == b["status"] == "NEW"
        assert (a["clientOrderId"], b["clientOrderId"]) == ("fast-1", "browser-1")

        # Refusals: the same {code, msg} either way.
        for extra in ({}, {"Origin": origin}):
            bad_id = _send(http, url, keys, "DELETE", "/api/v1/order", query="symbol=BTCUSDT&orderId=abc", extra=extra)
            assert bad_id.status_code == 400 and bad_id.json()["code"] == -1102, bad_id.text
            unknown = _send(http, url, keys, "DELETE", "/api/v1/order", query=f"symbol=BTCUSDT&orderId={2**62}", extra=extra)
            assert unknown.status_code == 404 and unknown.json()["code"] == -2013, unknown.text
            no_symbol = _send(http, url, keys, "DELETE", "/api/v1/order", query="orderId=1", extra=extra)
            assert no_symbol.status_code == 400 and no_symbol.json() == {"code": -1102, "msg": "symbol: Field required"}, no_symbol.text
            unsigned = http.post(url + "/api/v1/order", content=_order("1", "x"), headers={"Content-Type": "application/json", **extra})
            assert unsigned.status_code == 401 and unsigned.json()["code"] == -1102, unsigned.text
        assert _fast_path_count(http, url) == after_framework + 4

        cancel = _send(http, url, keys, "DELETE", "/api/v1/order", query="symbol=BTCUSDT&origClientOrderId=fast-1")
        assert cancel.status_code == 200 and cancel.json()["status"] == "CANCELED", cancel.text


def test_the_fast_paths_routes_declare_nothing_for_fastapi_to_check() -> None:
    """FastAPI validates a route's declared query, header, cookie and body
    parameters before its handler: a route taken by the fast path must
    declare none, or the two paths would check different things."""
    found = set()
    for route in trading.router.routes:
        for method in route.methods:
            if (method, route.path) in FORWARDED:
                found.add((method, route.path))
                d = route.dependant
                params = [p.name for p in (*d.query_params, *d.header_params, *d.cookie_params, *d.body_params)]
                params += [p.name for sub in d.dependencies for p in (*sub.query_params, *sub.header_params, *sub.body_params)]
                assert params == [], f"{method} {route.path} declares {params}"
    assert found == FORWARDED
