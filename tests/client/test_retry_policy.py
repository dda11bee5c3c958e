"""The retry and failover policy both transports share (`_Nodes._attempts`),
driven step by step with made-up outcomes: which node each attempt goes to,
that every retry of an order carries the same body (so the same client order
id), when it gives up, and what it raises."""

from __future__ import annotations

import json

import httpx
import pytest

from dex.auth import Keypair
from dex.client import RETRIES_MAX, DexError, RequestSpec, _Nodes, _Send, _Sleep, _order_body

URLS = ["http://a", "http://b", "http://c"]
REQUEST = httpx.Request("POST", "http://a/api/v1/order")


def response(status: int, doc: object, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=doc, headers=headers, request=REQUEST)


def drive(nodes: _Nodes, spec: RequestSpec, outcomes: list, waits: list | None = None) -> tuple[list[_Send], object]:
    """Feed `outcomes` to the policy; the sends it made and what it returned (or
    raised); the waits it asked for go in `waits` when given."""
    steps = nodes._attempts(spec)
    sends: list[_Send] = []
    step = next(steps)
    feed = iter(outcomes)
    try:
        while True:
            if isinstance(step, _Sleep):
                assert 0 < step.seconds <= 1.0
                if waits is not None:
                    waits.append(step.seconds)
                step = steps.send(None)
                continue
            sends.append(step)
            step = steps.send(next(feed))
    except StopIteration as done:
        return sends, done.value
    except DexError as e:
        return sends, e


def order_spec() -> RequestSpec:
    body = _order_body("BTCUSDT", "BUY", "LIMIT", "50000", "0.01", None, None, False, None, None, "FULL")
    return RequestSpec("POST", "/api/v1/order", body=body, signed=True)


def test_dead_node_then_503_then_success_moves_on_and_resends_the_same_order() -> None:
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)
    outcomes = [httpx.ConnectError("refused"), response(503, {"code": -1001, "msg": "no leader"}), response(503, {"code": -1007, "msg": "timeout"}), response(200, {"orderId": 7})]
    sends, result = drive(nodes, order_spec(), outcomes)
    assert result == {"orderId": 7}
    assert [s.url.split("/api")[0] for s in sends] == ["http://a", "http://b", "http://c", "http://c"]  # a 503 on an odd attempt moves on
    ids = {json.loads(s.content)["newClientOrderId"] for s in sends}
    assert len(ids) == 1, "a retry carried another client order id"
    assert all("X-SIGNATURE" in s.headers for s in sends)


def test_a_4xx_is_raised_at_once_with_its_code() -> None:
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)
    sends, result = drive(nodes, order_spec(), [response(400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"})])
    assert len(sends) == 1
    assert isinstance(result, DexError) and result.code == -1013 and result.status == 400


def test_attempts_are_bounded_and_the_last_503_is_raised() -> None:
    nodes = _Nodes(URLS, Keypair.generate(), 4)
    sends, result = drive(nodes, order_spec(), [response(503, {"code": -1001, "msg": "no leader"})] * 10)
    assert len(sends) == 4
    assert isinstance(result, DexError) and result.code == -1001 and result.status == 503


def test_a_deposit_is_not_resent_after_an_unknown_outcome_but_is_after_a_refused_connection() -> None:
    spec = RequestSpec("POST", "/api/v1/deposit", body={"asset": "USDT", "amount": "1"}, signed=True, retry=False)
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)
    sends, result = drive(nodes, spec, [httpx.ReadTimeout("slow")])
    assert len(sends) == 1
    assert isinstance(result, DexError) and "outcome unknown" in result.msg

    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)
    sends, result = drive(nodes, spec, [httpx.ConnectError("refused"), response(200, {"free": "1"})])
    assert result == {"free": "1"} and [s.url.split("/api")[0] for s in sends] == ["http://a", "http://b"]

    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)
    sends, result = drive(nodes, spec, [response(503, {"code": -1007, "msg": "timeout"})])
    assert len(sends) == 1 and isinstance(result, DexError) and result.code == -1007


@pytest.mark.parametrize("retries", [1, 3])
def test_every_node_refusing_gives_no_node_answered(retries: int) -> None:
    nodes = _Nodes(URLS, None, retries)
    spec = RequestSpec("GET", "/api/v1/depth", params={"symbol": "BTCUSDT", "limit": 5, "x": None})
    sends, result = drive(nodes, spec, [httpx.ConnectError("refused")] * retries)
    assert len(sends) == retries and sends[0].url == "http://a/api/v1/depth?symbol=BTCUSDT&limit=5"
    assert isinstance(result, DexError) and result.code == -1001 and "no node answered" in result.msg


WITHDRAW = RequestSpec("POST", "/api/v1/withdraw", body={"asset": "USDT", "amount": "1"}, signed=True, retry=False)


@pytest.mark.parametrize("unknown", [
    httpx.ReadError("connection reset mid-request"),
    httpx.RemoteProtocolError("server disconnected without a response"),
    httpx.ReadTimeout("slow"),
    response(503, {"code": -1007, "msg": "The leader did not answer; execution status unknown."}),
])
def test_a_withdrawal_whose_outcome_is_unknown_is_not_sent_again_and_says_1007(unknown) -> None:
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)

    sends, result = drive(nodes, WITHDRAW, [unknown, response(200, {"free": "0"})])

    assert len(sends) == 1, "a withdrawal that may have executed was sent again"
    assert isinstance(result, DexError) and result.code == -1007 and result.status == 503


@pytest.mark.parametrize("not_executed", [
    httpx.ConnectError("refused"),
    httpx.ConnectTimeout("no SYN-ACK"),
    response(503, {"code": -1001, "msg": "The leader is unreachable; the request was not sent. Please try again."}),
    response(503, {"code": -1008, "msg": "overloaded"}),
    response(429, {"code": -1003, "msg": "too many requests"}, {"Retry-After": "1"}),
])
def test_a_withdrawal_that_provably_did_not_execute_is_sent_again(not_executed) -> None:
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)

    sends, result = drive(nodes, WITHDRAW, [not_executed, response(200, {"free": "0"})])

    assert result == {"free": "0"} and len(sends) == 2


def test_an_order_whose_outcome_is_unknown_is_retried_with_the_same_client_order_id() -> None:
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)

    sends, result = drive(nodes, order_spec(), [httpx.ReadError("reset"), response(503, {"code": -1007, "msg": "unknown"}), response(200, {"orderId": 9, "duplicate": True})])

    assert result == {"orderId": 9, "duplicate": True} and len(sends) == 3
    assert len({json.loads(s.content)["newClientOrderId"] for s in sends}) == 1


def test_a_shed_order_comes_back_when_the_node_says_in_ms_not_after_a_whole_second() -> None:
    """A -1008 carries Retry-After (whole seconds, at least 1) and X-DEX-SHED-MS
    (when the node admits again): the client waits the latter, never less than
    its doubling backoff (0.1 s, 0.2 s...), never more than BACKOFF_MAX_S."""
    shed = {"code": -1008, "msg": "Server is currently overloaded"}
    nodes = _Nodes(URLS, Keypair.generate(), RETRIES_MAX)
    outcomes = [
        response(503, shed, {"Retry-After": "1", "X-DEX-SHED-MS": "30"}),  # under the backoff: 0.1 s
        response(503, shed, {"Retry-After": "1", "X-DEX-SHED-MS": "350"}),  # over it (0.2 s): 0.35 s
        response(503, shed, {"Retry-After": "2", "X-DEX-SHED-MS": "5000"}),  # capped at BACKOFF_MAX_S
        response(503, shed, {"Retry-After": "1"}),  # no hint: Retry-After
        response(503, {"code": -1001, "msg": "no leader"}, {"Retry-After": "1", "X-DEX-SHED-MS": "5"}),  # not a shed: Retry-After
        response(200, {"orderId": 1}),
    ]
    waits: list[float] = []
    _, result = drive(nodes, order_spec(), outcomes, waits)
    assert result == {"orderId": 1}
    assert waits == [0.1, 0.35, 1.0, 1.0, 1.0]


def test_the_asked_wait_is_read_as_the_bench_reads_it_too() -> None:
    """dex.client.asked_wait_s, which bench/cluster.py's load generator also
    waits by: the ms hint on a -1008 only, else Retry-After, else nothing."""
    from dex.client import asked_wait_s

    assert asked_wait_s(-1008, "30", "1") == 0.03
    assert asked_wait_s(-1001, "30", "2") == 1.0  # not a shed: Retry-After, at most BACKOFF_MAX_S
    assert asked_wait_s(-1008, None, "1") == 1.0
    assert asked_wait_s(None, "30", None) is None and asked_wait_s(-1008, "soon", None) is None
