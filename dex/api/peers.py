"""This node's HTTP client to its peers, for the cluster status: each
peer's /api/v1/cluster/self, polled with a short timeout. (Requests to the
leader go through the forward channel, dex/api/channel.py, not here.)"""

from __future__ import annotations

import asyncio

import httpx

PEER_STATUS_TIMEOUT_S = 0.5
HTTP_CONNECTIONS_MAX = 16


class Peers:
    def __init__(self, cfg, node_id: str) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.http = httpx.AsyncClient(
            timeout=PEER_STATUS_TIMEOUT_S, trust_env=False,
            limits=httpx.Limits(max_connections=HTTP_CONNECTIONS_MAX, max_keepalive_connections=HTTP_CONNECTIONS_MAX),
        )

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def peer_status(self, node) -> dict:
        """A peer's /api/v1/cluster/self, or an unreachable placeholder."""
        assert self.http is not None, "start first"
        try:
            r = await self.http.get(f"{node.api_url}/api/v1/cluster/self", timeout=PEER_STATUS_TIMEOUT_S)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError):
            return {"id": node.id, "role": "unreachable", "reachable": False, "apiUrl": node.api_url, "publicUrl": node.public_api_url}

    async def peers_status(self, mine: dict) -> list[dict]:
        """Every node's status, in config order; this node's is `mine`."""
        return list(await asyncio.gather(*(
            _done(mine) if n.id == self.node_id else self.peer_status(n) for n in self.cfg.nodes
        )))


async def _done(value):
    return value
