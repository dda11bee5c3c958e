"""A node cut off from the others' Raft traffic, then healed (real nodes, nft).

Pre-vote (dex/ledger/raft_fixes.py): while cut off, the node's election
timer runs out again and again but its pre-votes go unanswered, so its term
does not grow; when it returns it follows the leader it finds, which keeps
its role and its term, and it catches up.
"""

from __future__ import annotations

import pytest

from cluster import local
from dex.ledger.replica import RAFT_MAX_TIMEOUT_S
from tests.cluster.harness import Cluster, observe_constant
from tests.cluster.partition import cut_off, isolatable, skip_reason
from tests.cluster.test_recovery import place_orders

ORDERS = 20
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
