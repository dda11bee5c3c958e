"""A signed request executes once, on real nodes: captured from the block
explorer and sent again to any node, or sent to every node at once, it is
refused with -9006 and changes nothing; replays do not spend the victim's
rate limit; an unsigned X-RECV-WINDOW cannot stretch a request's life."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import SIGNED_REQUEST_TIMEOUT_S, Cluster

REPLAYED = -9006


def captured(cluster: Cluster, node: str, height: int, path: str) -> tuple[dict, bytes]:
    """The headers and body of the signed `path` request in block `height`,
    rebuilt from what the block explorer publishes."""
    block = cluster.get_json(node, f"/api/v1/blocks/{height}")
    for auth in block["auths"]:
        head = f"{auth['timestamp']}POST{path}"
        if auth["payload"].startswith(head):
            headers = {
                "Content-Type": "application/json",
                "X-API-KEY": auth["publicKey"],
                "X-TIMESTAMP": str(auth["timestamp"]),
                "X-SIGNATURE": auth["signature"],
            }
            return headers, auth["payload"][len(head) :].encode()
    raise AssertionError(f"no {path} in block {height}: {block['auths']}")


def usdt_free(c: Client) -> str:
    return next(b["free"] for b in c.account()["balances"] if b["asset"] == "USDT")


@pytest.mark.cluster_settings(rate_limit_per_s=2, rate_limit_burst=10)
def test_a_withdrawal_replayed_from_the_explorer_to_every_node_is_refused(tuned_cluster: Cluster) -> None:
    cluster = tuned_cluster
    node = cluster.ids[0]
    with Client(cluster.url(node), Keypair.generate()) as victim, httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        victim.deposit("USDT", "100")
        height = victim.withdraw("USDT", "1")["blockHeight"]
        headers, body = captured(cluster, node, height, "/api/v1/withdraw")

        answers = [http.post(cluster.url(n) + "/api/v1/withdraw", content=body, headers=headers) for n in cluster.ids for _ in range(10)]

        assert {(r.status_code, r.json()["code"]) for r in answers} == {(400, REPLAYED)}, [r.text for r in answers[:3]]
        assert float(usdt_free(victim)) == 99.0
        # 40 replays through the victim's node spent none of its 10-token burst.
        for _ in range(5):
            victim.deposit("USDT", "1")
        assert float(usdt_free(victim)) == 104.0


def test_the_same_signed_deposit_sent_to_every_node_at_once_executes_once(cluster: Cluster) -> None:
    keys = Keypair.generate()
    body = b'{"asset":"USDT","amount":"7"}'
    headers = {"Content-Type": "application/json", **keys.headers(time.time_ns() // 1_000_000, "POST", "/api/v1/deposit", "", body)}
    start = threading.Barrier(len(cluster.ids) * 2)
    answers: list[httpx.Response] = []

    def send(node: str) -> None:
        with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
            start.wait()
            answers.append(http.post(cluster.url(node) + "/api/v1/deposit", content=body, headers=headers))

    threads = [threading.Thread(target=send, args=(n,)) for n in cluster.ids * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    outcomes = sorted((r.status_code, r.json().get("code")) for r in answers)
    assert outcomes == [(200, None)] + [(400, REPLAYED)] * (len(answers) - 1), [r.text for r in answers]
    with Client(cluster.urls, keys) as me:
        assert float(usdt_free(me)) == 7.0
    head = cluster.wait_converged(cluster.ids)
    assert head.height > 0


def test_an_unsigned_recv_window_header_is_refused_and_a_signed_one_is_bounded(cluster: Cluster) -> None:
    keys = Keypair.generate()
    body = b'{"asset":"USDT","amount":"1"}'
    url = cluster.url(cluster.ids[0])
    old_ms = time.time_ns() // 1_000_000 - 20_000
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S) as http:
        stretched = {"Content-Type": "application/json", "X-RECV-WINDOW": "60000", **keys.headers(old_ms, "POST", "/api/v1/deposit", "", body)}
        refused = http.post(url + "/api/v1/deposit", content=body, headers=stretched)
        signed_window = {"Content-Type": "application/json", **keys.headers(old_ms, "POST", "/api/v1/deposit", "recvWindow=60000", body)}
        accepted = http.post(url + "/api/v1/deposit?recvWindow=60000", content=body, headers=signed_window)
        too_wide = {"Content-Type": "application/json", **keys.headers(old_ms, "POST", "/api/v1/deposit", "recvWindow=60001", body)}
        over = http.post(url + "/api/v1/deposit?recvWindow=60001", content=body, headers=too_wide)
        unicode_digit = {"Content-Type": "application/json", **keys.headers(old_ms, "POST", "/api/v1/deposit", "recvWindow=6²", body)}
        odd = http.post(url + "/api/v1/deposit?recvWindow=6²", content=body, headers=unicode_digit)

    assert (refused.status_code, refused.json()["code"]) == (400, -1102)
    assert "X-RECV-WINDOW" in refused.json()["msg"]
    assert accepted.status_code == 200, accepted.text
    assert (over.status_code, over.json()["code"]) == (400, -1102)
    assert odd.status_code == 400 and odd.json()["code"] in (-1102, -1021), odd.text
