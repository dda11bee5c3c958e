"""Cluster status and health: this node's view (from the ledger port) and
every node's, polled over HTTP (dex.api.peers.Peers)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from dex.api.deps import NodeDep

router = APIRouter(tags=["cluster"])

_ROLES = {0: "follower", 1: "candidate", 2: "leader"}


def node_status(node) -> dict:
    """This node's own view of Raft, its applied head and its load."""
    s = node.port.status()
    head = s["head"]
    return {
        "id": node.node_id,
        "role": _ROLES.get(s["state"], "unknown"),
        "term": s["term"],
        "leader": s["leader"],
        "hasQuorum": s["hasQuorum"],
        "commitIndex": s["commitIndex"],
        "lastApplied": s["lastApplied"],
        "headHeight": 0 if head is None else head.height,
        "headHash": s["headHash"].hex(),
        "headTime": 0 if head is None else head.time_ms,
        "stateHash": (head.state_hash.hex() if head is not None else ""),
        "pendingCommands": s["pendingCommands"],
        "inflightBlocks": s["inflightBlocks"],
        "commitRatePerS": s["commitRatePerS"],  # commands per busy second, measured by admission
        "shedRequests": s["shedRequests"],  # refused 503 -1008 by admission since start
        "commitMsP50": _p50(s["commitMsRecent"]),  # the leader's, proposal to apply (null on a follower)
        # Every node's own: the block's time (sealed by the leader) to its apply here.
        "applyMsP50": _p50(s["applyMsRecent"]),
        "blockWaitMsP50": _p50(s["blockWaitMsRecent"]),
        "reachable": True,
        "apiUrl": node.me.api_url,
        "publicUrl": node.me.public_api_url,  # where a browser reaches it (the dashboard moves there)
        "uptimeS": round(time.monotonic() - node.started_s, 1),
        "engine": s["engine"],  # which matching engine runs: "compiled" (Cython) or "pure" (docs/ENGINE.md)
        "store": node.store.status() if node.store is not None else {"enabled": False},
    }


async def nodes_status(node) -> dict:
    """Every node's status (peers polled at once), and whether heads agree."""
    mine = node_status(node)
    nodes = await node.peers.peers_status(mine)
    heads = {n.get("headHeight") for n in nodes if n.get("reachable")}
    return {
        "node": node.node_id,
        "leader": mine["leader"],
        "term": mine["term"],
        "hasQuorum": mine["hasQuorum"],
        "nodes": nodes,
        "headsAgree": len({(n.get("headHeight"), n.get("headHash")) for n in nodes if n.get("reachable")}) == 1,
        "heights": sorted(h for h in heads if h is not None),
    }


def _p50(samples) -> float | None:
    values = sorted(samples)
    return round(values[len(values) // 2], 2) if values else None


@router.get("/healthz", summary="Liveness")
async def healthz(node: NodeDep):
    return {"status": "ok", "node": node.node_id}


@router.get("/api/v1/cluster/self", summary="This node's own view of Raft and its chain")
async def cluster_self(node: NodeDep):
    return node_status(node)


@router.get("/api/v1/cluster/status", summary="Every node: role, term, leader, indexes, head, state hash, reachability, quorum")
async def cluster_status(node: NodeDep):
    return await nodes_status(node)
