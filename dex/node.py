"""One dex node: a Raft member (PySyncObj) and its FastAPI server in one
process. This module is the composition root: what a node is made of and how
the pieces connect, nothing else.

    Replica (dex.ledger.replica)      Raft state machine: engine + chain
    BlockBuilder (dex.ledger.builder) the leader's batching of commands into blocks
    LedgerPort (dex.ledger.port)      the API's only way to the replica: submit, wait, typed reads
    History (dex.api.history)         recent trades and orders, a read model fed by blocks
    store writer (dex.store)          the trade store, woken by blocks (optional)
    Forwarder (dex.api.forward)       a follower's HTTP client to the leader and peers
    TradeCounter (dex.api.metrics)    trades since start, for /metrics
    Hub (dex.api.streams)             the WebSocket streams, fed by blocks

Every block listener is registered here, in the order they run after each
applied block (Raft thread): History (before the replica starts: it catches
up from the chain), the store, the trade counter, the stream hub, and last
the port, which releases the requests waiting for the block, so an answer
never goes out before the read models hold its block.

`dex node --config configs/local-4.toml --id n1` calls `run`. The node refuses
to start without the cluster secret. A request's path through these modules
is in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from dex.api.forward import Forwarder
from dex.api.history import History
from dex.api.metrics import TradeCounter
from dex.api.streams import Hub
from dex.config import ClusterConfig, ConfigError, load_cluster
from dex.ledger.builder import BlockBuilder
from dex.ledger.port import LedgerPort
from dex.ledger.replica import Replica
from dex.store.writer import for_node as store_writer

log = logging.getLogger("dex.node")


class Node:
    def __init__(self, cfg: ClusterConfig, node_id: str) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self.me = cfg.node(node_id)
        self.started_s = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.history = History(cfg.markets)
        self.block_listeners: list = []  # after History, in order (see the module docstring)
        self.replica = Replica(cfg, node_id, listeners=[self.history, self._on_block])
        self.builder = BlockBuilder(self.replica, cfg)
        self.port = LedgerPort(self.replica, self.builder, leader_wait_ms=cfg.leader_wait_ms)
        self.store = store_writer(cfg, node_id, self.replica.chain, self.replica)
        self.forwarder = Forwarder(cfg, node_id, self.port)
        self.forward_key = self.forwarder.key  # dex.api.deps checks a peer's forward MAC with it
        self.trade_counter = TradeCounter()
        self.hub = Hub(self)
        if self.store is not None:
            self.block_listeners.append(self.store.notify)
        self.block_listeners += [self.trade_counter, self.hub.on_block, self.port.on_block]

    def _on_block(self, header, block_hash, proposal, results) -> None:
        for listener in self.block_listeners:
            listener(header, block_hash, proposal, results)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.port.bind_loop(self.loop)
        await self.forwarder.start()
        if self.store is not None:
            self.store.start()
        self.hub.attach()  # index the book as it stands; blocks from now on feed the streams

    async def stop(self) -> None:
        self.builder.stop()
        if self.store is not None:
            await asyncio.to_thread(self.store.stop)  # before the chain it reads is closed
        await self.forwarder.stop()
        self.replica.chain.flush()
        self.replica.destroy()


def run(config_path: str | Path, node_id: str) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {node_id} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
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
    from dex.api.streams import WS_FRAME_BYTES_CLOSE, WS_PING_INTERVAL_S, WS_PING_TIMEOUT_S

    node = Node(cfg, node_id)
    app = create_app(node)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=node.me.api_host, port=node.me.api_port, log_level="warning", access_log=False,
            lifespan="on", loop="uvloop", http="httptools",
            ws_ping_interval=WS_PING_INTERVAL_S, ws_ping_timeout=WS_PING_TIMEOUT_S, ws_max_size=WS_FRAME_BYTES_CLOSE,
        )
    )
    log.info("node %s: raft %s, api %s", node_id, node.me.raft_address, node.me.api_url)
    if not cfg.verify_signatures:
        log.warning("verify_signatures = false: signed requests are NOT verified (benchmark config)")
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
    return 0
