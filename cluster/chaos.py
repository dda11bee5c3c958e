"""`dex chaos`: a seeded fault runner over a local cluster, and the checker that judges it.

The runner owns one run: a cluster (its own, written to a temp directory with
free loopback ports and the faucet on, or an existing local one with
--config), a load generator, a schedule of faults drawn from the seed, the
heals, and the checks. It always tears down what it started: the nodes of its
own cluster, its nft table, its tmpfs mounts.

Schedule. `draw_schedule(seed, ...)` is a pure function of its arguments:
the kinds are dealt round robin from a seeded shuffle (every asked kind
appears once before any repeats), targets and hold times come from the same
`random.Random(seed)`, and the schedule is printed before the run, so
`--seed N` reproduces it. Faults run one at a time (apply, hold, heal, then a
gap), so at most KILL_NODES_MAX nodes are ever down and never a majority.
Half of the kill, pause and partition faults aim at the leader: which node
that is can only be known when the fault starts (the one run-time choice).

Faults (what each does; what it expects of the node):
    kill        SIGKILL one or two nodes (never a majority), restart them after the hold.
    pause       SIGSTOP one node for the hold, then SIGCONT.
    partition   drop every packet to or from one node's Raft traffic (nft, as
                root, on loopback): its Raft port, and the local ports of its
                own outgoing Raft connections (found in /proc, refreshed every
                PARTITION_REFRESH_S while the partition holds). Skipped loudly
                without root or nft.
    torn        SIGKILL one node, cut raft.journal or blocks.dat inside its
                last record, restart: the node must cut the tail and catch up.
    corrupt     SIGKILL one node, flip a byte inside a middle record of its
                raft.journal: the node must refuse to start with exit 74 (72 for blocks.dat); the
                runner then starts it with --rebuild and it must catch up.
    disk-full   SIGKILL one node, mount a tmpfs just larger than its data over
                its data directory (data copied in), fill it but for
                DISK_HEADROOM_BYTES, start it under load, free the space after
                the hold, then move the data back to disk and restart it. The
                node must fail-stop or refuse rather than diverge (the chain
                checks say whether it diverged). Skipped loudly without mount.

Load. LOAD_THREADS threads send signed requests round robin to every node at
`rate` orders/s in total: limit orders on BTCUSDT (passive GTC and crossing
IOC) with a unique client order id each, retried on 5xx, 429 and transport
errors with the same body on the next node (a retry of an accepted order is
answered as a duplicate with the first order id, so retries are safe), and
a few single-attempt withdrawals. Every acknowledgement (client order id,
order id, block height) and every unknown outcome (no final answer within
REQUEST_DEADLINE_S, 503 -1007 included) is recorded.

Checks, after the last heal and the load's end, once every node reports one
head: every acknowledged order is in every node's ledger exactly once with its
order id; no client order id is accepted twice in a ledger; all chains agree
block by block; the audit (dex.audit.audit) passes on every node's blocks.dat;
every unknown outcome is resolved the same way on every node; balances
conserve (per asset, the sum of BalanceChanged deltas in the ledger, i.e.
deposits minus withdrawals, equals the sum of every account's free + locked
in the audit's replayed state, the fee account included); every node caught
up within CATCH_UP_S_MAX of the last heal; each fault behaved as expected; no
node logged that it truncated applied Raft entries. Ledgers are read from
each node's blocks.dat (the file GET /api/v1/blocks/{h} serves), so the
runner must run on the nodes' machine.

Exit status: 0 when every check passes, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from cluster import local
from dex.auth import Keypair
from dex.config import ClusterConfig, load_config

REPO = Path(__file__).resolve().parent.parent

FAULT_KINDS = ("kill", "pause", "partition", "torn", "corrupt", "disk-full")
ROOT_KINDS = frozenset(("partition", "disk-full"))
NODES_DEFAULT = 4
NODES_MIN, NODES_MAX = 3, 7
DURATION_S_DEFAULT = 60.0
DURATION_S_MIN, DURATION_S_MAX = 5.0, 3600.0
RATE_DEFAULT = 40  # orders/s across all load threads
RATE_MAX = 2000
WARMUP_S = 2.0  # load before the first fault
HOLD_S_MIN, HOLD_S_MAX = 2.0, 5.0  # how long a fault holds before its heal (--hold-max raises the top)
HOLD_S_LIMIT = 600.0
GAP_S = 2.0  # after a heal, before the next fault
KILL_NODES_MAX = 2
LEADER_KINDS = frozenset(("kill", "pause", "partition"))  # the kinds that may aim at the leader
LEADER_SHARE = 0.5  # of those faults, the share drawn to aim at the leader
assert HOLD_S_MIN < HOLD_S_MAX <= HOLD_S_LIMIT and WARMUP_S > 0 and GAP_S > 0

LOAD_THREADS = 4
ACCOUNTS = 8
SYMBOL = "BTCUSDT"
MID_TICKS = 5_000_000  # 50,000.00 USDT
PASSIVE_TICKS_MAX = 500
CROSS_TICKS = 100
QTY_LOTS_MIN, QTY_LOTS_MAX = 10, 100
CROSS_PCT = 40
WITHDRAW_PCT = 2
DEPOSITS = (("USDT", "10000000"), ("BTC", "10000"))  # under the faucet's per-account share (dex.api.trading.FAUCET_ACCOUNT_UNITS_MAX)
WITHDRAW_AMOUNT = ("USDT", "1")
ATTEMPT_TIMEOUT_S = 10.0  # above the node's forwarding bound (7 s)
REQUEST_DEADLINE_S = 20.0  # all attempts of one request; past it the outcome is unknown
BACKOFF_S_MIN, BACKOFF_S_MAX = 0.02, 0.5
RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
OUTCOME_UNKNOWN_CODE = -1007
assert ATTEMPT_TIMEOUT_S < REQUEST_DEADLINE_S

UP_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0  # a node starts in 3-15 s on a loaded 2-core machine
REFUSE_TIMEOUT_S = 60.0  # a node on a corrupted journal must exit within this (its start-up alone takes up to 15 s here)
# dex.ledger.replica's exit codes (not imported: it pulls in the node's stack;
# tests/cluster/test_chaos.py checks they agree).
EXIT_CHAIN_DAMAGED = 72
EXIT_JOURNAL_DAMAGED = 74
CONVERGE_TIMEOUT_S = 90.0
DIVERGED_S_MIN = 3.0  # one height with different hashes for this long, with the load stopped: diverged
CATCH_UP_S_MAX = 10.0  # issue 10's target: every node caught up within 10 s of the last heal
LOAD_STOP_TIMEOUT_S = REQUEST_DEADLINE_S + 5.0
PARTITION_REFRESH_S = 0.05
DISK_HEADROOM_BYTES = 256 * 1024
DISK_SLACK_BYTES = 4 * 1024 * 1024
UMOUNT_TIMEOUT_S = 10.0
DISK_OBSERVE_S = 3.0  # after space comes back, how long the runner watches the node before healing
HTTP_TIMEOUT_S = 2.0
TRUNCATION_LINE = "truncating already-applied log entries"
LOG_LINES_SHOWN = 6
assert CATCH_UP_S_MAX < CONVERGE_TIMEOUT_S

JOURNAL_FILE = "raft.journal"
CHAIN_FILE = "blocks.dat"
JOURNAL_HEAD_BYTES = 6  # dex.ledger.journal: magic "DEXJ", u16 version
CHAIN_HEAD_BYTES = 12  # dex.ledger.chain: magic "DEXCHAIN", u32 version
RECORD_HEAD = struct.Struct("<II")  # both files: u32 length, u32 crc32, then the payload


class ChaosError(RuntimeError):
    """The run could not be carried out (not a failed check): setup, a node that will not start."""


# --- the schedule ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    index: int
    kind: str
    at_s: float  # after the load starts
    hold_s: float
    nodes: tuple[str, ...]
    file: str | None = None  # torn, corrupt: the file damaged
    fraction: float = 0.0  # torn, corrupt: where in the record (0..1)
    leader: bool = False  # the first target is whichever node leads when the fault starts

    def describe(self) -> str:
        what = f" {self.file} at {self.fraction:.2f} of a record" if self.file else ""
        nodes = ",".join(("leader", *self.nodes[1:]) if self.leader else self.nodes)
        return f"#{self.index} t={self.at_s:5.1f}s {self.kind:<9} {nodes}{what} hold {self.hold_s:.1f}s"


def draw_schedule(seed: int, duration_s: float, kinds: list[str], node_ids: list[str], *, hold_s_max: float = HOLD_S_MAX) -> list[Fault]:
    """The faults of a run: a pure function of its arguments (see the module docstring)."""
    assert kinds and all(k in FAULT_KINDS for k in kinds), kinds
    assert HOLD_S_MIN < hold_s_max <= HOLD_S_LIMIT, hold_s_max
    assert len(node_ids) >= NODES_MIN
    rng = random.Random(seed)
    deck = sorted(set(kinds), key=FAULT_KINDS.index)
    rng.shuffle(deck)
    down_max = min(KILL_NODES_MAX, len(node_ids) // 2)  # never a majority
    faults: list[Fault] = []
    at_s = WARMUP_S
    while at_s < duration_s or len(faults) < len(deck):  # every asked kind at least once
        kind = deck[len(faults) % len(deck)]
        hold_s = round(rng.uniform(HOLD_S_MIN, hold_s_max), 1)
        count = rng.randint(1, down_max) if kind == "kill" else 1
        nodes = tuple(sorted(rng.sample(node_ids, count)))
        leader = kind in LEADER_KINDS and rng.random() < LEADER_SHARE
        file, fraction = None, 0.0
        if kind == "torn":
            file, fraction = rng.choice((JOURNAL_FILE, CHAIN_FILE)), round(rng.random(), 3)
        elif kind == "corrupt":
            file, fraction = JOURNAL_FILE, round(rng.random(), 3)
        faults.append(Fault(len(faults) + 1, kind, round(at_s, 1), hold_s, nodes, file, fraction, leader))
        at_s += hold_s + GAP_S
    return faults


# --- the cluster -----------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free now (cluster.local.free_ports), from a
    generator of their own: ports do not change the schedule."""
    try:
        return local.free_ports(count, random.Random())
    except local.ClusterError as e:
        raise ChaosError(str(e)) from None


def write_config(directory: Path, nodes: int) -> Path:
    """A cluster config for `nodes` nodes on free loopback ports, data under `directory`."""
    with open(REPO / "configs" / "local-4.toml", "rb") as f:
        base = tomllib.load(f).get("cluster", {})
    ports = free_ports(2 * nodes)
    lines = [
        "# written by dex chaos",
        "[cluster]",
        f'name = "chaos-{nodes}"',
        f'markets = "{(REPO / "configs" / "markets.toml").as_posix()}"',
        'data_dir = "data"',
        'secret_file = "data/cluster.secret"',
        "faucet = true",
        f"block_interval_ms = {int(base.get('block_interval_ms', 5))}",
        f"block_commands_max = {int(base.get('block_commands_max', 256))}",
        f"block_bytes_max = {int(base.get('block_bytes_max', 32768))}",
        "rate_limit_per_s = 1000000  # the load is paced by the runner, not the node",
        "rate_limit_burst = 1000000",
    ]
    for i in range(nodes):
        lines += ["", "[[nodes]]", f'id = "n{i + 1}"', f'raft = "127.0.0.1:{ports[2 * i]}"', f'api = "127.0.0.1:{ports[2 * i + 1]}"']
    path = directory / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def head_of(http: httpx.Client, cfg: ClusterConfig, node_id: str) -> tuple[int, str] | None:
    """(head height, head hash) as the node reports it, or None if it does not answer."""
    try:
        r = http.get(cfg.node(node_id).api_url + "/api/v1/cluster/self")
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    body = r.json()
    return body["headHeight"], body["headHash"]


# --- the load --------------------------------------------------------------


def _price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


def _qty(lots: int) -> str:
    return f"{lots // 100_000}.{lots % 100_000:05d}"


class Recorder:
    """What the load saw, shared by its threads under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, tuple[int, int]] = {}  # client order id -> (order id, block height)
        self.unknown: dict[str, str] = {}  # client order id -> the last answer seen
        self.rejected: dict[str, str] = {}
        self.counts: collections.Counter = collections.Counter()
        self.acks_per_s: collections.Counter = collections.Counter()  # second of the run -> orders acknowledged in it
        self.t0 = time.monotonic()

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


class Load:
    """LOAD_THREADS threads of signed requests, round robin over the nodes, paced to `rate`."""

    def __init__(self, cfg: ClusterConfig, seed: int, rate: int, run_tag: str) -> None:
        assert 1 <= rate <= RATE_MAX
        self.urls = [n.api_url for n in cfg.nodes]
        self.rate = rate
        self.tag = run_tag
        rng = random.Random(seed)
        self.keys = [Keypair.from_private(rng.randbytes(32)) for _ in range(ACCOUNTS)]
        self.seed = seed
        self.stop = threading.Event()
        self.record = Recorder()
        self.threads = [threading.Thread(target=self._run, args=(i,), name=f"chaos-load-{i}", daemon=True) for i in range(LOAD_THREADS)]

    def send(self, http: httpx.Client, keys: Keypair, method: str, path: str, body: dict, start: int, *, retry: bool = True) -> tuple[int | None, dict | list | None, str]:
        """(status, JSON, last answer) of the first final answer, or (None, None, last answer) past the deadline."""
        raw = json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        backoff_s = BACKOFF_S_MIN
        node = start
        last = "no answer"
        while True:
            url = self.urls[node % len(self.urls)]
            headers = {"Content-Type": "application/json", **keys.headers(time.time_ns() // 1_000_000, method, path, "", raw)}
            try:
                r = http.request(method, url + path, content=raw, headers=headers, timeout=ATTEMPT_TIMEOUT_S)
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}"
            else:
                try:
                    payload = r.json()
                except ValueError:
                    payload = None
                if r.status_code not in RETRY_STATUSES:
                    return r.status_code, payload, f"HTTP {r.status_code}"
                code = payload.get("code") if isinstance(payload, dict) else None
                last = f"HTTP {r.status_code} {code}"
                if code == OUTCOME_UNKNOWN_CODE:
                    self.record.count("answers_outcome_unknown")
            self.record.count("attempts_retried")
            if not retry or time.monotonic() + backoff_s > deadline:
                return None, None, last
            node += 1
            time.sleep(backoff_s)  # back-off between attempts, not a wait for a condition
            backoff_s = min(2 * backoff_s, BACKOFF_S_MAX)

    def fund(self) -> None:
        """Faucet deposits into every account (retried: a double deposit is still a ledgered flow)."""
        with httpx.Client(trust_env=False) as http:
            for i, keys in enumerate(self.keys):
                for asset, amount in DEPOSITS:
                    status, _, last = self.send(http, keys, "POST", "/api/v1/deposit", {"asset": asset, "amount": amount}, i)
                    if status != 200:
                        raise ChaosError(f"funding account {keys.account} with {asset} failed: {last}")

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(LOAD_STOP_TIMEOUT_S)
            assert not t.is_alive(), f"{t.name} did not stop within {LOAD_STOP_TIMEOUT_S} s"

    def _run(self, worker: int) -> None:
        rng = random.Random(f"{self.seed}-{worker}")
        interval_s = LOAD_THREADS / self.rate
        seq = 0
        next_s = time.monotonic()
        with httpx.Client(trust_env=False) as http:
            while not self.stop.is_set():
                seq += 1
                node = worker + seq
                k = rng.randrange(len(self.keys))
                if rng.randrange(100) < WITHDRAW_PCT:
                    asset, amount = WITHDRAW_AMOUNT
                    status, _, last = self.send(http, self.keys[k], "POST", "/api/v1/withdraw", {"asset": asset, "amount": amount}, node, retry=False)
                    self.record.count("withdrawals_acked" if status == 200 else "withdrawals_not_acked")
                else:
                    self._order(http, rng, k, f"{self.tag}{worker}-{seq}", node)
                next_s += interval_s
                self.stop.wait(max(0.0, next_s - time.monotonic()))  # pacing to the rate

    def _order(self, http: httpx.Client, rng: random.Random, k: int, cid: str, node: int) -> None:
        buy = rng.random() < 0.5
        if rng.randrange(100) < CROSS_PCT:
            ticks, tif = (MID_TICKS + CROSS_TICKS if buy else MID_TICKS - CROSS_TICKS), "IOC"
        else:
            off = rng.randint(1, PASSIVE_TICKS_MAX)
            ticks, tif = (MID_TICKS - off if buy else MID_TICKS + off), "GTC"
        body = {
            "symbol": SYMBOL, "side": "BUY" if buy else "SELL", "type": "LIMIT", "timeInForce": tif,
            "price": _price(ticks), "quantity": _qty(rng.randint(QTY_LOTS_MIN, QTY_LOTS_MAX)),
            "newClientOrderId": cid, "newOrderRespType": "ACK",
        }
        self.record.count("orders_sent")
        status, payload, last = self.send(http, self.keys[k], "POST", "/api/v1/order", body, node)
        with self.record.lock:
            if status == 200 and isinstance(payload, dict) and "orderId" in payload:
                self.record.acked[cid] = (int(payload["orderId"]), int(payload.get("blockHeight") or 0))
                self.record.counts["orders_acked"] += 1
                self.record.acks_per_s[int(time.monotonic() - self.record.t0)] += 1
                if payload.get("duplicate"):
                    self.record.counts["orders_acked_as_retry_duplicate"] += 1
            elif status is None:
                self.record.unknown[cid] = last
                self.record.counts["orders_unknown"] += 1
            else:
                self.record.rejected[cid] = f"{last} {str(payload)[:120]}"
                self.record.counts["orders_rejected"] += 1


# --- network partitions (nft) ----------------------------------------------


def _run_cmd(args: list[str], stdin: str | None = None) -> tuple[bool, str]:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{args[0]}: {e}"
    return done.returncode == 0, (done.stderr or done.stdout).strip()


def _nft() -> str | None:
    return shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)


class Partitioner:
    """One nft table of this run; a partition is its port set filled for one node."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.table = f"dexchaos_{os.getpid()}"
        self.nft = _nft()
        self.created = False
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.blocked: set[int] = set()

    def available(self) -> tuple[bool, str]:
        if self.nft is None:
            return False, "no nft binary"
        if os.geteuid() != 0:
            return False, "not root (nft needs CAP_NET_ADMIN)"
        ok, why = self._create()
        return (True, "nft on loopback") if ok else (False, f"nft refused: {why}")

    def _create(self) -> tuple[bool, str]:
        if self.created:
            return True, ""
        script = (
            f"table inet {self.table} {{\n"
            "  set ports { type inet_service; }\n"
            "  chain out { type filter hook output priority 0; policy accept;\n"
            "    tcp dport @ports drop\n    tcp sport @ports drop\n  }\n}\n"
        )
        ok, why = _run_cmd([self.nft, "-f", "-"], script)
        self.created = ok
        return ok, why

    def isolate(self, node_id: str) -> None:
        raft_ports = {n.raft_port for n in self.cfg.nodes}
        self._add({self.cfg.node(node_id).raft_port})
        self.stop.clear()
        self.thread = threading.Thread(target=self._follow, args=(node_id, raft_ports), name="chaos-partition", daemon=True)
        self.thread.start()

    def _follow(self, node_id: str, raft_ports: set[int]) -> None:
        while not self.stop.is_set():
            pid = local.node_pid(self.cfg, node_id)
            if pid is not None:
                fresh = _outgoing_ports(pid, raft_ports) - self.blocked
                if fresh:
                    self._add(fresh)
            self.stop.wait(PARTITION_REFRESH_S)  # a refresh period, not a wait for a condition

    def _add(self, ports: set[int]) -> None:
        ok, why = _run_cmd([self.nft, "add", "element", "inet", self.table, "ports", "{ " + ", ".join(map(str, sorted(ports))) + " }"])
        assert ok, f"nft add element failed: {why}"
        self.blocked |= ports

    def heal(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None
        if self.created:
            ok, why = _run_cmd([self.nft, "flush", "set", "inet", self.table, "ports"])
            assert ok, f"nft flush set failed: {why}"
        self.blocked.clear()

    def close(self) -> None:
        self.heal()
        if self.created:
            _run_cmd([self.nft, "delete", "table", "inet", self.table])
            self.created = False


def _outgoing_ports(pid: int, raft_ports: set[int]) -> set[int]:
    """Local ports of the process's TCP connections to a Raft port (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                local_port = int(parts[1].rsplit(":", 1)[1], 16)
                remote_port = int(parts[2].rsplit(":", 1)[1], 16)
                if remote_port in raft_ports and local_port not in raft_ports:
                    ports.add(local_port)
    return ports


# --- damaged files ---------------------------------------------------------


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, payload length) of each whole record in a journal or chain file."""
    data = path.read_bytes()
    at = JOURNAL_HEAD_BYTES if path.name == JOURNAL_FILE else CHAIN_HEAD_BYTES
    out = []
    while at + RECORD_HEAD.size <= len(data):
        length, _ = RECORD_HEAD.unpack_from(data, at)
        if at + RECORD_HEAD.size + length > len(data):
            break
        out.append((at, length))
        at += RECORD_HEAD.size + length
    return out


def tear_tail(path: Path, fraction: float) -> str:
    """Cut the file inside its last record; say where."""
    records = record_offsets(path)
    if not records:
        return f"{path.name} holds no whole record: left as is"
    at, length = records[-1]
    cut = at + RECORD_HEAD.size + max(1, min(length - 1, int(length * fraction)))
    size = path.stat().st_size
    os.truncate(path, cut)
    return f"{path.name} cut from {size} to {cut} bytes (inside its last record of {length} bytes)"


def flip_middle(path: Path, fraction: float) -> str | None:
    """Flip one byte inside a record that has records after it; None if there is none."""
    records = record_offsets(path)
    if len(records) < 2:
        return None
    at, length = records[min(len(records) - 2, int((len(records) - 1) * fraction))]
    where = at + RECORD_HEAD.size + int(length * fraction) % max(1, length)
    with open(path, "r+b") as f:
        f.seek(where)
        byte = f.read(1)
        f.seek(where)
        f.write(bytes([byte[0] ^ 0xFF]))
    return f"{path.name}: byte {where} flipped (record {records.index((at, length)) + 1} of {len(records)})"


# --- the run ---------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one fault: when, what the runner saw, whether the node behaved."""

    fault: Fault
    nodes: tuple[str, ...] = ()  # the nodes it hit (a leader fault's are resolved when it starts)
    status: str = "pending"  # done, skipped, failed
    started_s: float | None = None
    healed_s: float | None = None
    catch_up_s: float | None = None  # from the heal until every node held the highest head seen at the heal
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {**asdict(self.fault), "nodesHit": list(self.nodes), "status": self.status, "startedS": self.started_s, "healedS": self.healed_s, "catchUpS": self.catch_up_s, "notes": self.notes, "problems": self.problems}


class Runner:
    def __init__(self, cfg: ClusterConfig, args: argparse.Namespace, workdir: Path, say) -> None:
        self.cfg = cfg
        self.args = args
        self.workdir = workdir
        self.say = say
        self.ids = [n.id for n in cfg.nodes]
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=False)
        self.partitioner = Partitioner(cfg)
        self.mounts: list[Path] = []
        self.paused: set[str] = set()
        self.t0 = time.monotonic()

    def now_s(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    # -- availability of the root-only kinds

    def availability(self, kinds: list[str]) -> dict[str, str]:
        """Kinds that cannot run here -> why (each printed loudly by the caller)."""
        missing = {}
        if "partition" in kinds:
            ok, why = self.partitioner.available()
            if not ok:
                missing["partition"] = why
        if "disk-full" in kinds:
            ok, why = self._mount_available()
            if not ok:
                missing["disk-full"] = why
        return missing

    def _mount_available(self) -> tuple[bool, str]:
        if os.geteuid() != 0:
            return False, "not root (mount needs CAP_SYS_ADMIN)"
        probe = self.workdir / "mount-probe"
        probe.mkdir(exist_ok=True)
        ok, why = _run_cmd(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)])
        if ok:
            _run_cmd(["umount", str(probe)])
        return (True, "tmpfs") if ok else (False, f"mount refused: {why}")

    # -- node helpers

    def start(self, node_id: str, *, rebuild: bool = False) -> None:
        local.start_node(self.cfg, node_id, rebuild=rebuild)
        local.wait_node_ready(self.cfg, node_id, timeout_s=READY_TIMEOUT_S)

    def kill(self, node_id: str) -> None:
        if node_id in self.paused:
            local.kill_node(self.cfg, node_id, signal.SIGCONT)
            self.paused.discard(node_id)
        local.kill_node(self.cfg, node_id)

    def restart_checked(self, node_id: str, outcome: Outcome, *, refusal_ok: bool = False) -> None:
        """Start the node; if it does not come back, note it (a problem unless `refusal_ok`) and rebuild it."""
        try:
            self.start(node_id)
        except (local.ClusterError, TimeoutError) as e:
            why = f"{node_id} did not come back: {str(e).splitlines()[0]}"
            (outcome.notes if refusal_ok else outcome.problems).append(why)
            outcome.notes.append(_tail(self.cfg, node_id))
            self.say(f"   {node_id} did not come back; restarting it with --rebuild")
            local.kill_node(self.cfg, node_id)
            self.start(node_id, rebuild=True)

    # -- the faults

    def targets(self, f: Fault) -> tuple[str, ...]:
        """The fault's nodes; a leader fault puts the current leader first (the schedule cannot know it)."""
        if not f.leader:
            return f.nodes
        leader = local.status(self.cfg).get("leader")
        if leader is None or leader in f.nodes:
            return f.nodes
        return (leader, *f.nodes[1:])

    def apply(self, o: Outcome) -> None:
        f = o.fault
        nodes = o.nodes = self.targets(f)
        if f.leader:
            o.notes.append(f"the leader now: {nodes[0]}")
        if f.kind == "kill":
            for n in nodes:
                self.kill(n)
            o.notes.append(f"SIGKILL {','.join(nodes)}")
            self._hold(f.hold_s)
            for n in nodes:
                self.restart_checked(n, o)
        elif f.kind == "pause":
            (n,) = nodes
            local.kill_node(self.cfg, n, signal.SIGSTOP)
            self.paused.add(n)
            o.notes.append(f"SIGSTOP {n}")
            self._hold(f.hold_s)
            local.kill_node(self.cfg, n, signal.SIGCONT)
            self.paused.discard(n)
        elif f.kind == "partition":
            (n,) = nodes
            self.partitioner.isolate(n)
            self._hold(f.hold_s)
            o.notes.append(f"{n}'s Raft traffic dropped: ports {sorted(self.partitioner.blocked)}")
            self.partitioner.heal()
        elif f.kind == "torn":
            (n,) = nodes
            self.kill(n)
            o.notes.append(tear_tail(self.cfg.node_data_dir(n) / f.file, f.fraction))
            self._hold(f.hold_s)
            self.restart_checked(n, o)
        elif f.kind == "corrupt":
            self._corrupt(o)
        elif f.kind == "disk-full":
            self._disk_full(o)
        else:
            raise AssertionError(f.kind)

    def _hold(self, hold_s: float) -> None:
        time.sleep(hold_s)  # the fault's hold time is the experiment, not a wait for a condition

    def _corrupt(self, o: Outcome) -> None:
        (n,) = o.nodes
        self.kill(n)
        data = self.cfg.node_data_dir(n)
        note = flip_middle(data / JOURNAL_FILE, o.fault.fraction)
        expected = EXIT_JOURNAL_DAMAGED
        if note is None:
            note = flip_middle(data / CHAIN_FILE, o.fault.fraction)
            expected = EXIT_CHAIN_DAMAGED
            o.notes.append(f"{JOURNAL_FILE} has fewer than 2 records: corrupting {CHAIN_FILE} instead")
        if note is None:
            o.notes.append("no file with 2 records to corrupt: restarted as is")
            self.restart_checked(n, o)
            return
        o.notes.append(note)
        # In the foreground, to read its exit status: the node must refuse at once.
        refuse_started = time.monotonic()
        with open(local.out_path(self.cfg, n), "ab") as out:
            try:
                done = subprocess.run(local.node_command(self.cfg, n), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      timeout=REFUSE_TIMEOUT_S, env=dict(os.environ, PYTHONUNBUFFERED="1"))
                code = done.returncode
            except subprocess.TimeoutExpired:
                code = None
        if code == expected:
            o.notes.append(f"{n} refused to start (exit {code} after {time.monotonic() - refuse_started:.1f} s), as it must")
        else:
            o.problems.append(f"{n} on a corrupted file: expected exit {expected}, got " + ("no exit within %g s (it ran on damaged data)" % REFUSE_TIMEOUT_S if code is None else f"exit {code}"))
            o.notes.append(_tail(self.cfg, n))
        self._hold(o.fault.hold_s)
        self.start(n, rebuild=True)
        o.notes.append(f"{n} restarted with --rebuild")

    def _disk_full(self, o: Outcome) -> None:
        (n,) = o.nodes
        data = self.cfg.node_data_dir(n)
        self.kill(n)
        stash = self.workdir / f"disk-full-{o.fault.index}-{n}"
        shutil.copytree(data, stash)
        used = sum(p.stat().st_size for p in stash.rglob("*") if p.is_file())
        size = used + DISK_SLACK_BYTES
        ok, why = _run_cmd(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(data)])
        if not ok:
            o.problems.append(f"mount failed: {why}")
            self.start(n)
            return
        self.mounts.append(data)
        try:
            shutil.copytree(stash, data, dirs_exist_ok=True)
            filler = data / "chaos-filler"
            _fill(filler)
            stat = os.statvfs(data)
            o.notes.append(f"tmpfs of {size} bytes over {data}; {stat.f_bavail * stat.f_frsize} bytes left after filling")
            try:
                self.start(n)
                o.notes.append(f"{n} started on the nearly full disk")
            except (local.ClusterError, TimeoutError) as e:
                o.notes.append(f"{n} did not start on the full disk: {str(e).splitlines()[0]}")
            self._hold(o.fault.hold_s)
            alive = local.node_pid(self.cfg, n) is not None
            o.notes.append(f"after {o.fault.hold_s} s full: {n} {'still running' if alive else 'exited (fail-stop)'}")
            filler.unlink()
            self._hold(DISK_OBSERVE_S)
            alive = local.node_pid(self.cfg, n) is not None
            o.notes.append(f"{DISK_OBSERVE_S} s after space came back: {n} {'running' if alive else 'not running'}")
            o.notes.append(_tail(self.cfg, n))
            if alive:
                local.kill_node(self.cfg, n)
            shutil.rmtree(stash)
            shutil.copytree(data, stash)
        finally:
            local.kill_node(self.cfg, n)
            self._unmount(data, o)
        shutil.rmtree(data)  # the pre-fault files under the mount point: the node's files are the tmpfs's now
        shutil.copytree(stash, data)
        shutil.rmtree(stash)
        self.restart_checked(n, o, refusal_ok=True)  # refusing its data after a full disk is allowed; diverging is not

    def _unmount(self, data: Path, o: Outcome) -> None:
        """Unmount the tmpfs; the node's killed process group may hold it for a moment, so retry, then detach lazily."""
        try:
            local.wait_for(lambda: _run_cmd(["umount", str(data)])[0], UMOUNT_TIMEOUT_S, interval_s=0.2, what=f"umount {data}")
        except TimeoutError:
            ok, why = _run_cmd(["umount", "-l", str(data)])
            o.problems.append(f"{data} stayed busy for {UMOUNT_TIMEOUT_S:g} s after the node was killed; detached lazily ({'ok' if ok else why})")
        self.mounts.remove(data)

    # -- heal everything (always, also after an error)

    def heal_all(self) -> None:
        for n in list(self.paused):
            local.kill_node(self.cfg, n, signal.SIGCONT)
        self.paused.clear()
        self.partitioner.close()
        for mount in list(self.mounts):
            n = mount.name
            local.kill_node(self.cfg, n)
            _run_cmd(["umount", "-l", str(mount)])
            self.mounts.remove(mount)


def _fill(path: Path) -> None:
    """Fill the file system holding `path` but for DISK_HEADROOM_BYTES."""
    chunk = b"\0" * (1024 * 1024)
    with open(path, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    stat = os.statvfs(path.parent)
    free = stat.f_bavail * stat.f_frsize
    size = path.stat().st_size
    os.truncate(path, max(0, size - max(0, DISK_HEADROOM_BYTES - free)))


def _tail(cfg: ClusterConfig, node_id: str) -> str:
    lines = [line for line in local.log_tail(cfg, node_id, 200).splitlines() if "ERROR" in line or "CRITICAL" in line or "WARNING" in line or "refusing" in line]
    return f"{node_id} log: " + (" | ".join(line[:200] for line in lines[-LOG_LINES_SHOWN:]) or "(nothing notable)")


# --- the checker -----------------------------------------------------------


@dataclass
class Ledger:
    """One node's chain as read from its blocks.dat."""

    node: str
    base: int
    height: int
    hashes: list[bytes]  # index i: block base + 1 + i
    accepted: dict[str, list[tuple[int, int]]]  # client order id -> [(order id, height)]
    flows: dict[str, int]  # asset -> sum of BalanceChanged deltas (units)
    error: str | None = None


def read_ledger(cfg: ClusterConfig, node_id: str) -> Ledger:
    from dex.core.events import BalanceChanged, OrderAccepted
    from dex.ledger.chain import Chain, ChainError
    from dex.ledger.codec import decode_events, decode_proposal

    path = cfg.node_data_dir(node_id) / CHAIN_FILE
    accepted: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    flows: dict[str, int] = collections.Counter()
    try:
        chain = Chain(path, read_only=True)
    except (OSError, ChainError) as e:
        return Ledger(node_id, 0, 0, [], {}, {}, error=f"{type(e).__name__}: {e}")
    try:
        base, height = chain.base_height, chain.height
        hashes = []
        for h in range(base + 1, height + 1):
            stored = chain.get(h)
            hashes.append(stored.hash)
            proposal, _ = decode_proposal(stored.proposal)
            at = 0
            for _ in proposal.commands:
                events, at = decode_events(stored.results, at)
                for ev in events:
                    if type(ev) is OrderAccepted and ev.client_order_id is not None:
                        accepted[ev.client_order_id].append((ev.order_id, h))
                    elif type(ev) is BalanceChanged:
                        flows[ev.asset] += ev.delta
    finally:
        chain.close()
    return Ledger(node_id, base, height, hashes, dict(accepted), dict(flows))


def _verdict(ok: bool, detail: str, **extra) -> dict:
    return {"ok": ok, "detail": detail, **extra}


def check(cfg: ClusterConfig, load: Load, outcomes: list[Outcome], converged: bool, say) -> dict[str, dict]:
    from dex import audit as auditing
    from dex.core.markets import units_to_amount

    assets = {a.name: a for a in cfg.markets.assets}
    ids = [n.id for n in cfg.nodes]
    ledgers = {n: read_ledger(cfg, n) for n in ids}
    verdicts: dict[str, dict] = {}
    unreadable = {n: l.error for n, l in ledgers.items() if l.error}
    verdicts["ledgers_readable"] = _verdict(not unreadable, "every blocks.dat read" if not unreadable else f"unreadable: {unreadable}")

    # Every acknowledged order once, with its order id, in every ledger (above a snapshot base).
    missing, wrong = [], []
    for n, l in ledgers.items():
        for cid, (oid, height) in load.record.acked.items():
            found = l.accepted.get(cid, [])
            if height and height <= l.base:
                continue
            if not found:
                missing.append(f"{n}:{cid}")
            elif [o for o, _ in found] != [oid]:
                wrong.append(f"{n}:{cid} acked {oid}, ledger {found}")
    acked = len(load.record.acked)
    verdicts["acknowledged_once_everywhere"] = _verdict(
        not missing and not wrong,
        f"{acked} acknowledged orders in {len(ids)} ledgers: {len(missing)} missing, {len(wrong)} with another id or more than once",
        missing=missing[:20], wrong=wrong[:20],
    )
    # This run's ids only: a --config cluster's older history may reuse ids past the dedup window.
    dups = {n: [c for c, found in l.accepted.items() if len(found) > 1 and c.startswith(load.tag)] for n, l in ledgers.items()}
    dups = {n: d for n, d in dups.items() if d}
    verdicts["no_duplicate_client_order_id"] = _verdict(not dups, "no client order id accepted twice" if not dups else f"{sum(map(len, dups.values()))} duplicated", duplicates={n: d[:20] for n, d in dups.items()})

    # All chains agree, block by block.
    heights = {n: l.height for n, l in ledgers.items()}
    divergent = []
    top = max(heights.values(), default=0)
    for h in range(1, top + 1):
        seen = {}
        for n, l in ledgers.items():
            if l.base < h <= l.height:
                seen[n] = l.hashes[h - l.base - 1]
        if len(set(seen.values())) > 1:
            divergent.append(h)
    same_height = len(set(heights.values())) == 1
    verdicts["chains_agree"] = _verdict(
        same_height and not divergent,
        f"heights {heights}; " + (f"{len(divergent)} heights differ, first {divergent[0]}" if divergent else "every shared height has one hash"),
        divergent_heights=divergent[:20],
    )

    # Unknown outcomes: resolved the same way on every node.
    differ = []
    resolved = collections.Counter()
    for cid in load.record.unknown:
        present = {n: cid in l.accepted for n, l in ledgers.items()}
        if len(set(present.values())) > 1:
            differ.append(f"{cid}: {present}")
        resolved["accepted" if all(present.values()) else "absent"] += 1
    verdicts["unknown_resolved_same_everywhere"] = _verdict(not differ, f"{len(load.record.unknown)} unknown outcomes: {dict(resolved)}", differ=differ[:20])

    # The audit, and balances against the ledgered flows.
    audits, conserve = {}, {}
    for n in ids:
        say(f"   auditing {n}'s chain")
        report, engine = auditing.audit(auditing.chain_path(cfg.node_data_dir(n)), cfg.markets, jobs=1)
        audits[n] = {"ok": report.ok, "blocks": report.blocks, "orders": report.orders, "problems": report.problems[:5]}
        totals: dict[str, int] = collections.Counter()
        for acct in engine.accounts:
            for asset, (free, locked) in engine.balances(acct).items():
                totals[asset] += free + locked
        flows = ledgers[n].flows
        bad = {a: {"balances": totals.get(a, 0), "flows": flows.get(a, 0)} for a in set(totals) | set(flows) if totals.get(a, 0) != flows.get(a, 0)}
        conserve[n] = bad
    failed = [n for n, a in audits.items() if not a["ok"]]
    verdicts["audit_passes"] = _verdict(not failed, "audit OK on every node" if not failed else f"audit failed on {failed}", audits=audits)
    broken = {n: b for n, b in conserve.items() if b}
    verdicts["balances_conserve"] = _verdict(
        not broken and not unreadable,
        "per asset, balances (fee account included) = deposits - withdrawals on every node" if not broken else f"not conserved: {broken}",
        flows={n: {a: units_to_amount(assets[a], v) for a, v in sorted(ledgers[n].flows.items())} for n in ids},
    )

    healed = [o for o in outcomes if o.status in ("done", "failed")]
    slow = {o.fault.index: o.catch_up_s for o in healed if o.catch_up_s is None or o.catch_up_s > CATCH_UP_S_MAX}
    worst = max((o.catch_up_s for o in healed if o.catch_up_s is not None), default=None)
    verdicts["caught_up"] = _verdict(
        not slow and converged,
        f"after each of {len(healed)} heals every node caught up within {worst} s (target <= {CATCH_UP_S_MAX} s)"
        + ("" if converged else "; but at the end the nodes never reached one head")
        + (f"; too slow or never: {slow}" if slow else ""),
        catch_up_s={o.fault.index: o.catch_up_s for o in healed},
    )
    misbehaved = {o.fault.index: o.problems for o in outcomes if o.problems}
    verdicts["faults_behaved"] = _verdict(not misbehaved, "every fault behaved as expected" if not misbehaved else f"{len(misbehaved)} faults did not", problems=misbehaved)
    truncations = []
    for n in ids:
        for path in sorted(cfg.node_data_dir(n).glob("node.log*")) + [local.out_path(cfg, n)]:
            if path.exists():
                with open(path, errors="replace") as f:
                    truncations += [f"{path.name}: {line.strip()[:200]}" for line in f if TRUNCATION_LINE in line]
    verdicts["no_applied_entries_truncated"] = _verdict(not truncations, f"{len(truncations)} log lines say applied entries were truncated", lines=truncations[:10])
    return verdicts


# --- the command -----------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: random, printed)")
    p.add_argument("--duration", type=float, default=DURATION_S_DEFAULT, help="seconds of load and faults")
    p.add_argument("--faults", default=",".join(FAULT_KINDS), help=f"comma-separated kinds: {','.join(FAULT_KINDS)}")
    p.add_argument("--nodes", type=int, default=NODES_DEFAULT, help="nodes of the temporary cluster")
    p.add_argument("--hold-max", type=float, default=HOLD_S_MAX, help=f"longest hold of a fault, seconds (holds are drawn from {HOLD_S_MIN:g}..this)")
    p.add_argument("--rate", type=int, default=RATE_DEFAULT, help="orders per second of the load")
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="write the JSON report here")
    p.add_argument("--keep", action="store_true", help="keep the temporary cluster's directory (logs, data)")
    p.add_argument("--schedule-only", action="store_true", help="print the schedule for this seed and exit")


def main(args: argparse.Namespace) -> int:
    """`dex chaos`; returns the exit status (see the module docstring)."""
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        print(f"dex chaos: unknown fault kind(s) {unknown}; choose from {','.join(FAULT_KINDS)}", file=sys.stderr)
        return 2
    if (not DURATION_S_MIN <= args.duration <= DURATION_S_MAX or not NODES_MIN <= args.nodes <= NODES_MAX
            or not 1 <= args.rate <= RATE_MAX or not HOLD_S_MIN < args.hold_max <= HOLD_S_LIMIT):
        print(f"dex chaos: --duration in {DURATION_S_MIN:g}..{DURATION_S_MAX:g}, --nodes in {NODES_MIN}..{NODES_MAX}, --rate in 1..{RATE_MAX}, "
              f"--hold-max in {HOLD_S_MIN:g} (excluded)..{HOLD_S_LIMIT:g}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)

    def say(text: str) -> None:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", flush=True)

    own = args.config is None
    workdir = Path(tempfile.mkdtemp(prefix="dex-chaos-"))
    if own:
        cfg = load_config(str(write_config(workdir, args.nodes)))
    else:
        cfg = load_config(args.config)
    ids = [n.id for n in cfg.nodes]
    schedule = draw_schedule(seed, args.duration, kinds, ids, hold_s_max=args.hold_max)
    say(f"seed {seed}: {len(schedule)} faults over {args.duration:g} s on {len(ids)} nodes (rerun: dex chaos --seed {seed} --duration {args.duration:g} --faults {','.join(kinds)}" + (f" --hold-max {args.hold_max:g}" if args.hold_max != HOLD_S_MAX else "") + (f" --nodes {args.nodes})" if own else f" --config {args.config})"))
    for f in schedule:
        say("  " + f.describe())
    if args.schedule_only:
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    report: dict = {"seed": seed, "durationS": args.duration, "holdSMax": args.hold_max, "rate": args.rate, "faultKinds": kinds, "nodes": ids, "config": str(cfg.path), "workdir": str(workdir)}
    runner = Runner(cfg, args, workdir, say)
    outcomes = [Outcome(f) for f in schedule]
    started = time.monotonic()
    load = None
    try:
        skipped = runner.availability(kinds)
        for kind, why in skipped.items():
            say(f"SKIPPED {kind}: {why} (its faults are left out of this run)")
        report["skippedKinds"] = skipped
        if own:
            local.init(cfg)
        say("starting the cluster" if own else "checking the cluster is up")
        local.up(cfg, timeout_s=UP_TIMEOUT_S)
        load = Load(cfg, seed, args.rate, f"c{seed}-{secrets.token_hex(3)}-")  # a fresh tag: reruns never meet the dedup window
        load.fund()
        say(f"funded {ACCOUNTS} accounts; load at {args.rate} orders/s")
        runner.t0 = load.record.t0 = time.monotonic()
        load.start()
        for o in outcomes:
            f = o.fault
            if f.kind in skipped:
                o.status = "skipped"
                continue
            wait_s = f.at_s - runner.now_s()
            if wait_s > 0:
                load.stop.wait(wait_s)  # the schedule's clock
            o.started_s = runner.now_s()
            say(f"fault {f.describe()}")
            runner.apply(o)
            o.healed_s = runner.now_s()
            o.catch_up_s = _catch_up(runner, cfg)
            o.notes.append(f"every node caught up {o.catch_up_s} s after the heal" if o.catch_up_s is not None else f"the nodes did not catch up within {CONVERGE_TIMEOUT_S:g} s of the heal")
            o.status = "failed" if o.problems else "done"
            for note in o.notes:
                say(f"   {note}")
            for problem in o.problems:
                say(f"   PROBLEM: {problem}")
        rest_s = args.duration - runner.now_s()
        if rest_s > 0:
            load.stop.wait(rest_s)
        runner.heal_all()
        say("load stopping (requests in flight finish or time out)")
        load.finish()
        say("waiting for every node to reach one head")
        converged = _converge(runner, cfg)
        report["loadCounts"] = dict(load.record.counts)
        last_s = max(load.record.acks_per_s, default=-1)
        report["acksPerS"] = [load.record.acks_per_s.get(t, 0) for t in range(last_s + 1)]  # index: second of the run, as the schedule's t
        report["acknowledged"] = len(load.record.acked)
        report["unknown"] = len(load.record.unknown)
        report["rejectedSamples"] = dict(list(load.record.rejected.items())[:5])
        report["checks"] = check(cfg, load, outcomes, converged, say)
    except (local.ClusterError, TimeoutError, ChaosError, OSError) as e:
        say(f"ERROR: the run could not finish: {e}")
        report["error"] = str(e)
        report.setdefault("checks", {})["run_completed"] = _verdict(False, str(e).splitlines()[0])
    finally:
        if load is not None:
            load.stop.set()
        runner.heal_all()
        if own:
            local.down(cfg)
        runner.http.close()
    report["schedule"] = [o.as_json() for o in outcomes]
    report["elapsedS"] = round(time.monotonic() - started, 1)
    checks = report.get("checks", {})
    report["ok"] = bool(checks) and all(c["ok"] for c in checks.values())
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    _summary(report, say)
    if not args.keep and report["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"kept {workdir} (" + ("the cluster's config, data and logs)" if own else "the runner's scratch files)"))
    return 0 if report["ok"] else 1


def _catch_up(runner: Runner, cfg: ClusterConfig) -> float | None:
    """Seconds until every node holds the highest head height any node reports now (the load
    goes on meanwhile), or None if they do not within CONVERGE_TIMEOUT_S."""
    ids = [n.id for n in cfg.nodes]
    started = time.monotonic()
    heights = [h[0] for n in ids if (h := head_of(runner.http, cfg, n)) is not None]
    target = max(heights, default=0)

    def caught_up() -> bool:
        heads = [head_of(runner.http, cfg, n) for n in ids]
        return all(h is not None and h[0] >= target for h in heads)

    try:
        local.wait_for(caught_up, CONVERGE_TIMEOUT_S, interval_s=0.05, what=f"every node to reach height {target}")
    except TimeoutError:
        return None
    return round(time.monotonic() - started, 2)


def _converge(runner: Runner, cfg: ClusterConfig) -> bool:
    """Wait, with the load stopped, until every node reports one head; False if they do not."""
    ids = [n.id for n in cfg.nodes]
    split_since: list[float] = []  # when the nodes were first seen at one height with different hashes

    def one_head():
        heads = {n: head_of(runner.http, cfg, n) for n in ids}
        if None in heads.values():
            return False
        if len(set(heads.values())) == 1:
            return True
        if len({h for h, _ in heads.values()}) == 1:  # one height, several hashes: diverged, or about to move on
            split_since.append(time.monotonic())
            if split_since[-1] - split_since[0] > DIVERGED_S_MIN:
                raise ChaosError(f"the nodes stay at one height with different head hashes: {heads}")
        else:
            split_since.clear()
        return False

    try:
        local.wait_for(one_head, CONVERGE_TIMEOUT_S, interval_s=0.1, what="every node to report one head")
    except (TimeoutError, ChaosError):
        return False
    return True


def _summary(report: dict, say) -> None:
    say(f"seed {report['seed']}: {report.get('acknowledged', 0)} orders acknowledged, {report.get('unknown', 0)} unknown outcomes, load {report.get('loadCounts', {})}")
    for o in report["schedule"]:
        say(f"  fault #{o['index']} {o['kind']:<9} {','.join(o['nodesHit'] or o['nodes'])}: {o['status']}" + (f" ({'; '.join(o['problems'])})" if o["problems"] else ""))
    for name, c in report.get("checks", {}).items():
        say(f"  {'PASS' if c['ok'] else 'FAIL'}  {name}: {c['detail']}")
    say("RESULT: " + ("every check passed" if report["ok"] else "FAILED"))
