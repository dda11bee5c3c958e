"""Forwarding a signed request from a follower to the leader, and polling
peers for the cluster status.

A follower verifies a state-changing request where the user sent it (bad
signatures stop there; the rate limit is charged once), sends it to the
leader over HTTP as received with a MAC that vouches for the signed bytes
(dex/api/ratelimit.py), and answers only once it has applied the block that
holds it itself (so a read right after the answer sees it).

Honest answers when the forward fails (issue 10): -1001 DISCONNECTED
("please try again") only when the request provably never reached the
leader: no leader, the connection was refused or could not be made, or no
pooled connection was free (nothing was written). Anything after bytes may
have been written (a timeout, a connection reset mid-request, a garbage
answer) is -1007, outcome unknown: the request may have executed.

Bounds: FORWARDS_INFLIGHT_MAX concurrent forwards a node (more: 503 -1008),
HTTP_CONNECTIONS_MAX pooled connections, FORWARD_TIMEOUT_S a forward.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from dex.api.deps import verify_request
from dex.api.errors import DISCONNECTED, OVERLOADED, TIMEOUT, ApiError
from dex.api.ratelimit import FORWARD_MAC_HEADER, FORWARDED_HEADER, forward_key, forward_mac
from dex.ledger.port import REQUEST_TIMEOUT_S

FORWARD_TIMEOUT_S = REQUEST_TIMEOUT_S + 2.0  # the leader answers within REQUEST_TIMEOUT_S
APPLY_WAIT_S = 5.0  # a follower waiting to apply a block the leader applied
PEER_STATUS_TIMEOUT_S = 0.5
FORWARDS_INFLIGHT_MAX = 256  # a follower's concurrent forwards; more is 503 -1008
HTTP_CONNECTIONS_MAX = 64
FORWARDED_HEADERS = ("x-api-key", "x-timestamp", "x-signature", "content-type")
PASSED_ON_HEADERS = ("Retry-After", "X-DEX-BLOCK-HEIGHT")  # from the leader's answer to the client
# The request was never written to the leader: connecting failed, or no
# pooled connection was free in time.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
assert PEER_STATUS_TIMEOUT_S < FORWARD_TIMEOUT_S and HTTP_CONNECTIONS_MAX <= FORWARDS_INFLIGHT_MAX


class Forwarder:
    """This node's HTTP client to its peers: forwards and status polls."""

    def __init__(self, cfg, node_id: str, port, *, timeout_s: float = FORWARD_TIMEOUT_S) -> None:
        assert timeout_s > 0
        self.cfg = cfg
        self.timeout_s = timeout_s
        self.node_id = node_id
        self.port = port  # dex.ledger.port.LedgerPort: waits for this node's apply
        self.key = forward_key(cfg.secret())  # proves a forward came from a peer
        self.http: httpx.AsyncClient | None = None
        self.inflight = 0

    async def start(self) -> None:
        self.http = httpx.AsyncClient(
            timeout=self.timeout_s,
            limits=httpx.Limits(max_connections=HTTP_CONNECTIONS_MAX, max_keepalive_connections=HTTP_CONNECTIONS_MAX),
        )

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def forward(self, leader: str, method: str, path: str, query: str, headers: dict, body: bytes, signed_bytes: bytes):
        """Send a request to the leader as received; wait until this node has
        applied the block that holds it. `signed_bytes` are what this node
        verified the request's signature over (dex.api.deps): the forward MAC
        vouches for them. Returns (status, json, the leader's Retry-After and
        X-DEX-BLOCK-HEIGHT headers to pass on)."""
        if self.inflight >= FORWARDS_INFLIGHT_MAX:
            raise ApiError.unavailable(OVERLOADED, "Server is currently overloaded with forwarded requests. Please try again.")
        self.inflight += 1
        try:
            return await self._forward(leader, method, path, query, headers, body, signed_bytes)
        finally:
            self.inflight -= 1

    async def _forward(self, leader: str, method: str, path: str, query: str, headers: dict, body: bytes, signed_bytes: bytes):
        assert self.http is not None, "start first"
        url = f"{self.cfg.node(leader).api_url}{path}" + (f"?{query}" if query else "")
        headers = {k.lower(): v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}
        headers[FORWARDED_HEADER] = self.node_id
        headers[FORWARD_MAC_HEADER] = forward_mac(self.key, headers.get("x-api-key", ""), headers.get("x-signature", ""), signed_bytes)
        try:
            r = await self.http.request(method, url, content=body, headers=headers)
        except NEVER_SENT as e:
            raise ApiError.unavailable(DISCONNECTED, f"The leader ({leader}) is unreachable; the request was not sent. Please try again.") from e
        except httpx.HTTPError as e:  # a timeout, a reset or a broken answer: it may have executed
            raise ApiError.unavailable(
                TIMEOUT,
                f"The leader ({leader}) did not answer ({type(e).__name__}); execution status unknown. "
                "Query the order, or retry with the same client order id.",
            ) from e
        try:
            payload = r.json()
        except ValueError:
            raise ApiError.unavailable(TIMEOUT, "The leader answered garbage; execution status unknown.") from None
        height = payload.get("blockHeight") if isinstance(payload, dict) else None
        if height is None and r.headers.get("X-DEX-BLOCK-HEIGHT", "").isdigit():
            height = int(r.headers["X-DEX-BLOCK-HEIGHT"])
        if r.status_code == 200 and isinstance(height, int):
            if not await self.port.wait_applied(height, APPLY_WAIT_S):
                raise ApiError.unavailable(TIMEOUT, f"Committed in block {height}, which this node has not applied yet.")
        return r.status_code, payload, {k: r.headers[k] for k in PASSED_ON_HEADERS if k in r.headers}

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


async def forward_if_follower(node, request: Request):
    """None on the leader; the leader's answer (as a response) on a follower."""
    leader = await node.port.wait_leader()
    if leader is None:
        raise ApiError.unavailable(DISCONNECTED, "No leader: the cluster is electing one or has lost quorum. Please try again.")
    if leader == node.node_id:
        return None
    signed = await verify_request(request)  # here, where the user sent it: bad signatures stop here, the rate limit is charged once
    if signed.from_peer:  # a genuine forward (its MAC checks): never forwarded twice
        raise ApiError.unavailable(DISCONNECTED, "Forwarded to a node that is no longer the leader. Please try again.")
    # A client's own X-DEX-FORWARDED (no valid MAC) means nothing: the forward
    # carries only FORWARDED_HEADERS and this node's own forward headers.
    body = await request.body()
    status, payload, headers = await node.forwarder.forward(
        leader, request.method, request.url.path, request.url.query, dict(request.headers), body, signed.auth.payload
    )
    return JSONResponse(payload, status_code=status, headers=headers or None)
