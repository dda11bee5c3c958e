"""One dex node: a Raft member (PySyncObj) and its FastAPI server in one
process. This module is the composition root: what a node is made of and how
the pieces connect, nothing else.

    Replica (dex.ledger.replica)      Raft state machine: engine + chain
    BlockBuilder (dex.ledger.builder) the leader's batching of commands into blocks
    LedgerPort (dex.ledger.port)      the API's only way to the replica: submit, wait, typed reads
    History (dex.api.history)         recent trades and orders, a read model fed by blocks
    store writer (dex.store)          the trade store, woken by blocks (optional)
    ForwardChannel (dex.api.channel)  a follower's WebSocket channel to the leader
    ChannelServer (dex.api.channel)   the leader's end of the followers' channels
    Peers (dex.api.peers)             the HTTP client polling the peers' status
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
import gc
import logging
import os
import logging.handlers
import signal
import sys
import time
from pathlib import Path

from dex.api.channel import ChannelServer, ForwardChannel
from dex.api.history import History
from dex.api.peers import Peers
from dex.api.metrics import TradeCounter
from dex.api.streams import Hub
from dex.config import ClusterConfig, ConfigError, load_cluster
from dex.ledger.builder import BlockBuilder
from dex.ledger.port import LedgerPort
from dex.ledger.replica import Replica
from dex.store.writer import for_node as store_writer

log = logging.getLogger("dex.node")

# Benchmarks only: "1" turns the replay guard's check off on this node (every
# node of the cluster must be started with it) so `bench/cluster.py
# --replay-cost` can measure what the check costs. Refused unless every node
# of the config is on loopback; logged (UNSAFE, as a warning) at start.
NO_REPLAY_CHECK_ENV = "DEX_BENCH_UNSAFE_NO_REPLAY_CHECK"

LOG_BYTES_MAX = 16 * 1024 * 1024  # node.log rotates here; a flood of odd requests cannot fill the disk
LOG_FILES_KEPT = 3
OPEN_FILES_WANTED = 8192  # descriptors: connections (dex.api.server, dex.api.streams), files, Raft


def replay_check(cfg: ClusterConfig) -> bool:
    """False when NO_REPLAY_CHECK_ENV asks for it on a loopback-only config;
    the switch set anywhere else stops the node."""
    value = os.environ.get(NO_REPLAY_CHECK_ENV, "")
    if value in ("", "0"):
        return True
    if value != "1":
        raise SystemExit(f"{NO_REPLAY_CHECK_ENV}={value!r}: only 1 (or unset) is accepted")
    if not cfg.loopback_only:
        raise SystemExit(f"{NO_REPLAY_CHECK_ENV}=1 is for benchmarks on loopback only, and {cfg.path} has a node off loopback: refusing to start")
    log.warning(
        "UNSAFE: %s=1: REPLAY PROTECTION IS OFF on this node: any signed request may be executed again. "
        "A benchmark switch for loopback clusters only; never run a cluster that holds anything with it.", NO_REPLAY_CHECK_ENV,
    )
    return False


class Node:
    def __init__(self, cfg: ClusterConfig, node_id: str) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self.me = cfg.node(node_id)
        self.started_s = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.history = History(cfg.markets)
        self.block_listeners: list = []  # after History, in order (see the module docstring)
        self.replica = Replica(cfg, node_id, listeners=[self.history, self._on_block], replay_check=replay_check(cfg))
        self.builder = BlockBuilder(self.replica, cfg)
        self.port = LedgerPort(self.replica, self.builder, leader_wait_ms=cfg.leader_wait_ms)
        self.store = store_writer(cfg, node_id, self.replica.chain, self.replica)
        self.channel = ForwardChannel(cfg, node_id, self.port)
        self.channel_server = ChannelServer(self)
        self.peers = Peers(cfg, node_id)
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
        await self.peers.start()
        if self.store is not None:
            self.store.start()
        self.hub.attach()  # index the book as it stands; blocks from now on feed the streams

    async def stop(self) -> None:
        self.builder.stop()
        if self.store is not None:
            await asyncio.to_thread(self.store.stop)  # before the chain it reads is closed
        await self.channel.stop()
        await self.peers.stop()
        self.replica.chain.flush()
        self.replica.destroy()


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


def _raise_open_files_limit() -> None:
    """The node's connection caps (HTTP CONNECTIONS_MAX, WebSocket
    CONNECTIONS_PER_NODE_MAX, Raft peers) need more descriptors than a
    common soft limit of 1,024: raise it to the hard limit, up to
    OPEN_FILES_WANTED, and say so loudly when the hard limit is lower."""
    import resource

    from dex.api.server import CONNECTIONS_MAX
    from dex.api.streams.wire import CONNECTIONS_PER_NODE_MAX

    wanted = OPEN_FILES_WANTED
    assert wanted > CONNECTIONS_MAX + CONNECTIONS_PER_NODE_MAX
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files limited to %d (hard limit): the node's connection caps assume %d", target, wanted)


# The cyclic collector. A node's heap is mostly long-lived state (the book's
# orders, the accounts, the recent history) that every full collection walks:
# under an open-loop load each such stall became a queue. Start-up's objects
# are frozen out of collection and a full collection waits for
# GC_FULL_AFTER_YOUNG collections of the middle generation instead of 10; the
# engine frees its objects by reference counting, so cyclic garbage is rare.
# Measurements: docs/CLUSTER.md, "The garbage collector".
GC_FULL_AFTER_YOUNG = 1000


def tune_gc() -> None:
    """Collect once, freeze what survives (start-up's objects), and make full
    collections rare (GC_FULL_AFTER_YOUNG)."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GC_FULL_AFTER_YOUNG)


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
    from dex.api.fastpath import FastPath
    from dex.api.server import BoundedHttpProtocol
    from dex.api.channel import WS_MESSAGE_BYTES_MAX
    from dex.api.streams import WS_FRAME_BYTES_CLOSE, WS_PING_INTERVAL_S, WS_PING_TIMEOUT_S

    if rebuild:
        _move_ledger_aside(cfg.node_data_dir(node_id))
    _raise_open_files_limit()
    node = Node(cfg, node_id)  # refuses (exits) on damaged data: dex/ledger/replica.py EXIT_*
    app = FastPath(create_app(node), node)  # the order routes skip FastAPI's layers (dex/api/fastpath.py)
    tune_gc()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=node.me.api_host, port=node.me.api_port, log_level="warning", access_log=False,
            lifespan="on", loop="uvloop", http=BoundedHttpProtocol,
            ws_ping_interval=WS_PING_INTERVAL_S, ws_ping_timeout=WS_PING_TIMEOUT_S, ws_max_size=max(WS_FRAME_BYTES_CLOSE, WS_MESSAGE_BYTES_MAX),  # the channel's frames; /ws checks its own smaller bound
        )
    )
    import dex.engine

    log.info(
        "node %s: raft %s, api %s, engine %s (%s)", node_id, node.me.raft_address, node.me.api_url,
        dex.engine.IMPLEMENTATION, dex.engine.IMPLEMENTATION_REASON,
    )
    if not cfg.verify_signatures:
        log.warning("verify_signatures = false: signed requests are NOT verified (benchmark config)")
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
    return 0
