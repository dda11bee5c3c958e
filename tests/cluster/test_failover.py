"""Faults while clients trade: the leader SIGKILLed mid-stream; half the cluster gone.

Acknowledged means the node answered 200 with an orderId: that order must be
in the chain of every surviving node, exactly once, with that orderId. An
answer of 503 after retries means "outcome unknown": the order may or may
not be in the chain, but never twice. Clients retry with the same client
order id (dex.client.Client does), which the replicated dedup makes safe.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from cluster import local
from dex.auth import Keypair
from dex.client import Client, DexError
from tests.cluster.harness import Cluster, observe_constant, signed_request

TRADERS = 4
ACKS_BEFORE_KILL_MIN = 60
ACKS_AFTER_KILL_MIN = 60
ACKS_TIMEOUT_S = 30.0
NEW_LEADER_BOUND_S = 5.0
TRADER_JOIN_TIMEOUT_S = 30.0  # a trader finishes its request in flight: retries are bounded (Client.retries)
PRICE = "50000"
QUANTITY = "0.001"


@dataclass
class Ledger:
    """What the traders saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, int] = field(default_factory=dict)  # clientOrderId -> orderId
    unknown: dict[str, str] = field(default_factory=dict)  # clientOrderId -> last error (503 after retries)
    sent: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # anything else: the test fails on these

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def trade(index: int, urls: list[str], ledger: Ledger, stop: threading.Event) -> None:
    """Alternate a SELL from one account and a crossing BUY from another until stopped."""
    rotated = urls[index % len(urls) :] + urls[: index % len(urls)]  # each trader starts on another node
    seller = Client(rotated, Keypair.generate())
    buyer = Client(rotated[1:] + rotated[:1], Keypair.generate())
    try:
        seller.deposit("BTC", "100")
        buyer.deposit("USDT", "10000000")
        k = 0
        while not stop.is_set():
            for client, side in ((seller, "SELL"), (buyer, "BUY")):
                cid = f"t{index}-{k:05d}-{side[0]}"
                with ledger.lock:
                    ledger.sent.append(cid)
                try:
                    r = client.place_order("BTCUSDT", side, price=PRICE, quantity=QUANTITY, client_order_id=cid)
                except DexError as e:
                    with ledger.lock:
                        if e.status == 503:
                            ledger.unknown[cid] = str(e)
                        else:
                            ledger.failures.append(f"{cid}: {e}")
                    continue
                with ledger.lock:
                    if r.get("clientOrderId") != cid or not isinstance(r.get("orderId"), int):
                        ledger.failures.append(f"{cid}: unexpected answer {r}")
                    else:
                        ledger.acked[cid] = r["orderId"]
            k += 1
    except Exception as e:  # noqa: BLE001 - reported by the test, not lost in a thread
        with ledger.lock:
            ledger.failures.append(f"trader {index}: {type(e).__name__}: {e}")
    finally:
        seller.close()
        buyer.close()


def test_leader_sigkill_while_trading_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=trade, args=(i, cluster.urls, ledger, stop), daemon=True) for i in range(TRADERS)]
    for t in threads:
        t.start()
    try:
        local.wait_for(lambda: ledger.count() >= ACKS_BEFORE_KILL_MIN or ledger.failures, ACKS_TIMEOUT_S, what=f"{ACKS_BEFORE_KILL_MIN} acknowledged orders")
        assert not ledger.failures, ledger.failures
        old = cluster.wait_leader()

        killed_at = time.monotonic()
        cluster.kill(old)
        acks_at_kill = ledger.count()
        survivors = [n for n in cluster.ids if n != old]
        new = cluster.wait_leader(survivors, not_id=old, timeout_s=NEW_LEADER_BOUND_S)
        election_s = time.monotonic() - killed_at

        local.wait_for(
            lambda: ledger.count() >= acks_at_kill + ACKS_AFTER_KILL_MIN or ledger.failures,
            ACKS_TIMEOUT_S,
            what=f"{ACKS_AFTER_KILL_MIN} more acknowledged orders after killing {old}",
        )
    finally:
        stop.set()
        for t in threads:
            t.join(TRADER_JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a trader is stuck"
    assert not ledger.failures, ledger.failures
    assert election_s <= NEW_LEADER_BOUND_S
    assert new != old

    head = cluster.wait_converged(survivors)
    reference = cluster.headers(survivors[0], head.height)
    for n in survivors[1:]:
        assert cluster.headers(n, head.height) == reference, f"{n}'s chain differs from {survivors[0]}'s"
    accepted = cluster.accepted_orders(survivors[0], head.height)
    sent = set(ledger.sent)
    strangers = [a for a in accepted if a.client_order_id not in sent]
    assert not strangers, f"the chain holds orders no trader sent: {strangers[:5]}"
    per_cid = Counter(a.client_order_id for a in accepted)
    duplicated = {cid: n for cid, n in per_cid.items() if n > 1}
    assert not duplicated, f"client order ids accepted more than once: {duplicated}"
    in_chain = {a.client_order_id: a.order_id for a in accepted}
    lost = {cid: oid for cid, oid in ledger.acked.items() if cid not in in_chain}
    assert not lost, f"{len(lost)} acknowledged orders are not in the chain: {sorted(lost.items())[:10]}"
    wrong = {cid: (oid, in_chain[cid]) for cid, oid in ledger.acked.items() if in_chain[cid] != oid}
    assert not wrong, f"acknowledged orderId differs from the chain's: {wrong}"
    print(
        f"leader {old} killed, {new} elected in {election_s:.2f}s; {len(ledger.sent)} sent, {len(ledger.acked)} acked, "
        f"{len(ledger.unknown)} unknown, {len(accepted)} in the chain at height {head.height}"
    )

    cluster.start(old)
    assert cluster.wait_converged(cluster.ids, height_min=head.height) == head


# --- half the cluster gone --------------------------------------------------

NO_QUORUM_TIMEOUT_S = 5.0
OBSERVE_S = 2.0


@pytest.mark.parametrize("victims", ["leader-and-follower", "two-followers"])
def test_two_of_four_killed_refuses_writes_then_resumes(cluster: Cluster, victims: str) -> None:
    keys = Keypair.generate()
    with Client(cluster.urls, keys) as c:
        c.deposit("USDT", "1000000")
        c.place_order("BTCUSDT", "BUY", price="100", quantity="0.01", client_order_id="before")
    leader = cluster.wait_leader()
    followers = [n for n in cluster.ids if n != leader]
    killed = [leader, followers[0]] if victims == "leader-and-follower" else followers[:2]
    survivors = [n for n in cluster.ids if n not in killed]
    before = cluster.wait_converged(cluster.ids)

    for n in killed:
        cluster.kill(n)
    local.wait_for(
        lambda: all((s := cluster.self_status(n)) is not None and not s["hasQuorum"] for n in survivors),
        NO_QUORUM_TIMEOUT_S,
        what=f"{', '.join(survivors)} to see that they have no quorum",
    )

    for i, n in enumerate(survivors):
        with Client(cluster.url(n), keys, retries=1) as one_try:
            with pytest.raises(DexError) as refused:
                one_try.place_order("BTCUSDT", "BUY", price="100", quantity="0.01", client_order_id=f"no-quorum-{i}")
        assert refused.value.status == 503, refused.value
        raw = signed_request(cluster.http, keys, "POST", cluster.url(n), "/api/v1/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "100", "quantity": "0.01", "newClientOrderId": f"no-quorum-raw-{i}",
        })
        assert raw.status_code == 503, (n, raw.status_code, raw.text)
        assert raw.headers.get("Retry-After", "").isdigit(), (n, dict(raw.headers))
        body = raw.json()
        assert set(body) == {"code", "msg"} and isinstance(body["code"], int) and body["code"] < 0 and body["msg"], body

    # Observation window (not a wait for a condition): nothing may commit without a quorum.
    observe_constant(lambda: cluster.heads(survivors), OBSERVE_S)
    assert all(h.height == before.height for h in cluster.heads(survivors).values())

    cluster.start(killed[0])
    live = survivors + [killed[0]]
    cluster.wait_leader(live)
    with Client([cluster.url(n) for n in live], keys) as c:
        after = c.place_order("BTCUSDT", "BUY", price="100", quantity="0.01", client_order_id="after")
    assert after["status"] == "NEW" and after["blockHeight"] > before.height
    cluster.wait_converged(live, height_min=after["blockHeight"])
