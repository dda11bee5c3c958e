"""One dex node: a Raft member (PySyncObj) and its FastAPI server in one process.

`dex node --config configs/local-4.toml --id n1` calls `run`. The node refuses
to start without the cluster secret. Orders may arrive at any node: the
leader queues them in its block builder; a follower forwards the request, as
received and still signed by its user, to the leader over HTTP, then answers
only once it has applied the block that holds the order itself (see
docs/CLUSTER.md for why HTTP forwarding rather than Raft's own).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import logging.handlers
import threading
import signal
import sys
import time
from pathlib import Path

import httpx

from dex.api.errors import DISCONNECTED, ILLEGAL_CHARS, OVERLOADED, PAYLOAD_TOO_LARGE, TIMEOUT, ApiError
from dex.api.history import History
from dex.api.ratelimit import FORWARD_MAC_HEADER, forward_key, forward_mac
from dex.config import ClusterConfig, ConfigError, load_cluster
from dex.ledger.builder import BlockBuilder, NotLeader, Overloaded, TooLarge, Unknown
from dex.ledger.codec import Auth, CodecError
from dex.ledger.replica import Replica
from dex.store.writer import for_node as store_writer

log = logging.getLogger("dex.node")

REQUEST_TIMEOUT_S = 5.0  # from queueing a command to its block applied
FORWARD_TIMEOUT_S = REQUEST_TIMEOUT_S + 2.0
APPLY_WAIT_S = 5.0  # a follower waiting to apply a block the leader applied
PEER_STATUS_TIMEOUT_S = 0.5
LOG_BYTES_MAX = 16 * 1024 * 1024  # node.log rotates here; a flood of odd requests cannot fill the disk
LOG_FILES_KEPT = 3
FORWARDS_INFLIGHT_MAX = 256  # a follower's concurrent forwards; more is 503 -1008
_ROLES = {0: "follower", 1: "candidate", 2: "leader"}


class Node:
    def __init__(self, cfg: ClusterConfig, node_id: str) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self.me = cfg.node(node_id)
        self.history = History(cfg.markets)
        self.block_listeners: list = []  # extra listeners (streams) added by the API
        self.replica = Replica(cfg, node_id, listeners=[self.history, self._on_block])
        self.builder = BlockBuilder(self.replica, cfg)
        # The trade store's writer (dex/store): fed a cheap wake-up per block.
        self.store = store_writer(cfg, node_id, self.replica.chain, self.replica)
        if self.store is not None:
            self.block_listeners.append(self.store.notify)
        self.http: httpx.AsyncClient | None = None
        self.forwards_inflight = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        # Requests waiting for this node to apply a height: (height, seq, future).
        self._waiters: list = []
        self._waiters_lock = threading.Lock()
        self._waiter_seq = itertools.count()
        self.started_s = time.monotonic()
        self.forward_key = forward_key(cfg.secret())  # proves a forward came from a peer (dex/api/ratelimit.py)

    def _on_block(self, header, block_hash, proposal, results) -> None:
        for listener in self.block_listeners:
            listener(header, block_hash, proposal, results)
        due = []
        with self._waiters_lock:
            while self._waiters and self._waiters[0][0] <= header.height:
                due.append(heapq.heappop(self._waiters)[2])
        if due and self.loop is not None:
            self.loop.call_soon_threadsafe(_release, due)

    def request_used(self, public_key: bytes, payload: bytes) -> bool:
        """True when a committed block already carried this signed request."""
        return self.replica.guard.used(public_key, payload)

    async def wait_applied(self, height: int, timeout_s: float) -> bool:
        """Wait, without a thread, until this node has applied `height`."""
        future = self.loop.create_future()
        with self._waiters_lock:
            if self.replica.height >= height:
                return True
            heapq.heappush(self._waiters, (height, next(self._waiter_seq), future))
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except asyncio.TimeoutError:
            return self.replica.height >= height

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.http = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        if self.store is not None:
            self.store.start()

    async def stop(self) -> None:
        self.builder.stop()
        if self.store is not None:
            await asyncio.to_thread(self.store.stop)  # before the chain it reads is closed
        if self.http is not None:
            await self.http.aclose()
        self.replica.chain.flush()
        self.replica.destroy()

    # --------------------------------------------------------------- status

    def self_status(self) -> dict:
        r = self.replica
        status = r.getStatus()
        with r.lock:
            head = r.applied
            head_hash = r.applied_hash
        return {
            "id": self.node_id,
            "role": _ROLES.get(status["state"], "unknown"),
            "term": status["raft_term"],
            "leader": r.leader_id,
            "hasQuorum": bool(status["has_quorum"]),
            "commitIndex": status["commit_idx"],
            "lastApplied": status["last_applied"],
            "headHeight": 0 if head is None else head.height,
            "headHash": head_hash.hex(),
            "headTime": 0 if head is None else head.time_ms,
            "stateHash": (head.state_hash.hex() if head is not None else ""),
            "pendingCommands": self.builder.pending_commands,
            "inflightBlocks": self.builder.inflight_blocks,
            "commitMsP50": _p50(self.builder.commit_ms_recent),
            "blockWaitMsP50": _p50(self.builder.wait_ms_recent),
            "reachable": True,
            "apiUrl": self.me.api_url,
            "uptimeS": round(time.monotonic() - self.started_s, 1),
            "store": self.store.status() if self.store is not None else {"enabled": False},
        }

    async def cluster_status(self) -> dict:
        mine = self.self_status()

        async def peer(n):
            if n.id == self.node_id:
                return mine
            try:
                r = await self.http.get(f"{n.api_url}/api/v1/cluster/self", timeout=PEER_STATUS_TIMEOUT_S)
                r.raise_for_status()
                return r.json()
            except (httpx.HTTPError, ValueError):
                return {"id": n.id, "role": "unreachable", "reachable": False, "apiUrl": n.api_url}

        nodes = await asyncio.gather(*(peer(n) for n in self.cfg.nodes))
        heads = {n.get("headHeight") for n in nodes if n.get("reachable")}
        return {
            "node": self.node_id,
            "leader": mine["leader"],
            "term": mine["term"],
            "hasQuorum": mine["hasQuorum"],
            "nodes": nodes,
            "headsAgree": len({(n.get("headHeight"), n.get("headHash")) for n in nodes if n.get("reachable")}) == 1,
            "heights": sorted(h for h in heads if h is not None),
        }

    # ------------------------------------------------------------- commands

    async def wait_leader(self) -> str | None:
        """The leader's id, waiting up to leader_wait_ms during an election."""
        deadline = time.monotonic() + self.cfg.leader_wait_ms / 1000
        while True:
            leader = self.replica.leader_id
            if leader == self.node_id and not self.replica.hasQuorum:
                return None  # a leader that has not heard from a majority refuses at once (docs/CLUSTER.md)
            if leader is not None:
                return leader
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)

    async def submit(self, commands: list, auth: Auth | None):
        """Replicate commands in one block (this node must lead). Returns
        (height, block_hash, results) once the block is applied here."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(height, block_hash, results, error):
            loop.call_soon_threadsafe(_settle, future, (height, block_hash, results), error)

        if not self.replica.hasQuorum:
            raise ApiError.unavailable(DISCONNECTED, "The leader has lost its quorum; nothing can commit. Please try again.")
        try:
            self.builder.submit(commands, auth, done)
        except Overloaded as e:
            raise ApiError.unavailable(OVERLOADED, f"Server is currently overloaded: {e}.") from e
        except TooLarge as e:  # never retryable: send fewer orders per request
            raise ApiError(413, PAYLOAD_TOO_LARGE, f"Request too large for a block: {e}. Send fewer orders per batch.") from e
        except CodecError as e:  # the routes check their fields first; this is the backstop
            raise ApiError(400, ILLEGAL_CHARS, f"A parameter cannot be recorded in a block ({e}).") from e
        try:
            return await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except NotLeader as e:
            raise ApiError.unavailable(DISCONNECTED, "Leadership changed before the order was proposed. Please try again.") from e
        except (Unknown, asyncio.TimeoutError) as e:
            raise ApiError.unavailable(
                TIMEOUT,
                "Timeout waiting for the block to commit; execution status unknown. "
                "Retry with the same client order id: it will not create a second order.",
            ) from e

    async def forward(self, leader: str, method: str, path: str, query: str, headers: dict, body: bytes, signed_bytes: bytes):
        """Send a request to the leader as received; wait until this node has
        applied the block that holds it. `signed_bytes` are what this node
        verified the request's signature over (dex.api.deps): the forward MAC
        vouches for them. Returns (status, json)."""
        if self.forwards_inflight >= FORWARDS_INFLIGHT_MAX:
            raise ApiError.unavailable(OVERLOADED, "Server is currently overloaded with forwarded requests. Please try again.")
        self.forwards_inflight += 1
        try:
            return await self._forward(leader, method, path, query, headers, body, signed_bytes)
        finally:
            self.forwards_inflight -= 1

    async def _forward(self, leader: str, method: str, path: str, query: str, headers: dict, body: bytes, signed_bytes: bytes):
        url = f"{self.cfg.node(leader).api_url}{path}" + (f"?{query}" if query else "")
        headers = {k.lower(): v for k, v in headers.items() if k.lower() in ("x-api-key", "x-timestamp", "x-signature", "content-type")}
        headers["x-dex-forwarded"] = self.node_id
        headers[FORWARD_MAC_HEADER] = forward_mac(self.forward_key, headers.get("x-api-key", ""), headers.get("x-signature", ""), signed_bytes)
        try:
            r = await self.http.request(method, url, content=body, headers=headers)
        except httpx.TimeoutException as e:
            raise ApiError.unavailable(TIMEOUT, "Timeout waiting for the leader; execution status unknown. Retry with the same client order id.") from e
        except httpx.HTTPError as e:
            raise ApiError.unavailable(DISCONNECTED, f"The leader ({leader}) is unreachable. Please try again.") from e
        try:
            payload = r.json()
        except ValueError:
            raise ApiError.unavailable(DISCONNECTED, "The leader answered garbage. Please try again.") from None
        height = payload.get("blockHeight") if isinstance(payload, dict) else None
        if height is None and r.headers.get("X-DEX-BLOCK-HEIGHT", "").isdigit():
            height = int(r.headers["X-DEX-BLOCK-HEIGHT"])
        if r.status_code == 200 and isinstance(height, int):
            applied = await self.wait_applied(height, APPLY_WAIT_S)
            if not applied:
                raise ApiError.unavailable(TIMEOUT, f"Committed in block {height}, which this node has not applied yet.")
        return r.status_code, payload, r.headers.get("Retry-After")


def _p50(samples) -> float | None:
    values = sorted(samples)
    return round(values[len(values) // 2], 2) if values else None


def _release(futures: list) -> None:
    for future in futures:
        if not future.done():
            future.set_result(True)


def _settle(future: asyncio.Future, value, error) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


LEDGER_FILE_PREFIXES = ("raft.", "blocks.dat")  # the Raft log, term, dump and the chain


def _move_ledger_aside(data_dir: Path) -> None:
    """--rebuild: move the node's ledger files (not its log or pid) into
    `damaged-<time>/` so it starts empty and catches up from the cluster."""
    files = [p for p in data_dir.iterdir() if p.is_file() and p.name.startswith(LEDGER_FILE_PREFIXES)] if data_dir.exists() else []
    if not files:
        log.warning("--rebuild: %s holds no ledger files; starting as usual", data_dir)
        return
    aside = data_dir / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir()
    for p in files:
        p.rename(aside / p.name)
    log.warning("--rebuild: moved %d ledger files of %s into %s; this node starts empty and catches up from the cluster", len(files), data_dir, aside)


def run(config_path: str | Path, node_id: str, *, log_file: str | Path | None = None, rebuild: bool = False) -> int:
    """Run one node until SIGTERM. `log_file`: log there, rotated at
    LOG_BYTES_MAX with LOG_FILES_KEPT old files (else to stderr). `rebuild`:
    move the node's data directory aside first, so it starts empty and
    receives the chain from the cluster."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_BYTES_MAX, backupCount=LOG_FILES_KEPT)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {node_id} %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        cfg = load_cluster(config_path)
        cfg.node(node_id)
        cfg.secret()
    except (ConfigError, OSError, KeyError, ValueError) as e:  # tomllib's errors are ValueErrors
        log.error("refusing to start: %s", e)
        return 2
    import uvicorn

    from dex.api.app import create_app
    from dex.api.server import BoundedHttpProtocol
    from dex.api.streams import WS_FRAME_BYTES_CLOSE, WS_PING_INTERVAL_S, WS_PING_TIMEOUT_S

    if rebuild:
        _move_ledger_aside(cfg.node_data_dir(node_id))
    node = Node(cfg, node_id)  # refuses (exits) on damaged data: dex/ledger/replica.py EXIT_*
    app = create_app(node)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=node.me.api_host, port=node.me.api_port, log_level="warning", access_log=False,
            lifespan="on", loop="uvloop", http=BoundedHttpProtocol,
            ws_ping_interval=WS_PING_INTERVAL_S, ws_ping_timeout=WS_PING_TIMEOUT_S, ws_max_size=WS_FRAME_BYTES_CLOSE,
        )
    )
    log.info("node %s: raft %s, api %s", node_id, node.me.raft_address, node.me.api_url)
    if not cfg.verify_signatures:
        log.warning("verify_signatures = false: signed requests are NOT verified (benchmark config)")
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
    return 0
