"""The per-account rate limit on signed requests, over a real cluster whose
limit is small: 1 request a second, bursts of BURST."""

from __future__ import annotations

import time

import httpx
import pytest

from dex.api.ratelimit import TokenBuckets
from dex.auth import Keypair
from tests.cluster.harness import Cluster, signed_request

BURST = 10
pytestmark = pytest.mark.cluster_settings(rate_limit_per_s=1, rate_limit_burst=BURST)


@pytest.fixture
def tuned_cluster(shared_cluster: Cluster) -> Cluster:
    """One cluster for the module: each test spends the buckets of accounts of its own."""
    return shared_cluster


def _get_account(http: httpx.Client, url: str, keys: Keypair, extra_headers: dict | None = None) -> httpx.Response:
    headers = keys.headers(time.time_ns() // 1_000_000, "GET", "/api/v1/account", "", b"")
    headers.update(extra_headers or {})
    return http.get(url + "/api/v1/account", headers=headers)


def test_a_burst_over_the_limit_is_answered_429_and_other_accounts_are_not(tuned_cluster: Cluster) -> None:
    url = tuned_cluster.url(tuned_cluster.ids[0])
    greedy, other = Keypair.generate(), Keypair.generate()
    with httpx.Client(timeout=10.0) as http:
        answers = [_get_account(http, url, greedy) for _ in range(BURST + 5)]
        statuses = [r.status_code for r in answers]
        assert statuses[:BURST] == [200] * BURST, statuses
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) >= 3, statuses  # a token a second refills at most a few meanwhile
        for r in refused:
            assert r.json()["code"] == -1003 and r.json()["msg"].startswith("Too many requests;")
            assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) >= 1

        assert _get_account(http, url, other).status_code == 200, "another account was limited too"
        # Unsigned routes are not limited per account.
        assert all(http.get(url + "/api/v1/depth", params={"symbol": "BTCUSDT"}).status_code == 200 for _ in range(BURST + 5))


def test_a_forwarded_request_is_charged_once_where_it_arrived(tuned_cluster: Cluster) -> None:
    leader = tuned_cluster.wait_leader()
    follower = next(n for n in tuned_cluster.ids if n != leader)
    keys = Keypair.generate()
    with httpx.Client(timeout=20.0) as http:
        started_s = time.monotonic()
        r = signed_request(http, keys, "POST", tuned_cluster.url(follower), "/api/v1/deposit", {"asset": "USDT", "amount": "100000"})
        assert r.status_code == 200, r.text
        for i in range(BURST - 1):  # the rest of the follower's burst, every one forwarded to the leader
            body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": f"{1000 + i}.00", "quantity": "0.01000"}
            r = signed_request(http, keys, "POST", tuned_cluster.url(follower), "/api/v1/order", body)
            assert r.status_code == 200, r.text

        # The leader charged none of them: its bucket for this account is full.
        leader_url = tuned_cluster.url(leader)
        statuses = [_get_account(http, leader_url, keys).status_code for _ in range(BURST)]
        assert statuses == [200] * BURST, statuses
        # The follower's is spent, but for the tokens it refilled meanwhile (one
        # a second: a loaded machine may take seconds over the burst).
        refilled = int(time.monotonic() - started_s) + 1
        answers = []
        for i in range(refilled + 1):
            body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": f"{900 + i}.00", "quantity": "0.01000"}
            answers.append(signed_request(http, keys, "POST", tuned_cluster.url(follower), "/api/v1/order", body))
            if answers[-1].status_code != 200:
                break
        r = answers[-1]
        assert r.status_code == 429 and r.json()["code"] == -1003, (len(answers), refilled, r.text)


def test_claiming_to_be_forwarded_does_not_skip_the_limit(tuned_cluster: Cluster) -> None:
    url = tuned_cluster.url(tuned_cluster.wait_leader())
    keys = Keypair.generate()
    forged = {"X-DEX-FORWARDED": "n2", "X-DEX-FORWARD-MAC": "00" * 32}
    with httpx.Client(timeout=10.0) as http:
        statuses = [_get_account(http, url, keys, forged).status_code for _ in range(BURST + 5)]
    assert statuses[:BURST] == [200] * BURST and 429 in statuses, statuses


def test_signed_routes_document_429(tuned_cluster: Cluster) -> None:
    schema = tuned_cluster.get_json(tuned_cluster.ids[0], "/openapi.json")
    signed = {(path, method) for path, ops in schema["paths"].items() for method, op in ops.items() if "(signed" in op.get("summary", "")}
    assert ("/api/v1/order", "post") in signed and ("/api/v1/account", "get") in signed
    for path, method in signed:
        assert "429" in schema["paths"][path][method]["responses"], (path, method)
    assert "429" not in schema["paths"]["/api/v1/depth"]["get"]["responses"]


def test_token_buckets_refill_at_the_rate_up_to_the_burst() -> None:
    now = [0.0]
    buckets = TokenBuckets(2, 4, clock=lambda: now[0], keys_max=2)
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4
    assert buckets.take("a") == pytest.approx(0.5)  # a token every 0.5 s
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    now[0] += 100.0
    assert [buckets.take("a") for _ in range(5)][-1] > 0, "refilled past the burst"
    buckets.take("b")
    buckets.take("c")  # over keys_max: the least recently used ("a") is dropped
    assert len(buckets) == 2 and buckets.take("a") == 0.0
