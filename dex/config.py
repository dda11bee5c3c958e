"""Cluster configuration: the nodes, where their data lives, the block
builder's tuning and the cluster secret.

A config file is TOML (see configs/local-4.toml). Paths in it are relative to
the file. The cluster secret is never in a committed file: it comes from the
environment variable DEX_CLUSTER_SECRET or from `secret_file`, which
`dex cluster init` writes (under var/, which git ignores).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dex.core.markets import MarketConfig, load_markets

SECRET_ENV = "DEX_CLUSTER_SECRET"
SECRET_BYTES_MIN = 16

# Block builder bounds (see docs/CLUSTER.md for how the defaults were chosen).
BLOCK_INTERVAL_MS_DEFAULT = 5
BLOCK_COMMANDS_MAX_DEFAULT = 256
BLOCK_BYTES_MAX_DEFAULT = 32 * 1024  # room for a signed batch of 100 orders (~20 KiB)
PENDING_COMMANDS_MAX_DEFAULT = 20_000
INFLIGHT_BLOCKS_MAX_DEFAULT = 64
# Per account and node, on signed requests (dex/api/ratelimit.py): a token bucket.
RATE_LIMIT_PER_S_DEFAULT = 50
RATE_LIMIT_BURST_DEFAULT = 100
# A WebSocket connection's outbound queue (docs/STREAMS.md); tests lower it.
STREAM_QUEUE_MAX_DEFAULT = 4096
assert BLOCK_BYTES_MAX_DEFAULT < 64 * 1024  # PySyncObj's batch size: one block per batch at most


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    id: str
    raft_host: str
    raft_port: int
    api_host: str
    api_port: int

    @property
    def raft_address(self) -> str:
        return f"{self.raft_host}:{self.raft_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    path: Path
    name: str
    nodes: tuple[NodeConfig, ...]
    markets: MarketConfig
    data_dir: Path
    secret_file: Path
    faucet: bool = False
    block_interval_ms: int = BLOCK_INTERVAL_MS_DEFAULT
    block_commands_max: int = BLOCK_COMMANDS_MAX_DEFAULT
    block_bytes_max: int = BLOCK_BYTES_MAX_DEFAULT
    pending_commands_max: int = PENDING_COMMANDS_MAX_DEFAULT
    inflight_blocks_max: int = INFLIGHT_BLOCKS_MAX_DEFAULT
    leader_wait_ms: int = 3000
    rate_limit_per_s: int = RATE_LIMIT_PER_S_DEFAULT
    rate_limit_burst: int = RATE_LIMIT_BURST_DEFAULT
    stream_queue_max: int = STREAM_QUEUE_MAX_DEFAULT
    # "fsync": a node makes a Raft entry durable before acknowledging it or
    # answering for it (dex/ledger/journal.py); "os": the OS page cache only.
    durability: str = "fsync"
    database_url: str | None = None
    # The trade store (dex/store): on unless `store = false` (or DEX_STORE=0
    # in the environment); database_url, else a SQLite file under data_dir
    # (docs/STORE.md).
    store: bool = True
    # Benchmarks only: `false` skips the Ed25519 check of signed requests (the
    # key still names the account), to measure what the check costs. Refused
    # unless every node is on loopback; a node logs a warning when it is off.
    verify_signatures: bool = True
    extra: dict = field(default_factory=dict)

    def node(self, node_id: str) -> NodeConfig:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ConfigError(f"no node {node_id!r} in {self.path} (nodes: {', '.join(n.id for n in self.nodes)})")

    def node_data_dir(self, node_id: str) -> Path:
        return self.data_dir / node_id

    @property
    def loopback_only(self) -> bool:
        return all(n.api_host in ("127.0.0.1", "localhost", "::1") and n.raft_host in ("127.0.0.1", "localhost", "::1") for n in self.nodes)

    def secret(self) -> str:
        """The cluster secret; raises ConfigError when there is none."""
        value = os.environ.get(SECRET_ENV)
        if not value and self.secret_file.exists():
            value = self.secret_file.read_text().strip()
        if not value:
            raise ConfigError(
                f"no cluster secret: set {SECRET_ENV} or run `dex cluster init --config {self.path}` "
                f"(writes {self.secret_file})"
            )
        if len(value) < SECRET_BYTES_MIN:
            raise ConfigError(f"the cluster secret must be at least {SECRET_BYTES_MIN} characters")
        return value


def _split(address: str, what: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{what}: expected host:port, got {address!r}")
    return host, int(port)


def load_cluster(path: str | Path) -> ClusterConfig:
    path = Path(path).resolve()
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    base = path.parent
    c = doc.get("cluster", {})
    nodes = []
    for n in doc.get("nodes", []):
        rh, rp = _split(n["raft"], f"node {n['id']} raft")
        ah, ap = _split(n["api"], f"node {n['id']} api")
        nodes.append(NodeConfig(id=str(n["id"]), raft_host=rh, raft_port=rp, api_host=ah, api_port=ap))
    if not nodes:
        raise ConfigError(f"{path}: no [[nodes]]")
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: node ids must be unique")
    data_dir = (base / c.get("data_dir", f"../var/{path.stem}")).resolve()
    secret_file = (base / c.get("secret_file", str(data_dir / "cluster.secret"))).resolve()
    database_url = os.environ.get("DATABASE_URL") or c.get("database_url") or None
    cfg = ClusterConfig(
        path=path,
        name=str(c.get("name", path.stem)),
        nodes=tuple(nodes),
        markets=load_markets((base / c.get("markets", "markets.toml")).resolve()),
        data_dir=data_dir,
        secret_file=secret_file,
        faucet=bool(c.get("faucet", False)),
        block_interval_ms=int(c.get("block_interval_ms", BLOCK_INTERVAL_MS_DEFAULT)),
        block_commands_max=int(c.get("block_commands_max", BLOCK_COMMANDS_MAX_DEFAULT)),
        block_bytes_max=int(c.get("block_bytes_max", BLOCK_BYTES_MAX_DEFAULT)),
        pending_commands_max=int(c.get("pending_commands_max", PENDING_COMMANDS_MAX_DEFAULT)),
        inflight_blocks_max=int(c.get("inflight_blocks_max", INFLIGHT_BLOCKS_MAX_DEFAULT)),
        leader_wait_ms=int(c.get("leader_wait_ms", 3000)),
        rate_limit_per_s=int(c.get("rate_limit_per_s", RATE_LIMIT_PER_S_DEFAULT)),
        rate_limit_burst=int(c.get("rate_limit_burst", RATE_LIMIT_BURST_DEFAULT)),
        stream_queue_max=int(c.get("stream_queue_max", STREAM_QUEUE_MAX_DEFAULT)),
        durability=str(c.get("durability", "fsync")),
        database_url=database_url,
        store=os.environ.get("DEX_STORE", "").lower() not in ("0", "off", "false", "no") and bool(c.get("store", True)),
        verify_signatures=bool(c.get("verify_signatures", True)),
    )
    if not 1 <= cfg.block_commands_max <= 4096:
        raise ConfigError("block_commands_max must be in 1..4096")
    if not 1024 <= cfg.block_bytes_max < 64 * 1024:
        raise ConfigError("block_bytes_max must be in 1024..65535 (PySyncObj batches 64 KiB)")
    if not 1 <= cfg.block_interval_ms <= 1000:
        raise ConfigError("block_interval_ms must be in 1..1000")
    if not 1 <= cfg.rate_limit_per_s <= cfg.rate_limit_burst:
        raise ConfigError("rate_limit_per_s must be >= 1 and rate_limit_burst >= rate_limit_per_s")
    if cfg.durability not in ("fsync", "os"):
        raise ConfigError('durability must be "fsync" or "os"')
    if not 1 <= cfg.stream_queue_max <= 65536:
        raise ConfigError("stream_queue_max must be in 1..65536")
    if not cfg.verify_signatures and not cfg.loopback_only:
        raise ConfigError("verify_signatures = false is for benchmarks on loopback only")
    return cfg
