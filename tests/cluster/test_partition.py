"""A node cut off from the others' Raft traffic, then healed (real nodes, nft).

Pre-vote (dex/ledger/raft_fixes.py): while cut off, the node's election
timer runs out again and again but its pre-votes go unanswered, so its term
does not grow; when it returns it follows the leader it finds, which keeps
its role and its term, and it catches up.

A cut-off leader steps down within the election timeout, and after the heal
it catches up although its log holds entries it could not commit and the
majority went on for more than one 64 KiB append batch (the stale failure
replies of dex/ledger/raft_fixes.py's NextIndexGuard).
"""

from __future__ import annotations

import time

import pytest

from pysyncobj.utility import TcpUtility

from cluster import local
from dex.auth import Keypair
from dex.ledger.replica import RAFT_MAX_TIMEOUT_S
from tests.cluster.harness import Cluster, observe_constant, signed_request
from tests.cluster.partition import cut_off, isolatable, skip_reason
from tests.cluster.test_recovery import place_orders

ORDERS = 20
ORDERS_PAST_A_BATCH = 250  # single-order blocks of ~400 bytes: more than one 64 KiB batch
TRANSFER_TIMEOUT_S = 5.0
STEP_DOWN_TIMEOUT_S = 3 * RAFT_MAX_TIMEOUT_S  # the fallback is RAFT_MAX_TIMEOUT_S; slack for a loaded machine
CATCH_UP_TIMEOUT_S = 20.0
CUT_OBSERVE_S = 10 * RAFT_MAX_TIMEOUT_S  # many election timeouts on the cut-off node
HEAL_OBSERVE_S = 5 * RAFT_MAX_TIMEOUT_S

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=f"SKIPPED LOUDLY: {_SKIP}")


def _make_follower(cluster: Cluster, node_id: str) -> str:
    """Ensure node_id follows; return the leader."""
    leader = cluster.wait_leader()
    if leader == node_id:
        local.stop_node(cluster.cfg, node_id)
        leader = cluster.wait_leader([n for n in cluster.ids if n != node_id])
        cluster.start(node_id)
        cluster.wait_converged(cluster.ids)
    return leader


def _leader_and_term(cluster: Cluster, node_ids: list[str]) -> tuple[str | None, int | None]:
    status = cluster.self_status(node_ids[0])
    return (None, None) if status is None else (status["leader"], status["term"])


def test_a_follower_cut_off_for_many_election_timeouts_returns_without_deposing_the_leader(cluster: Cluster) -> None:
    loner = isolatable(cluster)
    leader = _make_follower(cluster, loner)
    majority = [n for n in cluster.ids if n != loner]
    first = place_orders(cluster, [cluster.url(leader)], ORDERS, "before")
    cluster.wait_converged(cluster.ids, height_min=first)
    term = cluster.self_status(leader)["term"]

    with cut_off(cluster, loner):
        local.wait_for(lambda: cluster.self_status(loner)["leader"] is None, 5 * RAFT_MAX_TIMEOUT_S, what=f"{loner} to lose its leader")
        last = place_orders(cluster, [cluster.url(n) for n in majority], ORDERS, "cut")
        observe_constant(lambda: (_leader_and_term(cluster, majority), cluster.self_status(loner)["term"]), CUT_OBSERVE_S)
        assert cluster.self_status(loner)["term"] == term, "the cut-off node raised its term"

    head = cluster.wait_converged(cluster.ids, height_min=last)
    assert cluster.headers(loner, head.height) == cluster.headers(leader, head.height)
    observe_constant(lambda: _leader_and_term(cluster, cluster.ids), HEAL_OBSERVE_S)
    assert _leader_and_term(cluster, cluster.ids) == (leader, term)


def _make_leader(cluster: Cluster, node_id: str) -> None:
    """Hand leadership to node_id with PySyncObj's own transfer (Raft's TimeoutNow)."""
    for _ in range(3):
        leader = cluster.wait_leader()
        if leader == node_id:
            return
        cluster.wait_converged(cluster.ids)
        utility = TcpUtility(password=cluster.cfg.secret(), timeout=TRANSFER_TIMEOUT_S)
        utility.executeCommand(cluster.cfg.node(leader).raft_address, ["transfer", cluster.cfg.node(node_id).raft_address])
        try:
            local.wait_for(lambda: cluster.leader_among(cluster.ids) == node_id, TRANSFER_TIMEOUT_S, what=f"{node_id} to lead")
        except TimeoutError:
            continue
    assert cluster.wait_leader() == node_id, f"could not make {node_id} the leader"


def test_a_cut_off_leader_steps_down_and_catches_up_past_its_uncommitted_tail(cluster: Cluster) -> None:
    old = isolatable(cluster)
    _make_leader(cluster, old)
    majority = [n for n in cluster.ids if n != old]
    first = place_orders(cluster, [cluster.url(old)], ORDERS, "before")
    cluster.wait_converged(cluster.ids, height_min=first)
    keys = Keypair.generate()

    with cut_off(cluster, old):
        # Requests it takes now go into its log and can never commit.
        for _ in range(2):
            r = signed_request(cluster.http, keys, "POST", cluster.url(old), "/api/v1/deposit", {"asset": "USDT", "amount": "1"})
            assert r.status_code == 503, f"a cut-off leader answered {r.status_code} {r.text[:200]}"
        local.wait_for(lambda: cluster.self_status(old)["role"] != "leader", STEP_DOWN_TIMEOUT_S, what=f"the cut-off leader {old} to step down")
        new = cluster.wait_leader(majority)
        term = cluster.self_status(new)["term"]
        last = place_orders(cluster, [cluster.url(new)], ORDERS_PAST_A_BATCH, "cut")
        assert cluster.self_status(old)["headHeight"] < first + 1 + ORDERS_PAST_A_BATCH // 2

    healed_s = time.monotonic()
    head = cluster.wait_converged(cluster.ids, height_min=last, timeout_s=CATCH_UP_TIMEOUT_S)
    print(f"the old leader caught up {time.monotonic() - healed_s:.1f} s after the heal ({head.height - first} blocks)")
    assert cluster.headers(old, head.height) == cluster.headers(new, head.height)
    assert _leader_and_term(cluster, cluster.ids) == (new, term)
