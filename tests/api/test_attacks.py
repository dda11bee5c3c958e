"""The attack suite: every attack of the adversarial review (issue 11), driven
against real nodes; each test fails if its attack gets through.

Where a test elsewhere already drives an attack it is not repeated here; this
table is the index. The tests in this module share one four-node cluster
(rate limit 1/s, burst 30 a node, so a token spent by a replay shows).

| attack | driven by |
|---|---|
| replay a withdrawal taken from the block explorer, to every node | tests/api/test_replay.py::test_a_withdrawal_replayed_from_the_explorer_to_every_node_is_refused |
| the same signed deposit sent to every node at once | tests/api/test_replay.py::test_the_same_signed_deposit_sent_to_every_node_at_once_executes_once |
| stretch a request's life with an unsigned X-RECV-WINDOW | tests/api/test_replay.py::test_an_unsigned_recv_window_header_is_refused_and_a_signed_one_is_bounded |
| replay a withdrawal from the explorer (deposits and withdrawals have no idempotency) | here: test_a_withdrawal_from_the_explorer_replayed_40_times_takes_nothing, test_a_transfer_retried_under_its_client_transfer_id_executes_once_on_any_node |
| replay a cancel-all: it cancels an order placed after it | here: test_a_replayed_cancel_all_does_not_cancel_an_order_placed_after_it |
| replays spend the victim's rate-limit tokens | here: test_replays_do_not_spend_the_victims_rate_limit |
| replay a 100-order batch after the account's 10,000-order dedup window rolled over | here: test_a_batch_replayed_after_the_dedup_window_rolled_over_is_refused |
| `dex audit` does not notice a signature used twice | tests/audit/test_audit_chain.py::test_a_signed_request_that_executed_twice_is_found |
| flood the Raft port with a huge announced length | tests/cluster/test_raft_port.py::test_huge_announced_lengths_are_refused_before_they_are_buffered |
| hold unauthenticated Raft connections | tests/cluster/test_raft_port.py::test_idle_unauthenticated_connections_are_capped_and_time_out |
| pickles and garbage to the Raft port; the wrong password | tests/cluster/test_security.py (the 140 refusals that already worked) |
| WebSocket lockout: idle sockets from one address take every place | tests/api/test_stream_bounds.py::test_one_address_holding_its_cap_cannot_keep_another_out |
| re-subscribe amplification; outbound queues bounded by count only | tests/api/test_stream_bounds.py::test_a_resubscribe_flood_neither_slows_the_node_nor_is_buffered_without_bound, ::test_a_connection_over_the_byte_bound_is_closed_whatever_its_message_count, ::test_a_depth_snapshot_is_rendered_once_per_block_whoever_asks |
| a captured LOGIN replayed on another connection | tests/api/test_stream_bounds.py::test_a_captured_login_is_refused_on_another_connection |
| many user streams for one account | tests/api/test_stream_bounds.py::test_an_account_has_a_bounded_number_of_user_streams |
| a 200 MB body, a chunked body, a 20 MB header, slowloris, one address holding every connection | tests/api/test_http_bounds.py (each by name) |
| faucet griefing: one account takes an asset's whole supply | tests/api/test_faucet_fairness.py::test_one_account_stops_at_its_share_and_others_still_get_theirs |
| replay a captured follower-to-leader forward (the HTTP forward is replaced by an authenticated channel) | tests/api/test_forward_edges.py::test_the_channel_refuses_a_captured_frame_a_wrong_hello_and_idle_handshakes |
| a client's own X-DEX-FORWARDED header: a 503 loop | tests/api/test_forward_edges.py::test_a_clients_own_forwarded_header_is_ignored_not_a_503_loop |
| claiming to be forwarded to skip the rate limit | tests/api/test_rate_limit.py::test_claiming_to_be_forwarded_does_not_skip_the_limit |
| unauthenticated 500s: Unicode digits, non-ASCII MAC, NUL, huge, nested, 5 KB of `[` | tests/api/test_odd_values.py::test_no_odd_value_in_any_field_gets_a_server_error, tests/api/test_http_bounds.py::test_unicode_digits_in_the_timestamp_are_a_400_not_a_500, tests/api/test_stream_bounds.py::test_odd_frames_get_typed_errors_and_no_traceback |
| a 100-order batch too big for a block (503 retry for ever) | tests/api/test_batch_bounds.py (both tests) |
| followers drop X-DEX-BLOCK-HEIGHT | tests/api/test_forward_edges.py::test_a_batch_through_a_follower_carries_the_block_height_header |
| /api/v1/chain/verify re-reads the chain for anyone | tests/api/test_forward_edges.py::test_chain_verification_runs_at_most_once_per_interval |
| audit false alarms (withdraw, "orderId": "7", 50 problems) | tests/audit/test_audit_chain.py::test_a_withdrawal_is_authorized_like_a_deposit, ::test_an_amend_naming_its_order_id_as_a_string_is_the_order_the_api_amends, ::test_the_signature_phase_keeps_as_many_problems_as_asked_and_counts_the_rest |
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from dex.auth import Keypair
from dex.client import Client
from tests.api.test_replay import captured, usdt_free
from tests.cluster.harness import SIGNED_REQUEST_TIMEOUT_S, Cluster

REPLAYED = -9006
EXPIRED = -1021
RATE_PER_S, BURST = 1, 30
DEDUP_WINDOW = 10_000  # dex.core.limits.DEDUP_FINISHED_ORDERS_MAX
BATCH = 100
SEND_ATTEMPTS_MAX = 10
RETRY_PAUSE_S = 0.5


pytestmark = pytest.mark.cluster_settings(rate_limit_per_s=RATE_PER_S, rate_limit_burst=BURST)


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    """One cluster for the module (tests/cluster/conftest.py): each test uses accounts of its own."""
    return shared_cluster


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=SIGNED_REQUEST_TIMEOUT_S, trust_env=False) as h:
        yield h


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def send(http: httpx.Client, url: str, method: str, path: str, headers: dict, body: bytes = b"", query: str = "") -> httpx.Response:
    return http.request(method, url + path + (f"?{query}" if query else ""), content=body, headers=headers)


def signed(keys: Keypair, method: str, path: str, body: bytes = b"", query: str = "") -> dict:
    return {"Content-Type": "application/json", **keys.headers(now_ms(), method, path, query, body)}


def outcome(r: httpx.Response) -> tuple[int, int | None]:
    """(status, code): code None for an answer that is not a {code, msg}."""
    body = r.json()
    return r.status_code, body.get("code") if isinstance(body, dict) else None


def send_signed(http: httpx.Client, url: str, keys: Keypair, method: str, path: str, body: bytes = b"", query: str = "") -> httpx.Response:
    """A fresh signed request, signed again and sent again after a 503 that
    says it did not execute (-1001 electing, -1008 busy): a loaded machine
    may hold an election in the middle of a long test."""
    for _ in range(SEND_ATTEMPTS_MAX):
        r = send(http, url, method, path, signed(keys, method, path, body, query), body, query)
        if outcome(r) not in ((503, -1001), (503, -1008)):
            return r
        time.sleep(RETRY_PAUSE_S)  # a pause before a retry, not a wait for a condition
    return r


def test_a_withdrawal_from_the_explorer_replayed_40_times_takes_nothing(cluster: Cluster, http: httpx.Client) -> None:
    node = cluster.ids[1]
    with Client(cluster.url(node), Keypair.generate()) as victim:
        victim.deposit("USDT", "100")
        height = victim.withdraw("USDT", "1")["blockHeight"]
        headers, body = captured(cluster, node, height, "/api/v1/withdraw")

        answers = [send(http, cluster.url(cluster.ids[i % 4]), "POST", "/api/v1/withdraw", headers, body) for i in range(40)]

        assert {outcome(r) for r in answers} == {(400, REPLAYED)}, answers[0].text
        assert float(usdt_free(victim)) == 99.0


def test_a_replayed_cancel_all_does_not_cancel_an_order_placed_after_it(cluster: Cluster, http: httpx.Client) -> None:
    node = cluster.ids[0]
    with Client(cluster.url(node), Keypair.generate()) as victim:
        victim.deposit("USDT", "1000")
        victim.place_order("BTCUSDT", "BUY", "LIMIT", price="100", quantity="0.1")
        cancelled = victim.cancel_open_orders("BTCUSDT")
        height = max(o["blockHeight"] for o in cancelled)
        block = cluster.get_json(node, f"/api/v1/blocks/{height}")
        auth = next(a for a in block["auths"] if a["payload"].startswith(f"{a['timestamp']}DELETE/api/v1/openOrders"))
        query = auth["payload"][len(f"{auth['timestamp']}DELETE/api/v1/openOrders?") :]
        headers = {"X-API-KEY": auth["publicKey"], "X-TIMESTAMP": str(auth["timestamp"]), "X-SIGNATURE": auth["signature"]}
        later = victim.place_order("BTCUSDT", "BUY", "LIMIT", price="101", quantity="0.1")

        answers = [send(http, cluster.url(n), "DELETE", "/api/v1/openOrders", headers, query=query) for n in cluster.ids]

        assert {outcome(r) for r in answers} == {(400, REPLAYED)}, answers[0].text
        assert [o["orderId"] for o in victim.open_orders("BTCUSDT")] == [later["orderId"]]


def test_replays_do_not_spend_the_victims_rate_limit(cluster: Cluster, http: httpx.Client) -> None:
    """The victim's node gives it BURST tokens (and 1 a second): 2 spent on its
    own requests, 60 replays through the same node, then 25 requests of its
    own, all answered. Were replays charged, most of the 25 would be 429."""
    node = cluster.ids[2]
    url = cluster.url(node)
    keys = Keypair.generate()
    body = b'{"asset":"USDT","amount":"10"}'
    first = send_signed(http, url, keys, "POST", "/api/v1/deposit", body)
    assert first.status_code == 200, first.text
    headers, replay_body = captured(cluster, node, first.json()["blockHeight"], "/api/v1/deposit")

    replays = [send(http, url, "POST", "/api/v1/deposit", headers, replay_body) for _ in range(60)]
    own = [send(http, url, "GET", "/api/v1/account", signed(keys, "GET", "/api/v1/account")) for _ in range(25)]

    assert {outcome(r) for r in replays} == {(400, REPLAYED)}
    assert [r.status_code for r in own] == [200] * 25, [r.text for r in own if r.status_code != 200][:2]
    # The limit itself is live: past the burst the victim's own requests are refused.
    over = [send(http, url, "GET", "/api/v1/account", signed(keys, "GET", "/api/v1/account")).status_code for _ in range(BURST)]
    assert 429 in over


def test_a_batch_replayed_after_the_dedup_window_rolled_over_is_refused(cluster: Cluster, http: httpx.Client) -> None:
    """The first batch is signed with recvWindow=60000, so its timestamp is
    still acceptable when it is replayed; its client order ids have left the
    account's dedup window by then (10,000 newer finished orders), so only
    the replay guard stands between the replay and 100 new orders."""
    keys = Keypair.generate()
    with Client(cluster.urls, keys) as victim:
        victim.deposit("USDT", "100000")

    def batch(tag: str) -> bytes:
        orders = [{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "price": "10", "quantity": "0.1", "newClientOrderId": f"{tag}-{i}"} for i in range(BATCH)]
        return json.dumps({"batchOrders": orders}).encode()

    first_body = batch("first")
    for _ in range(SEND_ATTEMPTS_MAX):
        first_headers = signed(keys, "POST", "/api/v1/batchOrders", first_body, "recvWindow=60000")
        first = send(http, cluster.url(cluster.ids[0]), "POST", "/api/v1/batchOrders", first_headers, first_body, "recvWindow=60000")
        if outcome(first) not in ((503, -1001), (503, -1008)):
            break
        time.sleep(RETRY_PAUSE_S)
    assert first.status_code == 200 and all(o["status"] == "EXPIRED" for o in first.json()), first.text[:300]
    for i in range(DEDUP_WINDOW // BATCH):  # spread over the nodes: each charges its own tokens
        r = send_signed(http, cluster.url(cluster.ids[i % 4]), keys, "POST", "/api/v1/batchOrders", batch(f"roll{i}"))
        assert r.status_code == 200, r.text[:300]
    # The reads below go to any node: each must have applied the last batch
    # (the node that answered it had; another may be a block behind).
    cluster.wait_converged(cluster.ids, height_min=int(r.headers["X-DEX-BLOCK-HEIGHT"]))
    with Client(cluster.urls, keys) as victim:
        with pytest.raises(Exception) as gone:  # out of the window: the dedup alone would place it again
            victim.get_order("BTCUSDT", client_order_id="first-0")
        assert getattr(gone.value, "code", None) == -2013, gone.value

        replays = [send(http, cluster.url(n), "POST", "/api/v1/batchOrders", first_headers, first_body, "recvWindow=60000") for n in cluster.ids]

        codes = {outcome(r) for r in replays}
        assert codes <= {(400, REPLAYED), (400, EXPIRED)}, [r.text[:200] for r in replays]
        with pytest.raises(Exception) as still_gone:
            victim.get_order("BTCUSDT", client_order_id="first-0")
        assert getattr(still_gone.value, "code", None) == -2013


def test_a_transfer_retried_under_its_client_transfer_id_executes_once_on_any_node(cluster: Cluster, http: httpx.Client) -> None:
    keys = Keypair.generate()
    leader = cluster.wait_leader()
    nodes = [leader] + [n for n in cluster.ids if n != leader]

    def transfer(path: str, node: str, amount: str, tid: str) -> httpx.Response:
        body = json.dumps({"asset": "USDT", "amount": amount, "clientTransferId": tid}).encode()
        return send_signed(http, cluster.url(node), keys, "POST", path, body)

    deposits = [transfer("/api/v1/deposit", n, "50", "dep-1") for n in nodes]
    withdrawals = [transfer("/api/v1/withdraw", n, "20", "wd-1") for n in reversed(nodes)]
    other_amount = transfer("/api/v1/withdraw", nodes[1], "30", "wd-1")  # the id names the transfer, whatever it says now
    bad_id = transfer("/api/v1/deposit", nodes[0], "1", "é")

    assert [r.status_code for r in deposits + withdrawals] == [200] * 8, [r.text for r in deposits + withdrawals]
    assert [r.json().get("duplicate", False) for r in deposits] == [False, True, True, True]
    assert len({r.json()["blockHeight"] for r in deposits}) == 1
    assert [r.json().get("duplicate", False) for r in withdrawals] == [False, True, True, True]
    assert {r.json()["free"] for r in withdrawals} == {withdrawals[0].json()["free"]}
    assert other_amount.status_code == 200 and other_amount.json()["duplicate"] and float(other_amount.json()["amount"]) == 20.0
    assert outcome(bad_id) in {(400, -1100), (400, -1102)}
    with Client(cluster.urls, keys) as me:
        assert float(usdt_free(me)) == 30.0
        # The client sends an id of its own on every transfer: two calls are two transfers.
        me.deposit("USDT", "5")
        me.deposit("USDT", "5")
        assert float(usdt_free(me)) == 40.0
        assert me.withdraw("USDT", "1", client_transfer_id="cli-1")["clientTransferId"] == "cli-1"
        assert me.withdraw("USDT", "1", client_transfer_id="cli-1")["duplicate"] is True
        assert float(usdt_free(me)) == 39.0
