"""Cluster status and health."""

from __future__ import annotations

from fastapi import APIRouter

from dex.api.deps import NodeDep

router = APIRouter(tags=["cluster"])


@router.get("/healthz", summary="Liveness")
async def healthz(node: NodeDep):
    return {"status": "ok", "node": node.node_id}


@router.get("/api/v1/cluster/self", summary="This node's own view of Raft and its chain")
async def cluster_self(node: NodeDep):
    return node.self_status()


@router.get("/api/v1/cluster/status", summary="Every node: role, term, leader, indexes, head, state hash, reachability, quorum")
async def cluster_status(node: NodeDep):
    return await node.cluster_status()
