"""A real four-node cluster for a test: its config, its processes, its views.

Each test gets a fresh cluster in its own tmp_path: a TOML config with four
nodes on loopback ports picked at random below the kernel's ephemeral range
(so no outgoing connection can be holding one when a node binds it), data
and secret under tmp_path, markets from this clone's configs/. Nodes are the
real `python -m dex.cli node` processes started by cluster.local.

Invariants the harness keeps for every test:
- every wait is `local.wait_for` with a timeout that names what was awaited;
- `close()` always leaves no node process of this config behind (down, then
  SIGKILL by pid anything still running with this config on its command line);
- node logs outlive a wiped data directory: `wipe()` archives node.log first,
  so the teardown's log scan still sees everything each node ever wrote.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from cluster import local
from cluster.local import free_ports, port_is_free  # noqa: F401 (tests import them from here)
from dex.auth import Keypair
from dex.config import ClusterConfig, load_cluster

REPO = Path(__file__).resolve().parents[2]
MARKETS = REPO / "configs" / "markets.toml"
NODE_IDS = ("n1", "n2", "n3", "n4")
HTTP_TIMEOUT_S = 2.0
UP_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 30.0
LEADER_TIMEOUT_S = 10.0
BLOCKS_PAGE_MAX = 100  # the API's limit on GET /api/v1/blocks
TRUNCATION_LINE = "truncating already-applied log entries"
LOG_TAIL_LINES = 40


def write_config(directory: Path, *, name: str, ports: list[int], secret_file: str = "var/cluster.secret", settings: dict | None = None) -> Path:
    """`settings`: extra [cluster] keys (integers or strings), e.g. {"rate_limit_per_s": 5}."""
    assert len(ports) == 2 * len(NODE_IDS)
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "[cluster]",
        f'name = "{name}"',
        f'markets = "{MARKETS.as_posix()}"',
        'data_dir = "var"',
        f'secret_file = "{secret_file}"',
        "faucet = true",
    ]
    lines += [f"{k} = {json.dumps(v) if isinstance(v, str) else int(v)}" for k, v in (settings or {}).items()]
    for i, node_id in enumerate(NODE_IDS):
        raft, api = ports[2 * i], ports[2 * i + 1]
        lines += ["", "[[nodes]]", f'id = "{node_id}"', f'raft = "127.0.0.1:{raft}"', f'api = "127.0.0.1:{api}"']
    path = directory / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def metric_value(text: str, name: str) -> float | None:
    """An unlabelled metric's value in a node's /metrics text (None: absent)."""
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return None if m is None else float(m.group(1))


class TruncatedAppliedEntries(AssertionError):
    """A node logged that it truncated Raft log entries it had already applied."""


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    hash: str
    state_hash: str


@dataclass(frozen=True, slots=True)
class Accepted:
    order_id: int
    client_order_id: str
    account: str
    height: int


class Cluster:
    def __init__(self, cfg: ClusterConfig, archive_dir: Path) -> None:
        self.cfg = cfg
        self.ids = [n.id for n in cfg.nodes]
        self.archive_dir = archive_dir
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=False)
        self.truncations_reported: set[str] = set()

    @classmethod
    def create(cls, directory: Path, *, name: str, seed: int | None = None, settings: dict | None = None) -> Cluster:
        seed = random.randrange(2**32) if seed is None else seed
        ports = free_ports(2 * len(NODE_IDS), random.Random(seed))
        path = write_config(directory, name=name, ports=ports, settings=settings)
        return cls(load_cluster(path), directory / "archived-logs")

    # ------------------------------------------------------------ processes

    def up(self) -> None:
        local.init(self.cfg)
        local.up(self.cfg, timeout_s=UP_TIMEOUT_S)

    def url(self, node_id: str) -> str:
        return self.cfg.node(node_id).api_url

    @property
    def urls(self) -> list[str]:
        return [self.url(n) for n in self.ids]

    def alive(self) -> list[str]:
        return [n for n in self.ids if local.node_pid(self.cfg, n) is not None]

    def kill(self, node_id: str) -> None:
        assert local.kill_node(self.cfg, node_id), f"{node_id} was not running"
        assert local.node_pid(self.cfg, node_id) is None

    def start(self, node_id: str) -> None:
        local.start_node(self.cfg, node_id)
        local.wait_node_ready(self.cfg, node_id, timeout_s=UP_TIMEOUT_S)

    def wipe(self, node_id: str) -> None:
        """Delete a stopped node's data directory, keeping its log for the scan."""
        assert local.node_pid(self.cfg, node_id) is None, f"{node_id} must be stopped before its data is wiped"
        data_dir = self.cfg.node_data_dir(node_id)
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        log = local.log_path(self.cfg, node_id)
        if log.exists():
            shutil.copy(log, self.archive_dir / f"{node_id}.{time.monotonic_ns()}.node.log")
        shutil.rmtree(data_dir)
        assert not data_dir.exists()

    def close(self) -> None:
        """Stop every node of this config, whatever state the test left it in."""
        try:
            local.down(self.cfg, timeout_s=5.0)
        finally:
            for pid in self._stray_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.http.close()
        local.wait_for(lambda: not self._stray_pids(), local.KILL_TIMEOUT_S, what=f"every node process of {self.cfg.path} to exit")

    def _stray_pids(self) -> list[int]:
        """Processes of ours running with this config file on their command line."""
        config = str(self.cfg.path)
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"dex.cli" in args and config.encode() in args:
                pids.append(int(entry.name))
        return pids

    # ---------------------------------------------------------------- logs

    def log_paths(self) -> list[Path]:
        paths = [local.log_path(self.cfg, n) for n in self.ids] + [local.out_path(self.cfg, n) for n in self.ids]
        if self.archive_dir.exists():
            paths += sorted(self.archive_dir.glob("*.node.log"))
        return [p for p in paths if p.exists()]

    def truncation_lines(self) -> list[str]:
        found = []
        for path in self.log_paths():
            with open(path, errors="replace") as f:
                found += [f"{path}: {line.rstrip()}" for line in f if TRUNCATION_LINE in line]
        return found

    def check_log(self) -> None:
        """Raise TruncatedAppliedEntries for truncation lines not reported before."""
        new = [line for line in self.truncation_lines() if line not in self.truncations_reported]
        self.truncations_reported.update(new)
        if new:
            raise TruncatedAppliedEntries(
                f"{len(new)} time(s) a node truncated Raft log entries it had already applied "
                f"(its state machine may have diverged):\n" + "\n".join(new[:20])
            )

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        parts = []
        for n in self.ids:
            parts.append(f"--- {local.log_path(self.cfg, n)} (pid {local.node_pid(self.cfg, n)}) ---")
            parts.append(local.log_tail(self.cfg, n, lines))
        return "\n".join(parts)

    # ---------------------------------------------------------------- views

    def self_status(self, node_id: str) -> dict | None:
        """GET /api/v1/cluster/self, or None if the node does not answer."""
        try:
            r = self.http.get(self.url(node_id) + "/api/v1/cluster/self")
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def head(self, node_id: str) -> Head | None:
        s = self.self_status(node_id)
        return None if s is None else Head(s["headHeight"], s["headHash"], s["stateHash"])

    def heads(self, node_ids: Iterable[str]) -> dict[str, Head | None]:
        return {n: self.head(n) for n in node_ids}

    def converged_head(self, node_ids: Iterable[str], *, height_min: int = 0) -> Head | None:
        heads = self.heads(node_ids)
        values = set(heads.values())
        if len(values) != 1 or None in values:
            return None
        (head,) = values
        return head if head.height >= height_min else None

    def wait_converged(self, node_ids: Iterable[str], *, height_min: int = 0, timeout_s: float = CONVERGE_TIMEOUT_S) -> Head:
        node_ids = list(node_ids)
        try:
            return local.wait_for(
                lambda: self.converged_head(node_ids, height_min=height_min),
                timeout_s,
                interval_s=0.1,
                what=f"nodes {', '.join(node_ids)} to reach one head (height >= {height_min})",
            )
        except TimeoutError as e:
            raise AssertionError(f"{e}; heads now: {self.heads(node_ids)}") from None

    def leader_among(self, node_ids: Iterable[str], *, not_id: str | None = None) -> str | None:
        """The leader every one of node_ids names, if it is among them, leads with a quorum and is not `not_id`."""
        node_ids = list(node_ids)
        statuses = [self.self_status(n) for n in node_ids]
        if any(s is None for s in statuses):
            return None
        leaders = {s["leader"] for s in statuses}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        if leader is None or leader == not_id or leader not in node_ids:
            return None
        mine = statuses[node_ids.index(leader)]
        return leader if mine["role"] == "leader" and mine["hasQuorum"] else None

    def wait_leader(self, node_ids: Iterable[str] | None = None, *, not_id: str | None = None, timeout_s: float = LEADER_TIMEOUT_S) -> str:
        node_ids = list(node_ids or self.alive())
        return local.wait_for(
            lambda: self.leader_among(node_ids, not_id=not_id),
            timeout_s,
            interval_s=0.05,
            what=f"one leader with a quorum among {', '.join(node_ids)}" + (f", not {not_id}" if not_id else ""),
        )

    # ---------------------------------------------------------------- chain

    def get_json(self, node_id: str, path: str, **params) -> dict:
        r = self.http.get(self.url(node_id) + path, params=params)
        assert r.status_code == 200, f"GET {path} on {node_id}: HTTP {r.status_code} {r.text[:200]}"
        return r.json()

    def headers(self, node_id: str, height_max: int) -> list[dict]:
        """Block headers 1..height_max as node_id stores them, oldest first."""
        out: list[dict] = []
        top = height_max
        while top >= 1:
            page = self.get_json(node_id, "/api/v1/blocks", fromHeight=top, limit=BLOCKS_PAGE_MAX)
            assert page["baseHeight"] == 0, f"{node_id}'s chain starts at {page['baseHeight']}"
            blocks = page["blocks"]
            assert blocks and blocks[0]["height"] == top, f"{node_id} has no block {top}"
            out.extend(blocks)
            top = blocks[-1]["height"] - 1
        out.reverse()
        assert [h["height"] for h in out] == list(range(1, height_max + 1))
        for parent, child in zip(out, out[1:]):
            assert child["parentHash"] == parent["hash"], f"{node_id}: block {child['height']} does not link to its parent"
        return out

    def accepted_orders(self, node_id: str, height_max: int) -> list[Accepted]:
        """Every OrderAccepted event in blocks 1..height_max of node_id's chain, in chain order."""
        found = []
        for height in range(1, height_max + 1):
            block = self.get_json(node_id, f"/api/v1/blocks/{height}")
            for command in block["commands"]:
                for event in command["events"]:
                    if event["event"] == "OrderAccepted":
                        found.append(Accepted(event["orderId"], event["clientOrderId"], event["account"], height))
        return found


# --- requests --------------------------------------------------------------


SIGNED_REQUEST_TIMEOUT_S = 15.0  # above the node's own bounds: leader_wait_ms (3 s), forwarding (7 s)


def signed_request(http: httpx.Client, keys: Keypair, method: str, url: str, path: str, body: dict) -> httpx.Response:
    """One signed request, sent once: for looking at the raw answer (status, headers)."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    headers.update(keys.headers(time.time_ns() // 1_000_000, method, path, "", raw))
    return http.request(method, url + path, content=raw, headers=headers, timeout=SIGNED_REQUEST_TIMEOUT_S)


def observe_constant(read: Callable[[], object], duration_s: float, *, interval_s: float = 0.1) -> object:
    """Read a value repeatedly for `duration_s` and assert it never changes.

    This is an observation window, not a wait for a condition: the claim is
    "nothing happens", which can only be checked by watching for a while.
    """
    assert 0 < interval_s < duration_s
    first = read()
    deadline = time.monotonic() + duration_s
    samples = 1
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        value = read()
        samples += 1
        assert value == first, f"changed during the observation window (sample {samples}): {first!r} -> {value!r}"
    return first
