"""Cluster configuration: the nodes, where their data lives, the block
builder's tuning and the cluster secret.

A config file is TOML (see configs/local-4.toml). Paths in it are relative to
the file. The cluster secret is never in a committed file: it comes from the
environment variable DEX_CLUSTER_SECRET or from `secret_file`, which
`dex cluster init` writes (under var/, which git ignores).

Parsing is typed (pydantic-settings): `Tunables` declares each key once with
its type, default and bounds; an unknown key, in [cluster] or in a [[nodes]]
entry, is refused with a message naming the key and the file. The
environment overrides the file: DEX_<KEY> for any [cluster] key (e.g.
DEX_BLOCK_INTERVAL_MS=2, DEX_STORE=0, DEX_FAUCET=true); DATABASE_URL too.
Relations between keys (burst >= rate, signatures off only on loopback) are
checked after parsing.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from dex.core.markets import MarketConfig, load_markets

DEFAULT_CONFIG = Path("configs") / "local-4.toml"  # under the current directory
REPO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "local-4.toml"  # else the repository's own
SECRET_ENV = "DEX_CLUSTER_SECRET"
ENV_PREFIX = "DEX_"  # DEX_<KEY> overrides a [cluster] key, e.g. DEX_BLOCK_INTERVAL_MS
SECRET_BYTES_MIN = 16

# Block builder bounds (see docs/CLUSTER.md for how the defaults were chosen).
BLOCK_INTERVAL_MS_DEFAULT = 5
BLOCK_COMMANDS_MAX_DEFAULT = 256
BLOCK_BYTES_MAX_DEFAULT = 60 * 1024  # room for the largest batch the API takes (100 orders, a 48 KiB body)
PENDING_COMMANDS_MAX_DEFAULT = 20_000
# The leader refuses (503 -1008, Retry-After) a request whose expected wait
# for the commands ahead of it is over this (dex/ledger/admission.py).
ADMISSION_DELAY_MS_DEFAULT = 50
INFLIGHT_BLOCKS_MAX_DEFAULT = 64
LEADER_WAIT_MS_DEFAULT = 3000
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
    # Where a browser outside the nodes' network reaches this node's API
    # (e.g. a port published by docker compose); None: the api address.
    public_url: str | None = None

    @property
    def public_api_url(self) -> str:
        return self.public_url or self.api_url

    @property
    def raft_address(self) -> str:
        return f"{self.raft_host}:{self.raft_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


class Tunables(BaseModel):
    """The [cluster] keys that reach the running node as they are: each is
    declared here once, with its type, default and bounds. Every one can be
    overridden from the environment as DEX_<KEY> (e.g. DEX_BLOCK_INTERVAL_MS=2)."""

    faucet: bool = False
    block_interval_ms: int = Field(BLOCK_INTERVAL_MS_DEFAULT, ge=1, le=1000)
    block_commands_max: int = Field(BLOCK_COMMANDS_MAX_DEFAULT, ge=1, le=4096)
    # PySyncObj batches 64 KiB: one block per batch at most.
    block_bytes_max: int = Field(BLOCK_BYTES_MAX_DEFAULT, ge=1024, lt=64 * 1024)
    pending_commands_max: int = Field(PENDING_COMMANDS_MAX_DEFAULT, ge=1)
    inflight_blocks_max: int = Field(INFLIGHT_BLOCKS_MAX_DEFAULT, ge=1)
    admission_delay_ms: int = Field(ADMISSION_DELAY_MS_DEFAULT, ge=1, le=60_000)
    leader_wait_ms: int = Field(LEADER_WAIT_MS_DEFAULT, ge=1)
    rate_limit_per_s: int = Field(RATE_LIMIT_PER_S_DEFAULT, ge=1)
    rate_limit_burst: int = Field(RATE_LIMIT_BURST_DEFAULT, ge=1)
    stream_queue_max: int = Field(STREAM_QUEUE_MAX_DEFAULT, ge=1, le=65536)
    # "fsync": a node makes a Raft entry durable before acknowledging it or
    # answering for it (dex/ledger/journal.py); "os": the OS page cache only.
    durability: Literal["fsync", "os"] = "fsync"
    # The trade store (dex/store): database_url, else a SQLite file under
    # data_dir (docs/STORE.md). DATABASE_URL in the environment also sets it.
    database_url: str | None = Field(None, validation_alias=AliasChoices("DEX_DATABASE_URL", "DATABASE_URL", "database_url"))
    # The store is on unless `store = false` (or DEX_STORE=0).
    store: bool = True
    # Benchmarks only: `false` skips the Ed25519 check of signed requests (the
    # key still names the account), to measure what the check costs. Refused
    # unless every node is on loopback; a node logs a warning when it is off.
    verify_signatures: bool = True


class ClusterSettings(Tunables, BaseSettings):
    """The [cluster] table of a config file, environment first: the tunables
    plus the paths, which are relative to the file. A key it does not know is
    an error, never a silent default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", populate_by_name=True)

    name: str | None = None  # default: the file's stem
    markets: str = "markets.toml"
    data_dir: str | None = None  # default: ../var/<stem>
    secret_file: str | None = None  # default: <data_dir>/cluster.secret

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (env_settings, init_settings)  # the environment overrides the file; no .env file is read


class NodeEntry(BaseModel):
    """One [[nodes]] entry as written in the file."""

    model_config = ConfigDict(extra="forbid")
    id: str
    raft: str
    api: str
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+$")  # e.g. "http://127.0.0.1:8101"


class ClusterConfig(Tunables):
    """A loaded cluster config: the file's tunables with its paths resolved,
    its nodes and its markets. Immutable."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    name: str
    nodes: tuple[NodeConfig, ...]
    markets: MarketConfig
    data_dir: Path
    secret_file: Path

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


def _explain(error: ValidationError, path: Path, table: str, known: list[str]) -> ConfigError:
    """One line per problem, naming the key, the table and the file (or the environment variable)."""
    lines = []
    for e in error.errors():
        key = ".".join(str(part) for part in e["loc"]) or "?"
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(key, known, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(known)})"
            lines.append(f"{path}: unknown key {key!r} in {table}{also}")
        else:
            env = ENV_PREFIX + key.upper()
            where = f"environment variable {env}" if env in os.environ else f"{table} of {path}"
            lines.append(f"{where}: {key}: {e['msg']}")
    return ConfigError("\n".join(lines))


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read a cluster config file; ConfigError names the file and key of anything wrong."""
    path = Path(path).resolve()
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    base = path.parent
    unknown_tables = sorted(set(doc) - {"cluster", "nodes"})
    if unknown_tables:
        raise ConfigError(f"{path}: unknown table {unknown_tables[0]!r} (known: [cluster], [[nodes]])")
    try:
        c = ClusterSettings(**doc.get("cluster", {}))
    except ValidationError as e:
        raise _explain(e, path, "[cluster]", sorted(ClusterSettings.model_fields)) from None
    nodes = []
    for i, raw in enumerate(doc.get("nodes", [])):
        try:
            n = NodeEntry(**raw)
        except ValidationError as e:
            raise _explain(e, path, f"[[nodes]] #{i + 1}", sorted(NodeEntry.model_fields)) from None
        rh, rp = _split(n.raft, f"node {n.id} raft")
        ah, ap = _split(n.api, f"node {n.id} api")
        nodes.append(NodeConfig(id=n.id, raft_host=rh, raft_port=rp, api_host=ah, api_port=ap, public_url=n.public_url))
    if not nodes:
        raise ConfigError(f"{path}: no [[nodes]]")
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: node ids must be unique")
    data_dir = (base / (c.data_dir or f"../var/{path.stem}")).resolve()
    secret_file = (base / (c.secret_file or str(data_dir / "cluster.secret"))).resolve()
    cfg = ClusterConfig(
        **c.model_dump(include=set(Tunables.model_fields)),
        path=path,
        name=c.name or path.stem,
        nodes=tuple(nodes),
        markets=load_markets((base / c.markets).resolve()),
        data_dir=data_dir,
        secret_file=secret_file,
    )
    if not cfg.rate_limit_per_s <= cfg.rate_limit_burst:
        raise ConfigError(f"{path}: rate_limit_burst must be >= rate_limit_per_s")
    if not cfg.verify_signatures and not cfg.loopback_only:
        raise ConfigError(f"{path}: verify_signatures = false is for benchmarks on loopback only")
    return cfg


def default_config_path() -> Path:
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else REPO_CONFIG


def load_config(config: str | Path | None) -> ClusterConfig:
    """load_cluster for a command line: `config` or the default path, and a
    missing or malformed file as a ConfigError (one line, no traceback)."""
    path = Path(config) if config else default_config_path()
    try:
        return load_cluster(path)
    except FileNotFoundError as e:
        raise ConfigError(f"no such config file: {e.filename or path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except KeyError as e:
        raise ConfigError(f"{path}: missing key {e}") from None
