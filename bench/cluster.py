"""Benchmark of a local dex cluster over HTTP: throughput, latency, failover,
catch-up, and a check that no acknowledged order was lost or duplicated.

The benchmark writes its own cluster config (--nodes N on loopback, free
ports, data in a temp dir, faucet on, the markets of configs/markets.toml,
the block builder settings of configs/local-4.toml unless overridden),
starts the cluster with cluster.local (init, up) and always tears it down.

Load. One or more client processes (--client-procs), each an asyncio loop
with a minimal HTTP/1.1 keep-alive client (--http raw; --http httpx uses
httpx.AsyncClient instead, at several times the client CPU per request),
send signed requests (dex.auth.Keypair.headers, Ed25519) round robin to every
node. Every new order has a unique newClientOrderId and newOrderRespType
ACK; a request that meets a 503, a 5xx, a timeout or a dead node is retried
with the same body (so the same client order id) on the next node, after the
wait the answer asks for (X-DEX-SHED-MS on a shed -1008, else Retry-After; at
most 1 s, at least the doubling backoff), as dex.client does. The
order mix, from --accounts funded accounts on BTCUSDT:

    (100 - cross_pct)%  passive GTC limit orders 1-500 ticks from a fixed mid
    cross_pct%          IOC limit orders 100 ticks through the mid
    cancels             whenever a client process holds more than its share
                        of --book-target acknowledged passive orders, it
                        cancels its oldest one (by orderId), so the book never
                        holds more than --book-target resting orders; with
                        --batch, it cancels all of that order's account's
                        orders with one DELETE /openOrders instead

Modes (any combination; they run in this order on the same cluster):

    saturating  (default, or with --duration alone) --concurrency requests in
                flight for --duration s; orders_per_s = orders acknowledged
                within the window / duration; latency = request to 200.
    --rate R    open loop: new orders scheduled at R/s for --duration s
                (cancels are extra); latency = scheduled send time to 200.
    --overload F
                after the saturating run (its orders/s is the capacity, unless
                --capacity is given), an open loop at F x capacity for
                --rate-duration s in which a 503 -1008 (shed by admission) is
                not retried: reports committed/s against capacity, the
                accepted orders' latency, how fast the shed ones were
                answered, and whether each carried Retry-After.
    --kills K   under --kill-rate orders/s (default 200), SIGKILL the current
                leader K times; failover = kill to the first 200 for an order
                whose (final) attempt was sent after the kill, on any node.
                After each recovery the killed node is restarted and must
                catch up before the next kill.
    --catchup N SIGKILL a follower, place N orders (saturating, on the live
                nodes), restart it; catchup_s = restart to its head height
                equal to the leader's.

After the modes: wait for every node to reach the same height; compare head
and state hashes; walk every node's ledger (GET /api/v1/blocks/{h} for all
heights) collecting OrderAccepted events by clientOrderId; lost = an
acknowledged order missing (or with another orderId) on any node; duplicate =
a client order id accepted more than once in a ledger. Node logs are scanned
for "truncating already-applied log entries", ERROR/CRITICAL lines and
tracebacks.

Usage:
    python bench/cluster.py                       # 20 s saturating
    python bench/cluster.py --rate 1000
    python bench/cluster.py --kills 20
    python bench/cluster.py --catchup 100000
    python bench/cluster.py --duration 3 --kills 1 --json    # the smoke test
    python bench/cluster.py --replay-cost 3 --duration 15    # replay guard on vs off

--replay-cost P runs P pairs of saturating runs (ABBA order: on/off, then
off/on, ...), each on a fresh cluster of the same build; the "off" runs start
the nodes with DEX_BENCH_UNSAFE_NO_REPLAY_CHECK=1 (dex/node.py: the replay
guard admits everything; nodes refuse it off loopback). It prints each run
and cost = 1 - median(on) / median(off) orders/s (target <= 10%).

Exit status: 0 when the run completed and the ledgers check out, 1 when an
acknowledged order is lost or duplicated or the nodes' hashes disagree, 2 on
an error (the cluster is torn down in every case).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import gc
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# This file is named cluster.py: its own directory must not shadow the `cluster` package.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() not in (HERE, REPO)]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from cluster import local  # noqa: E402

sys.path.append(str(HERE))  # after `cluster` is imported, so bench/cluster.py cannot shadow it
from machine import describe  # noqa: E402 (bench/machine.py)
from dex.api.server import CONNECTIONS_PER_ADDRESS_MAX  # noqa: E402
from dex.auth import Keypair  # noqa: E402
from dex.client import OVERLOADED, asked_wait_s  # noqa: E402 (the client's retry wait, mirrored)
from dex.config import ClusterConfig, load_cluster  # noqa: E402

SYMBOL = "BTCUSDT"
MID_TICKS = 5_000_000  # 50,000.00 USDT (tick 0.01)
PASSIVE_TICKS_MAX = 500
CROSS_TICKS = 100
QTY_LOTS_MIN, QTY_LOTS_MAX = 10, 100  # 0.0001 .. 0.001 BTC (step 0.00001): >= 5 USDT notional
DEPOSITS = (("USDT", "40000000"), ("BTC", "10000"))  # under the faucet's per-account share (dex.api.trading.FAUCET_ACCOUNT_UNITS_MAX)
RESERVED_PORTS = set(range(7101, 7105)) | set(range(8101, 8105))  # configs/local-4.toml

REQUEST_TIMEOUT_S = 10.0  # one attempt (a node answers within 5 s, a forward within 7 s)
REQUEST_DEADLINE_S = 30.0  # all attempts of one request
RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
BACKOFF_MIN_S = 0.01
BACKOFF_MAX_S = 0.2
INFLIGHT_OPEN_LOOP_MAX = 20_000
# Connections to one node from all client processes together: under the
# node's per-address cap, so the generator never meets the cap's 429s (every
# client process is one loopback address). 256 at ~5,000 requests/s to four
# nodes still allows ~200 ms of answer time per request before requests wait
# for a connection, which then shows as the open loop's send lag.
CLIENT_CONNECTIONS_PER_NODE_MAX = 256
assert CLIENT_CONNECTIONS_PER_NODE_MAX < CONNECTIONS_PER_ADDRESS_MAX
# Open loop: requests waiting for a connection, all nodes together, past which
# a scheduled request is not sent but counted (open_loop_skipped_backlog): a
# backlog without a bound grew to INFLIGHT_OPEN_LOOP_MAX tasks, whose full
# collections paused the generator for up to 0.7 s, so it fell further behind.
CLIENT_BACKLOG_MAX = CLIENT_CONNECTIONS_PER_NODE_MAX * 4
LOOP_LAG_TICK_S = 0.005  # the client's event-loop lag probe: one wake-up per tick
STATUS_TIMEOUT_S = 2.0
TRUNCATE_MARKER = "truncating already-applied log entries"
REPLAY_OFF_MARKER = "REPLAY PROTECTION IS OFF"  # dex.node logs it at start under DEX_BENCH_UNSAFE_NO_REPLAY_CHECK=1


def log(args, msg: str) -> None:
    if not args.quiet:
        print(f"  .. {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ machine


def machine() -> dict:
    return {**describe(), "loadavg_at_start": os.getloadavg()[0], "dex_commit": _git_commit()}


def _git_commit() -> str | None:
    """The checked-out commit (read only), with "+dirty" when dex/ or cluster/ differ from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dex", "cluster"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _clk() -> int:
    return os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int | None) -> float:
    """utime + stime of a process (its threads included), 0.0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _clk()
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds all processes spent busy (from /proc/stat)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _clk()


class CpuProbe:
    """Where the CPU went during a phase: the nodes, the client processes,
    everything else on the machine."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_s()
        self.pids = {n.id: local.node_pid(cfg, n.id) for n in cfg.nodes}
        self.nodes0 = {n: proc_cpu_s(p) for n, p in self.pids.items()}

    def stop(self, client_cpu_s: float) -> dict:
        wall = max(time.monotonic() - self.t0, 1e-9)
        busy = machine_busy_s() - self.busy0
        nodes = 0.0
        for n, p in self.pids.items():
            if p is not None and local.node_pid(self.cfg, n) == p:
                nodes += proc_cpu_s(p) - self.nodes0[n]
        return {
            "machine_cores_busy": round(busy / wall, 2),
            "nodes_cores": round(nodes / wall, 2),
            "client_cores": round(client_cpu_s / wall, 2),
            "other_cores": round(max(0.0, busy - nodes - client_cpu_s) / wall, 2),
        }


# ------------------------------------------------------------------ config


def free_ports(count: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in RESERVED_PORTS and port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def write_config(args, workdir: Path) -> Path:
    with open(REPO / "configs" / "local-4.toml", "rb") as f:
        base = tomllib.load(f).get("cluster", {})
    settings = {
        "block_interval_ms": args.block_interval_ms or base.get("block_interval_ms", 5),
        "block_commands_max": args.block_commands_max or base.get("block_commands_max", 256),
        "block_bytes_max": args.block_bytes_max or base.get("block_bytes_max", 16384),
        "inflight_blocks_max": args.inflight_blocks_max or base.get("inflight_blocks_max", 64),
        # A benchmark measures the cluster, not the per-account rate limit.
        "rate_limit_per_s": 1_000_000,
        "rate_limit_burst": 1_000_000,
        "durability": f'"{args.durability}"',
    }
    ports = free_ports(2 * args.nodes)
    lines = [
        "# written by bench/cluster.py",
        "[cluster]",
        f'name = "bench-{args.nodes}"',
        f'markets = "{(REPO / "configs" / "markets.toml").as_posix()}"',
        'data_dir = "data"',
        'secret_file = "data/cluster.secret"',
        "faucet = true",
    ]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    if args.no_verify:
        lines.append("verify_signatures = false  # --no-verify: measures what the Ed25519 check costs")
    for i in range(args.nodes):
        lines += ["", "[[nodes]]", f'id = "n{i + 1}"', f'raft = "127.0.0.1:{ports[2 * i]}"', f'api = "127.0.0.1:{ports[2 * i + 1]}"']
    path = workdir / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------- HTTP client


class HttpError(Exception):
    pass


class RawPool:
    """Keep-alive HTTP/1.1 connections to one node; one request per connection at a time.

    At most `connections_max` connections are open (in use or idle): a
    request that finds none free waits for one, in order (the client's own
    queue, which the open loop reports as its send lag). Without the bound an
    open loop opened a connection for every request in flight: past the
    node's per-address cap (dex.api.server.CONNECTIONS_PER_ADDRESS_MAX) each
    new one was refused 429, retried, and the generator spent its CPU on
    connects instead of reading answers (docs/BENCHMARKS.md, overload).
    Invariant: open connections = in use + idle <= connections_max.
    """

    def __init__(self, url: str, connections_max: int) -> None:
        assert connections_max >= 1
        rest = url.split("://", 1)[1].rstrip("/")
        self.hostport = rest
        self.host, port = rest.rsplit(":", 1)
        self.port = int(port)
        self.idle: list = []
        self.slots = asyncio.Semaphore(connections_max)
        self.connections_max = connections_max
        self.opened = 0  # connections opened since start (each a connect on both sides)
        self.open = 0  # open now, in use or idle
        self.waiting = 0  # requests waiting for a connection: the client's own backlog

    async def request(self, method: str, target: str, headers, body: bytes) -> tuple[int, bytes, tuple[str | None, str | None], float]:
        """(status, body, (X-DEX-SHED-MS, Retry-After) each None when absent,
        monotonic time the request was written). `headers`: a dict, or a
        callable that returns one, called once a connection is held (a
        signature's timestamp is then not aged by the wait for one)."""
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            return await self._exchange(self._encode(method, target, headers() if callable(headers) else headers, body))
        finally:
            self.slots.release()

    def _encode(self, method: str, target: str, headers: dict, body: bytes) -> bytes:
        head = [f"{method} {target} HTTP/1.1\r\nHost: {self.hostport}\r\nContent-Length: {len(body)}\r\n"]
        if body:
            head.append("Content-Type: application/json\r\n")
        for k, v in headers.items():
            head.append(f"{k}: {v}\r\n")
        head.append("\r\n")
        return "".join(head).encode() + body

    async def _connect(self):
        conn = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        self.open += 1
        assert self.open <= self.connections_max, (self.open, self.connections_max)
        return conn

    def _drop(self, writer) -> None:
        writer.close()
        self.open -= 1

    async def _exchange(self, data: bytes):
        for attempt in (0, 1):
            fresh = attempt > 0 or not self.idle
            if fresh:
                reader, writer = await self._connect()
            else:
                reader, writer = self.idle.pop()
            written = time.monotonic()
            try:
                writer.write(data)
                raw = await reader.readuntil(b"\r\n\r\n")
            except BaseException as e:
                self._drop(writer)
                # A kept-alive connection the server closed while idle: retry once on a fresh one.
                if fresh or attempt or not isinstance(e, (ConnectionError, asyncio.IncompleteReadError)):
                    raise
                continue
            try:
                lines = raw.split(b"\r\n")
                status = int(lines[0][9:12])
                length = None
                keep = True
                shed_ms = retry_after = None
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        keep = False
                    elif name == b"retry-after":
                        retry_after = value.strip().decode("latin-1")
                    elif name == b"x-dex-shed-ms":
                        shed_ms = value.strip().decode("latin-1")
                    elif name == b"transfer-encoding":
                        raise HttpError("chunked responses are not supported")
                payload = await reader.readexactly(length) if length else b""
            except BaseException:
                self._drop(writer)
                raise
            if keep:
                self.idle.append((reader, writer))
            else:
                self._drop(writer)
            return status, payload, (shed_ms, retry_after), written
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for _, writer in self.idle:
            self._drop(writer)
        self.idle.clear()


class HttpxPool:
    """The same interface over httpx.AsyncClient (for comparison: more client CPU per request)."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/")
        self.client = client

    async def request(self, method: str, target: str, headers, body: bytes) -> tuple[int, bytes, tuple[str | None, str | None], float]:
        headers = headers() if callable(headers) else headers
        if body:
            headers = dict(headers, **{"Content-Type": "application/json"})
        written = time.monotonic()  # httpx queues inside; this is when it was handed over
        r = await self.client.request(method, self.url + target, headers=headers, content=body or None)
        return r.status_code, r.content, (r.headers.get("x-dex-shed-ms"), r.headers.get("retry-after")), written

    async def close(self) -> None:
        pass


def make_pools(urls: list[str], kind: str, connections_max: int = CLIENT_CONNECTIONS_PER_NODE_MAX):
    """One pool per node, each at most `connections_max` connections (one
    client process's share of CLIENT_CONNECTIONS_PER_NODE_MAX)."""
    if kind == "httpx":
        client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, trust_env=False,
                                   limits=httpx.Limits(max_connections=connections_max * len(urls), max_keepalive_connections=connections_max * len(urls)))
        return [HttpxPool(u, client) for u in urls], client
    return [RawPool(u, connections_max) for u in urls], None


CONNECT_ERRORS = (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, HttpError, httpx.HTTPError)


# ------------------------------------------------------------ load worker


def fmt_price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


def fmt_qty(lots: int) -> str:
    return f"{lots // 100000}.{lots % 100000:05d}"


def overload_final(status: int | None, payload: bytes) -> str | None:
    """In the overload phase, which answers are final refusals, not failures
    to retry: "shed" for a 503 -1008 (admission: nothing was queued),
    "refused" for a 429 (a connection over the node's per-address cap, or
    the account's rate limit: refused before anything was read). Both come
    with Retry-After; retrying them at 3x capacity would only add load."""
    if status == 503 and b"-1008" in payload[:40]:
        return "shed"
    if status == 429:
        return "refused"
    return None


class Load:
    """One client process's load: a slice of the accounts, its own order ids."""

    def __init__(self, spec: dict, shared=None) -> None:
        self.spec = spec
        self.shared = shared  # (mp.Array of last successful attempt starts, index) or None
        self.keys = [Keypair.from_private(s) for s in spec["seeds"]]
        self.rng = random.Random(spec["seed"])
        self.prefix = spec["cid_prefix"]
        self.seq = 0
        self.rr = spec["worker"]
        self.book_target = spec["book_target"]
        self.resting: collections.deque = collections.deque()  # (key index, order id) of acked passive orders
        self.lat_ms: list[float] = []
        self.shed_lat_ms: list[float] = []  # overload mode: scheduled send to its 503 -1008 (or 429)
        self.send_lag_ms: list[float] = []  # open loop: scheduled send to the first attempt's write
        self.written_lat_ms: list[float] = []  # acked orders: first write to the answer read
        self.shed_written_lat_ms: list[float] = []  # overload mode: first write to the 503 -1008 (or 429) read
        self.gc_pause_ms: list[float] = []  # this process's cyclic collections (generation 2), each
        self.loop_lag_ms: list[float] = []  # the client's event loop: how late a LOOP_LAG_TICK_S sleep woke
        self.ok_times: list[tuple[float, float]] = []  # (attempt start, done) for acked orders
        self.acked: list[tuple[str, int, int]] = []  # (client order id, order id, block height)
        self.unacked: list[str] = []  # client order ids given up on (outcome unknown)
        self.counts = collections.Counter()
        self.statuses = collections.Counter()  # non-200 answers and transport errors
        self.samples: dict[str, str] = {}
        self.sign_ns = 0
        self.signs = 0
        self.timeline: collections.Counter = collections.Counter()
        self.start = 0.0
        self.end = math.inf

    # -- one request, with retries

    async def send(self, method: str, path: str, query: str, body: bytes, key: Keypair) -> tuple[int | None, bytes, float, float | None]:
        """(status or None when given up, body, the final attempt's start, when
        the first attempt was written or None if it never was)."""
        pools = self.pools
        n = len(pools)
        node = self.rr % n
        self.rr += 1
        target = path + ("?" + query if query else "")
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        delay = BACKOFF_MIN_S
        first_written = None

        def sign() -> dict:
            t = time.perf_counter_ns()
            headers = key.headers(time.time_ns() // 1_000_000, method, path, query, body)
            self.sign_ns += time.perf_counter_ns() - t
            self.signs += 1
            return headers

        while True:
            attempt_start = time.monotonic()
            status = None
            hints = (None, None)  # X-DEX-SHED-MS, Retry-After
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status, payload, hints, written = await pools[node].request(method, target, sign, body)
                if first_written is None:
                    first_written = written
            except CONNECT_ERRORS as e:
                name = type(e).__name__
                self.statuses[f"{method} {name}"] += 1
                self.samples.setdefault(f"{method} {name}", str(e)[:200])
                payload = b""
            final = overload_final(status, payload) if self.spec.get("shed_is_final") else None
            if final is not None:
                # Overload mode: a request shed by admission (503 -1008), or
                # refused at the door (429: too many connections, or the rate
                # limit), is an answer, not a failure to retry.
                self.counts[f"{final}_with_retry_after" if hints[1] else f"{final}_without_retry_after"] += 1
                return status, payload, attempt_start, first_written
            if status is not None and status not in RETRY_STATUSES:
                if status != 200:
                    label = f"{method} {status}"
                    self.statuses[label] += 1
                    self.samples.setdefault(label, payload[:200].decode(errors="replace"))
                return status, payload, attempt_start, first_written
            if status is not None:
                label = f"{method} {status}"
                self.statuses[label] += 1
                msg = _msg(payload)
                self.statuses[f"{label}: {msg[:70]}"] += 1
            wait = delay
            asked = asked_wait_s(OVERLOADED if b"-1008" in payload[:40] else None, *hints)
            if asked is not None:
                # By dex.client's own rule: a shed request comes back when the
                # node said (its X-DEX-SHED-MS on a -1008, else Retry-After), at
                # most 1 s later, and never sooner than the doubling backoff.
                # Retrying a 503 in 10 ms whatever the node said kept an
                # overloaded cluster overloaded by its own retries.
                wait = max(delay, asked)
            if time.monotonic() + wait > deadline:
                return None, payload, attempt_start, first_written
            node = (node + 1) % n
            await asyncio.sleep(wait)
            delay = min(delay * 2, BACKOFF_MAX_S)

    # -- the operations

    async def place_batch(self) -> None:
        """One POST /batchOrders of `batch` orders signed by one account:
        passive GTC batches and crossing IOC batches alternate (a batch is one
        account's, so it cannot cross itself), which keeps the book bounded."""
        rng = self.rng
        n = self.spec["batch"]
        k = rng.randrange(len(self.keys))
        passive = rng.random() * 100 >= max(self.spec["cross_pct"], 45)
        buy = rng.random() < 0.5
        orders, cids = [], []
        for _ in range(n):
            self.seq += 1
            cid = f"{self.prefix}{self.seq}"
            lots = rng.randint(QTY_LOTS_MIN, QTY_LOTS_MAX)
            if passive:
                off = rng.randint(1, PASSIVE_TICKS_MAX)
                ticks, tif = (MID_TICKS - off if buy else MID_TICKS + off), "GTC"
            else:
                ticks, tif = (MID_TICKS + CROSS_TICKS if buy else MID_TICKS - CROSS_TICKS), "IOC"
            orders.append(
                f'{{"symbol":"{SYMBOL}","side":"{"BUY" if buy else "SELL"}","type":"LIMIT","timeInForce":"{tif}",'
                f'"price":"{fmt_price(ticks)}","quantity":"{fmt_qty(lots)}","newClientOrderId":"{cid}",'
                f'"newOrderRespType":"ACK"}}'
            )
            cids.append(cid)
        body = ('{"batchOrders":[' + ",".join(orders) + "]}").encode()
        t0 = time.monotonic()
        self.counts["orders_sent"] += n
        status, payload, attempt_start, _ = await self.send("POST", "/api/v1/batchOrders", "", body, self.keys[k])
        done = time.monotonic()
        if status != 200:
            self.counts["orders_unknown" if status is None else "orders_rejected"] += n
            self.unacked.extend(cids)
            return
        for cid, r in zip(cids, json.loads(payload)):
            if "orderId" not in r:
                self.counts["orders_rejected"] += 1
                self.unacked.append(cid)
                continue
            self.acked.append((cid, int(r["orderId"]), int(r.get("blockHeight", 0))))
            if passive:
                self.resting.append((k, int(r["orderId"])))
            self.lat_ms.append((done - t0) * 1000)
            self.counts["orders_acked"] += 1
            if done <= self.end:
                self.timeline[int(done - self.start)] += 1
                self.counts["orders_acked_in_window"] += 1

    async def place(self, scheduled: float | None = None) -> None:
        if self.spec.get("batch", 1) > 1:
            return await self.place_batch()
        rng = self.rng
        k = rng.randrange(len(self.keys))
        self.seq += 1
        cid = f"{self.prefix}{self.seq}"
        buy = rng.random() < 0.5
        lots = rng.randint(QTY_LOTS_MIN, QTY_LOTS_MAX)
        passive = rng.random() * 100 >= self.spec["cross_pct"]
        if passive:
            off = rng.randint(1, PASSIVE_TICKS_MAX)
            ticks = MID_TICKS - off if buy else MID_TICKS + off
            tif = "GTC"
        else:
            ticks = MID_TICKS + CROSS_TICKS if buy else MID_TICKS - CROSS_TICKS
            tif = "IOC"
        body = (
            f'{{"symbol":"{SYMBOL}","side":"{"BUY" if buy else "SELL"}","type":"LIMIT","timeInForce":"{tif}",'
            f'"price":"{fmt_price(ticks)}","quantity":"{fmt_qty(lots)}","newClientOrderId":"{cid}",'
            f'"newOrderRespType":"ACK"}}'
        ).encode()
        t0 = scheduled if scheduled is not None else time.monotonic()
        self.counts["orders_sent"] += 1
        status, payload, attempt_start, written = await self.send("POST", "/api/v1/order", "", body, self.keys[k])
        done = time.monotonic()
        if scheduled is not None:  # the open loop: did the generator send on time?
            if written is None:
                self.counts["orders_never_written"] += 1
            else:
                self.send_lag_ms.append((written - scheduled) * 1000)
                if written <= self.end:
                    self.counts["orders_written_in_window"] += 1
        if status == 200:
            r = json.loads(payload)
            oid = int(r["orderId"])
            if r.get("clientOrderId") != cid:
                self.counts["ack_with_other_client_order_id"] += 1
            if r.get("duplicate"):
                self.counts["acked_as_duplicate"] += 1
            self.acked.append((cid, oid, int(r.get("blockHeight", 0))))
            if passive:
                self.resting.append((k, oid))
            self.lat_ms.append((done - t0) * 1000)
            if written is not None:
                self.written_lat_ms.append((done - written) * 1000)
            if done <= self.end:
                self.timeline[int(done - self.start)] += 1
                self.counts["orders_acked_in_window"] += 1
            self.counts["orders_acked"] += 1
            if self.spec.get("record_ok_times"):
                self.ok_times.append((attempt_start, done))
                if self.shared is not None:
                    array, index = self.shared
                    if attempt_start > array[index]:
                        array[index] = attempt_start
        elif status is None:
            self.counts["orders_unknown"] += 1
            self.unacked.append(cid)
        elif self.spec.get("shed_is_final") and overload_final(status, payload) is not None:
            # Refused before it was queued (shed by admission, or a
            # connection refused at the door): not in the ledger.
            self.counts["orders_shed" if status == 503 else "orders_refused_at_door"] += 1
            self.shed_lat_ms.append((done - t0) * 1000)
            if written is not None:
                self.shed_written_lat_ms.append((done - written) * 1000)
            self.unacked.append(cid)
        else:
            self.counts["orders_rejected"] += 1
            self.unacked.append(cid)  # a rejection is not an ack; it may not be in the ledger

    async def cancel(self, k: int, oid: int) -> None:
        self.counts["cancels_sent"] += 1
        status, _, _, _ = await self.send("DELETE", "/api/v1/order", f"symbol={SYMBOL}&orderId={oid}", b"", self.keys[k])
        self._count_cancel(status, 1)

    async def cancel_account(self, k: int) -> None:
        """Batch mode's cancel: one DELETE /openOrders clears account k's
        resting orders (a market maker's mass cancel), so cancelling costs
        a request per ~book_target/accounts orders, as placing does per batch."""
        self.resting = collections.deque(entry for entry in self.resting if entry[0] != k)
        self.counts["cancels_sent"] += 1
        status, payload, _, _ = await self.send("DELETE", "/api/v1/openOrders", f"symbol={SYMBOL}", b"", self.keys[k])
        self._count_cancel(status, len(json.loads(payload)) if status == 200 else 0)

    def _count_cancel(self, status: int | None, cancelled: int) -> None:
        if status == 200:
            self.counts["cancels_acked"] += cancelled
            if time.monotonic() <= self.end:
                self.counts["cancels_acked_in_window"] += cancelled
        elif status in (400, 404):
            self.counts["cancels_of_finished_orders"] += 1  # filled by a crossing order first
        else:
            self.counts["cancels_failed"] += 1

    def over_book(self) -> bool:
        return len(self.resting) > self.book_target

    # -- the loops

    def stopped(self) -> bool:
        if time.monotonic() >= self.end:
            return True
        stop = self.spec.get("stop_event")
        if stop is not None and stop.is_set():
            return True
        max_orders = self.spec.get("max_orders")
        return max_orders is not None and self.counts["orders_sent"] >= max_orders

    async def closed_loop(self) -> None:
        async def one() -> None:
            while not self.stopped():
                if self.over_book() and self.spec.get("batch", 1) > 1:
                    await self.cancel_account(self.resting[0][0])
                elif self.over_book():
                    await self.cancel(*self.resting.popleft())
                else:
                    await self.place()

        await asyncio.gather(*(one() for _ in range(self.spec["concurrency"])))

    async def open_loop(self) -> None:
        rate = self.spec["rate"]
        tasks: set = set()
        i = 0
        while not self.stopped():
            t = self.start + i / rate
            delay = t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                if self.stopped():
                    break
            if len(tasks) >= INFLIGHT_OPEN_LOOP_MAX:
                self.counts["open_loop_skipped_inflight_cap"] += 1
            elif sum(getattr(p, "waiting", 0) for p in self.pools) >= self.spec.get("backlog_max", CLIENT_BACKLOG_MAX):
                self.counts["open_loop_skipped_backlog"] += 1
            else:
                for coro in ([self.place(t)] + ([self.cancel(*self.resting.popleft())] if self.over_book() else [])):
                    task = asyncio.ensure_future(coro)
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.gather(*tasks)

    async def loop_lag_probe(self) -> None:
        """How late this process's event loop wakes a LOOP_LAG_TICK_S sleep,
        for the load's window: a busy generator reads answers and sends on
        schedule late by about this much, whatever the nodes do."""
        while time.monotonic() < self.end:
            t = time.monotonic()
            await asyncio.sleep(LOOP_LAG_TICK_S)
            self.loop_lag_ms.append(max(0.0, time.monotonic() - t - LOOP_LAG_TICK_S) * 1000)

    async def run(self) -> dict:
        spec = self.spec
        self.pools, client = make_pools(spec["urls"], spec["http"], spec["connections_max"])
        wait = spec["start_at"] - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.start = time.monotonic()
        if spec.get("duration"):
            self.end = self.start + spec["duration"]
        cpu0 = _own_cpu_s()
        gc_started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if info.get("generation") == 2:
                if phase == "start":
                    gc_started[0] = time.perf_counter()
                else:
                    self.gc_pause_ms.append((time.perf_counter() - gc_started[0]) * 1000)

        gc.freeze()  # the keys, pools and modules: never worth a full collection's walk
        gc.callbacks.append(on_gc)
        probe = asyncio.ensure_future(self.loop_lag_probe())
        try:
            if spec["mode"] == "open":
                await self.open_loop()
            else:
                await self.closed_loop()
        finally:
            probe.cancel()
            gc.callbacks.remove(on_gc)
        finished = time.monotonic()
        for p in self.pools:
            await p.close()
        if client is not None:
            await client.aclose()
        return {
            "start": self.start,
            "end": min(self.end, finished),
            "finished": finished,
            "lat_ms": self.lat_ms,
            "shed_lat_ms": self.shed_lat_ms,
            "send_lag_ms": self.send_lag_ms,
            "written_lat_ms": self.written_lat_ms,
            "shed_written_lat_ms": self.shed_written_lat_ms,
            "gc_pause_ms": self.gc_pause_ms,
            "loop_lag_ms": self.loop_lag_ms,
            "connections_opened": sum(getattr(p, "opened", 0) for p in self.pools),
            "ok_times": self.ok_times,
            "acked": self.acked,
            "unacked": self.unacked,
            "counts": dict(self.counts),
            "statuses": dict(self.statuses),
            "samples": self.samples,
            "sign_us": (self.sign_ns / self.signs / 1000) if self.signs else None,
            "timeline": dict(self.timeline),
            "cpu_s": _own_cpu_s() - cpu0,
            "resting_tracked": len(self.resting),
        }


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _msg(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("msg", ""))
    except (ValueError, AttributeError):
        return payload[:70].decode(errors="replace")


def _worker_main(spec: dict, shared, queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        result = asyncio.run(Load(spec, shared).run())
        queue.put(("ok", spec["worker"], result))
    except BaseException as e:  # report, never hang the parent
        import traceback

        queue.put(("error", spec["worker"], f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


class Workers:
    """Client processes running one phase's load (forked: they share the keys)."""

    def __init__(self, args, seeds: list[bytes], urls: list[str], **spec) -> None:
        self.ctx = mp.get_context("fork")
        self.n = args.client_procs
        self.queue = self.ctx.Queue()
        self.shared = self.ctx.Array("d", [0.0] * self.n, lock=False)
        self.stop_event = self.ctx.Event()
        self.procs = []
        start_at = time.monotonic() + 0.3
        per = [seeds[i :: self.n] for i in range(self.n)]
        for w in range(self.n):
            s = dict(
                spec,
                worker=w,
                seeds=per[w],
                urls=urls,
                http=args.http,
                seed=args.seed * 1000 + w + spec.get("seed_offset", 0),
                cid_prefix=f"{spec['phase'][:2]}{RUN_TAG}{w}-",
                cross_pct=args.cross_pct,
                batch=args.batch,
                book_target=max(1, args.book_target // self.n),
                start_at=start_at,
                stop_event=self.stop_event,
                connections_max=max(1, CLIENT_CONNECTIONS_PER_NODE_MAX // self.n),
                backlog_max=max(1, CLIENT_BACKLOG_MAX // self.n),
            )
            if spec.get("concurrency"):
                s["concurrency"] = max(1, spec["concurrency"] // self.n)
            if spec.get("rate"):
                s["rate"] = spec["rate"] / self.n
            if spec.get("max_orders"):
                s["max_orders"] = spec["max_orders"] // self.n + (1 if w < spec["max_orders"] % self.n else 0)
            p = self.ctx.Process(target=_worker_main, args=(s, (self.shared, w), self.queue), daemon=True)
            p.start()
            self.procs.append(p)

    def last_ok_attempt_start(self) -> float:
        return max(self.shared[:])

    def stop(self) -> None:
        self.stop_event.set()

    def collect(self, timeout_s: float, progress=None, every_s: float = 15.0) -> list[dict]:
        results: dict[int, dict] = {}
        errors = []
        deadline = time.monotonic() + timeout_s
        next_progress = time.monotonic() + every_s
        while len(results) + len(errors) < self.n:
            if progress is not None and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + every_s
                progress()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"client processes did not report within {timeout_s:g}s")
            try:
                kind, w, payload = self.queue.get(timeout=min(remaining, 1.0))
            except Exception:  # queue.Empty
                if not any(p.is_alive() for p in self.procs) and self.queue.empty():
                    raise RuntimeError("a client process died without reporting") from None
                continue
            if kind == "ok":
                results[w] = payload
            else:
                errors.append(payload)
        for p in self.procs:
            p.join(timeout=5)
        if errors:
            raise RuntimeError("client process failed:\n" + "\n".join(errors))
        return [results[w] for w in sorted(results)]

    def kill(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


def merge(results: list[dict]) -> dict:
    out = {
        "start": min(r["start"] for r in results),
        "end": max(r["end"] for r in results),
        "lat_ms": [x for r in results for x in r["lat_ms"]],
        "shed_lat_ms": [x for r in results for x in r["shed_lat_ms"]],
        "send_lag_ms": [x for r in results for x in r["send_lag_ms"]],
        "written_lat_ms": [x for r in results for x in r["written_lat_ms"]],
        "shed_written_lat_ms": [x for r in results for x in r["shed_written_lat_ms"]],
        "gc_pause_ms": [x for r in results for x in r["gc_pause_ms"]],
        "loop_lag_ms": [x for r in results for x in r["loop_lag_ms"]],
        "connections_opened": sum(r["connections_opened"] for r in results),
        "ok_times": sorted(x for r in results for x in r["ok_times"]),
        "acked": [x for r in results for x in r["acked"]],
        "unacked": [x for r in results for x in r["unacked"]],
        "counts": collections.Counter(),
        "statuses": collections.Counter(),
        "samples": {},
        "timeline": collections.Counter(),
        "cpu_s": sum(r["cpu_s"] for r in results),
        "resting_tracked": sum(r["resting_tracked"] for r in results),
    }
    signs = [r["sign_us"] for r in results if r["sign_us"] is not None]
    out["sign_us"] = sum(signs) / len(signs) if signs else None
    for r in results:
        out["counts"].update(r["counts"])
        out["statuses"].update(r["statuses"])
        out["timeline"].update({int(k): v for k, v in r["timeline"].items()})
        for k, v in r["samples"].items():
            out["samples"].setdefault(k, v)
    return out


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p * len(sorted_values) / 100 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency(lat_ms: list[float]) -> dict:
    s = sorted(lat_ms)
    return {
        "p50_ms": _r(percentile(s, 50)),
        "p90_ms": _r(percentile(s, 90)),
        "p99_ms": _r(percentile(s, 99)),
        "p999_ms": _r(percentile(s, 99.9)),
        "max_ms": _r(s[-1] if s else None),
        "mean_ms": _r(sum(s) / len(s) if s else None),
    }


def _r(x, nd: int = 2):
    return None if x is None else round(x, nd)


# ------------------------------------------------------------ cluster views


class Cluster:
    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.http = httpx.Client(timeout=STATUS_TIMEOUT_S, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def urls(self, exclude: set[str] = frozenset()) -> list[str]:
        return [n.api_url for n in self.cfg.nodes if n.id not in exclude]

    def self_status(self, node_id: str) -> dict | None:
        try:
            r = self.http.get(self.cfg.node(node_id).api_url + "/api/v1/cluster/self")
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def live(self) -> list[str]:
        return [n.id for n in self.cfg.nodes if local.node_pid(self.cfg, n.id) is not None]

    def agreed_leader(self) -> str | None:
        """The leader every live node names, if it leads with a quorum."""
        views = {n: self.self_status(n) for n in self.live()}
        if not views or any(v is None for v in views.values()):
            return None
        leaders = {v.get("leader") for v in views.values()}
        if len(leaders) != 1:
            return None
        leader = leaders.pop()
        lv = views.get(leader)
        if lv is None or lv.get("role") != "leader" or not lv.get("hasQuorum"):
            return None
        return leader

    def any_leader(self, exclude: set[str]) -> str | None:
        for n in self.live():
            if n in exclude:
                continue
            v = self.self_status(n)
            if v and v.get("role") == "leader" and v.get("hasQuorum"):
                return n
        return None

    def height(self, node_id: str) -> int | None:
        v = self.self_status(node_id)
        return None if v is None else v.get("headHeight")


# ------------------------------------------------------------------ phases


async def fund(args, cfg: ClusterConfig, seeds: list[bytes]) -> dict:
    """Deposit both assets into every account via the faucet (retried: a double deposit is harmless here)."""
    pools, client = make_pools([n.api_url for n in cfg.nodes], args.http)
    sem = asyncio.Semaphore(32)
    failures = collections.Counter()
    t0 = time.monotonic()

    async def deposit(i: int, key: Keypair, asset: str, amount: str) -> None:
        body = json.dumps({"asset": asset, "amount": amount}, separators=(",", ":")).encode()
        node = i
        async with sem:
            for attempt in range(20):
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        status, payload, _, _ = await pools[node % len(pools)].request(
                            "POST", "/api/v1/deposit", lambda: key.headers(time.time_ns() // 1_000_000, "POST", "/api/v1/deposit", "", body), body)
                except CONNECT_ERRORS as e:
                    status, payload = None, str(e).encode()
                if status == 200:
                    return
                failures[f"{status} {_msg(payload)[:60]}"] += 1
                if status is not None and status not in RETRY_STATUSES:
                    raise RuntimeError(f"deposit refused: HTTP {status} {payload[:200]!r}")
                node += 1
                await asyncio.sleep(0.05 * (attempt + 1))
            raise RuntimeError(f"deposit failed 20 times: {dict(failures)}")

    keys = [Keypair.from_private(s) for s in seeds]
    await asyncio.gather(*(deposit(i, k, a, amt) for i, k in enumerate(keys) for a, amt in DEPOSITS))
    for p in pools:
        await p.close()
    if client is not None:
        await client.aclose()
    return {"accounts": len(keys), "deposits": 2 * len(keys), "seconds": round(time.monotonic() - t0, 2), "retries": dict(failures)}


def measure_signing(seeds: list[bytes]) -> float:
    key = Keypair.from_private(seeds[0])
    body = b'{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","timeInForce":"GTC","price":"49999.99","quantity":"0.00010","newClientOrderId":"x-123456789","newOrderRespType":"ACK"}'
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        key.headers(1_700_000_000_000 + i, "POST", "/api/v1/order", "", body)
    return (time.perf_counter() - t) / n * 1e6


def measure_verifying(seeds: list[bytes]) -> float:
    """What one node-side Ed25519 check costs (dex.auth.verify), in us."""
    from dex.auth import signed_payload, verify

    key = Keypair.from_private(seeds[0])
    payload = signed_payload(1_700_000_000_000, "POST", "/api/v1/order", "", b'{"symbol":"BTCUSDT","quantity":"0.00010"}')
    signature = key.sign(payload)
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        assert verify(key.public, signature, payload)
    return (time.perf_counter() - t) / n * 1e6


def phase_summary(m: dict, duration: float) -> dict:
    c = m["counts"]
    timeline = [m["timeline"].get(i, 0) for i in range(int(math.ceil(duration)))]
    out = {
        "duration_s": round(duration, 2),
        "orders_sent": c.get("orders_sent", 0),
        "orders_acked": c.get("orders_acked", 0),
        "orders_acked_in_window": c.get("orders_acked_in_window", 0),
        "orders_per_s": round(c.get("orders_acked_in_window", 0) / duration, 1),
        "cancels_per_s": round(c.get("cancels_acked_in_window", 0) / duration, 1),
        "requests_per_s": round((c.get("orders_acked_in_window", 0) + c.get("cancels_acked_in_window", 0)) / duration, 1),
        "orders_rejected": c.get("orders_rejected", 0),
        "orders_unknown": c.get("orders_unknown", 0),
        "acked_as_duplicate": c.get("acked_as_duplicate", 0),
        "cancels_acked": c.get("cancels_acked", 0),
        "cancels_of_finished_orders": c.get("cancels_of_finished_orders", 0),
        "cancels_failed": c.get("cancels_failed", 0),
        "resting_tracked_at_end": m["resting_tracked"],
        "orders_per_s_timeline": timeline,
        "sign_us": _r(m["sign_us"], 1),
        "client_cpu_s": round(m["cpu_s"], 2),
        "client_cpu_us_per_request": _r(m["cpu_s"] * 1e6 / max(1, c.get("orders_sent", 0) + c.get("cancels_sent", 0)), 0),
        "client_connections_opened": m["connections_opened"],
        "client_loop_lag_p50_ms": _r(percentile(sorted(m["loop_lag_ms"]), 50)),
        "client_loop_lag_p99_ms": _r(percentile(sorted(m["loop_lag_ms"]), 99)),
        "client_gc_full_collections": len(m["gc_pause_ms"]),
        "client_gc_pause_max_ms": _r(max(m["gc_pause_ms"], default=None)),
        "non_200": dict(m["statuses"].most_common(12)),
        "non_200_samples": dict(list(m["samples"].items())[:8]),
    }
    if c.get("open_loop_skipped_inflight_cap"):
        out["open_loop_skipped_inflight_cap"] = c["open_loop_skipped_inflight_cap"]
    if c.get("open_loop_skipped_backlog"):
        # Scheduled, not sent: the generator's own backlog was full (not the cluster's refusal).
        out["open_loop_skipped_backlog"] = c["open_loop_skipped_backlog"]
    if m["send_lag_ms"] or c.get("orders_never_written"):
        # The open loop: what was actually sent, and how late. A sent rate
        # under the offered one, or a send lag of more than a few ms, is the
        # generator (or its connection bound) falling behind, not the cluster.
        lag = sorted(m["send_lag_ms"])
        out.update({
            "sent_per_s": round(c.get("orders_written_in_window", 0) / duration, 1),
            "orders_never_written": c.get("orders_never_written", 0),
            "send_lag_p50_ms": _r(percentile(lag, 50)),
            "send_lag_p99_ms": _r(percentile(lag, 99)),
            "send_lag_max_ms": _r(lag[-1] if lag else None),
        })
        written = sorted(m["written_lat_ms"])
        out["accepted_from_write_p50_ms"] = _r(percentile(written, 50))
        out["accepted_from_write_p99_ms"] = _r(percentile(written, 99))
    out.update(latency(m["lat_ms"]))
    return out


def load_urls(args, cl: Cluster) -> list[str]:
    if args.targets == "leader":
        leader = local.wait_for(cl.agreed_leader, 60, interval_s=0.05, what="a leader every live node agrees on")
        return [cl.cfg.node(leader).api_url]
    return cl.urls()


def run_phase(args, cl: Cluster, seeds, ledger: dict, phase: str, duration: float, **load) -> tuple[dict, dict]:
    """One load phase against the cluster: `load` is the Workers' shape
    (mode, concurrency or rate, ...). Its acked and unacked orders go to
    `ledger` for the final check; returns (summary with the nodes' CPU, the
    merged measurements)."""
    probe = CpuProbe(cl.cfg)
    w = Workers(args, seeds, load_urls(args, cl), phase=phase, duration=duration, **load)
    try:
        m = merge(w.collect(duration + 120))
    finally:
        w.kill()
    ledger["acked"].extend(m["acked"])
    ledger["unacked"].extend(m["unacked"])
    out = phase_summary(m, duration)
    out["cpu"] = probe.stop(m["cpu_s"])
    return out, m


def run_saturate(args, cl: Cluster, seeds, ledger: dict) -> dict:
    log(args, f"saturating: {args.duration:g}s, concurrency {args.concurrency}, {args.client_procs} client process(es)")
    out, _ = run_phase(args, cl, seeds, ledger, "saturate", args.duration, mode="closed", concurrency=args.concurrency)
    log(args, f"saturating: {out['orders_per_s']:,.0f} orders/s (+{out['cancels_per_s']:,.0f} cancels/s), "
              f"p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, max {out['max_ms']} ms")
    return out


def run_ceiling(args, seeds) -> dict:
    """The saturating load, same shape and client, against bench/ceiling.py:
    one process of the same HTTP stack doing only validation and one
    Ed25519 check per request."""
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "ceiling.py"), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        local.wait_for(lambda: listening() or None, 30, interval_s=0.05, what="bench/ceiling.py to listen")
        log(args, f"ceiling: the same load against bench/ceiling.py for {args.duration:g}s")
        w = Workers(args, seeds, [f"http://127.0.0.1:{port}"], phase="ceiling", mode="closed", concurrency=args.concurrency, duration=args.duration, seed_offset=500)
        try:
            m = merge(w.collect(args.duration + 120))
        finally:
            w.kill()
        out = phase_summary(m, args.duration)
        out["cpu_s"] = round(proc_cpu_s(proc.pid), 2)
        log(args, f"ceiling: {out['orders_per_s']:,.0f} orders/s, p50 {out['p50_ms']} ms")
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_rate(args, cl: Cluster, seeds, ledger: dict) -> dict:
    log(args, f"open loop: {args.rate:g} orders/s for {args.rate_duration:g}s")
    out, _ = run_phase(args, cl, seeds, ledger, "rate", args.rate_duration, mode="open", rate=args.rate, seed_offset=100)
    out["target_rate"] = args.rate
    log(args, f"open loop: {out['orders_per_s']:,.0f} orders/s acked, p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, max {out['max_ms']} ms")
    return out


def run_overload(args, cl: Cluster, seeds, ledger: dict, capacity_per_s: float) -> dict:
    """An open loop at args.overload x capacity in which shed answers (503
    -1008) are final: does the cluster keep committing near capacity, answer
    the excess at once, and keep the accepted orders' latency?"""
    rate = args.overload * capacity_per_s
    log(args, f"overload: {rate:,.0f} orders/s offered ({args.overload:g} x {capacity_per_s:,.0f}/s) for {args.rate_duration:g}s")
    out, m = run_phase(args, cl, seeds, ledger, "overload", args.rate_duration, mode="open", rate=rate, seed_offset=400, shed_is_final=True)
    c = m["counts"]
    shed = latency(m["shed_lat_ms"])
    out.update({
        "capacity_per_s": round(capacity_per_s, 1),
        "offered_per_s": round(rate, 1),
        "committed_over_capacity": round(out["orders_per_s"] / max(1.0, capacity_per_s), 3),
        "orders_shed": c.get("orders_shed", 0),
        "shed_with_retry_after": c.get("shed_with_retry_after", 0),
        "shed_without_retry_after": c.get("shed_without_retry_after", 0),
        # 429s: connections over the node's per-address cap (which the
        # generator's own bound should keep from happening), answered at once.
        "orders_refused_at_door": c.get("orders_refused_at_door", 0),
        "refused_with_retry_after": c.get("refused_with_retry_after", 0),
        "refused_without_retry_after": c.get("refused_without_retry_after", 0),
        "shed_p50_ms": shed["p50_ms"],
        "shed_from_write_p50_ms": _r(percentile(sorted(m["shed_written_lat_ms"]), 50)),
        "shed_from_write_p99_ms": _r(percentile(sorted(m["shed_written_lat_ms"]), 99)),
        "shed_p99_ms": shed["p99_ms"],
    })
    log(args, f"overload: {out['orders_per_s']:,.0f} orders/s committed ({out['committed_over_capacity']:.0%} of capacity), "
              f"accepted p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms; {out['orders_shed']:,} shed "
              f"(+{out['orders_refused_at_door']:,} refused 429), answered p50 {out['shed_p50_ms']} ms p99 {out['shed_p99_ms']} ms; "
              f"(from the write p50 {out['shed_from_write_p50_ms']} ms); sent {out['sent_per_s']:,.0f}/s of {rate:,.0f}/s offered, "
              f"send lag p99 {out['send_lag_p99_ms']} ms, client loop lag p99 {out['client_loop_lag_p99_ms']} ms")
    return out


def run_kills(args, cl: Cluster, seeds, ledger: dict) -> dict:
    cfg = cl.cfg
    log(args, f"failover: {args.kills} leader kill(s) under {args.kill_rate:g} orders/s")
    w = Workers(args, seeds, cl.urls(), phase="kills", mode="open", rate=args.kill_rate, record_ok_times=True, seed_offset=200)
    kills = []
    try:
        # Steady load first: wait until orders are being acknowledged.
        t_ready = time.monotonic()
        local.wait_for(lambda: w.last_ok_attempt_start() > t_ready, 30, what="the first acknowledged order of the failover load")
        for i in range(args.kills):
            leader = local.wait_for(cl.agreed_leader, 60, interval_s=0.05, what="a leader every live node agrees on")
            term = (cl.self_status(leader) or {}).get("term")
            t_kill = time.monotonic()
            local.kill_node(cfg, leader)
            t_gone = time.monotonic()
            # Election, seen by polling (coarse: ~20-50 ms per round).
            new_leader = local.wait_for(lambda: cl.any_leader({leader}), 60, interval_s=0.02, what="a new leader")
            t_elected = time.monotonic()
            local.wait_for(lambda: w.last_ok_attempt_start() >= t_kill, 60, interval_s=0.01,
                           what=f"an order acknowledged after killing {leader}")
            t_recovered = time.monotonic()
            # Restart the killed node; it must catch up before the next kill.
            local.start_node(cfg, leader)
            t_start = time.monotonic()
            local.wait_node_ready(cfg, leader, timeout_s=120)

            def caught_up() -> bool:
                target = cl.height(new_leader) if new_leader in cl.live() else None
                mine = cl.height(leader)
                return target is not None and mine is not None and mine >= target

            local.wait_for(caught_up, 120, interval_s=0.05, what=f"restarted {leader} to catch up")
            rejoin_s = time.monotonic() - t_start
            kills.append({
                "killed": leader, "term": term, "new_leader": new_leader, "t_kill": t_kill,
                "kill_wait_s": round(t_gone - t_kill, 3), "election_seen_s": round(t_elected - t_kill, 3),
                "recovered_seen_s": round(t_recovered - t_kill, 3), "rejoin_s": round(rejoin_s, 2),
            })
            log(args, f"kill {i + 1}/{args.kills}: {leader} (term {term}) -> {new_leader}; "
                      f"election seen at {t_elected - t_kill:.2f}s, order acked by {t_recovered - t_kill:.2f}s; "
                      f"{leader} rejoined in {rejoin_s:.1f}s")
            settle_end = time.monotonic() + args.kill_settle_s
            local.wait_for(lambda: time.monotonic() >= settle_end, args.kill_settle_s + 1, what="the settle time")
        w.stop()
        m = merge(w.collect(120))
    finally:
        w.kill()
    ledger["acked"].extend(m["acked"])
    ledger["unacked"].extend(m["unacked"])
    # Failover: kill -> the first 200 for an order whose final attempt started after the kill.
    starts = [s for s, _ in m["ok_times"]]
    for k in kills:
        i = bisect.bisect_left(starts, k["t_kill"])
        later = [d for s, d in m["ok_times"][i:]]
        k["failover_s"] = round(min(later) - k["t_kill"], 3) if later else None
        del k["t_kill"]
    fo = sorted(k["failover_s"] for k in kills if k["failover_s"] is not None)
    duration = m["end"] - m["start"]
    out = phase_summary(m, duration)
    out.update({
        "kills": kills,
        "failover_median_s": _r(statistics.median(fo), 3) if fo else None,
        "failover_max_s": _r(fo[-1], 3) if fo else None,
        "failover_min_s": _r(fo[0], 3) if fo else None,
        "rejoin_max_s": max((k["rejoin_s"] for k in kills), default=None),
        "load_rate": args.kill_rate,
    })
    return out


def run_catchup(args, cl: Cluster, seeds, ledger: dict) -> dict:
    cfg = cl.cfg
    leader = local.wait_for(cl.agreed_leader, 60, interval_s=0.05, what="a leader every live node agrees on")
    follower = next(n.id for n in reversed(cfg.nodes) if n.id != leader)
    log(args, f"catch-up: killing follower {follower}, placing {args.catchup:,} orders on the others")
    local.kill_node(cfg, follower)
    t0 = time.monotonic()
    urls = [cfg.node(leader).api_url] if args.targets == "leader" else cl.urls(exclude={follower})
    w = Workers(args, seeds, urls, phase="catchup", mode="closed",
                concurrency=args.concurrency, max_orders=args.catchup, seed_offset=300)
    try:
        t_place = time.monotonic()

        def progress() -> None:
            v = cl.self_status(leader) or {}
            log(args, f"catch-up: {time.monotonic() - t_place:.0f}s, leader {leader} at height {v.get('headHeight')}")

        m = merge(w.collect(args.catchup_timeout, progress))
    finally:
        w.kill()
    place_s = time.monotonic() - t0
    ledger["acked"].extend(m["acked"])
    ledger["unacked"].extend(m["unacked"])
    c = m["counts"]
    leader = local.wait_for(cl.agreed_leader, 60, interval_s=0.05, what="a leader every live node agrees on")
    target = cl.height(leader)
    log(args, f"catch-up: {c.get('orders_acked', 0):,} orders acked in {place_s:.1f}s "
              f"({c.get('orders_acked', 0) / place_s:,.0f}/s); leader {leader} at height {target}; restarting {follower}")
    t_start = time.monotonic()
    local.start_node(cfg, follower)
    local.wait_node_ready(cfg, follower, timeout_s=120)
    answer_s = time.monotonic() - t_start
    progress = {"last": 0.0}

    def caught_up() -> bool:
        h = cl.height(follower)
        now = time.monotonic()
        if now - progress["last"] > 5:
            progress["last"] = now
            log(args, f"catch-up: {follower} at height {h} of {target} after {now - t_start:.1f}s")
        return h is not None and h >= target

    local.wait_for(caught_up, args.catchup_timeout, interval_s=0.02, what=f"{follower} to reach height {target}")
    catchup_s = time.monotonic() - t_start
    log(args, f"catch-up: {follower} reached height {target} in {catchup_s:.2f}s (answered HTTP after {answer_s:.2f}s)")
    return {
        "orders": args.catchup,
        "orders_acked": c.get("orders_acked", 0),
        "cancels_acked": c.get("cancels_acked", 0),
        "orders_rejected": c.get("orders_rejected", 0),
        "orders_unknown": c.get("orders_unknown", 0),
        "place_s": round(place_s, 2),
        "place_orders_per_s": round(c.get("orders_acked", 0) / place_s, 1),
        "follower": follower,
        "blocks_behind": target,
        "catchup_s": round(catchup_s, 2),
        "first_answer_s": round(answer_s, 2),
        "non_200": dict(m["statuses"].most_common(12)),
    }


# ----------------------------------------------------------- verification


async def walk_ledger(args, url: str) -> dict:
    pool = RawPool(url, CLIENT_CONNECTIONS_PER_NODE_MAX)

    async def get(target: str) -> dict:
        for attempt in range(10):
            try:
                async with asyncio.timeout(30):
                    status, payload, _, _ = await pool.request("GET", target, {}, b"")
                if status == 200:
                    return json.loads(payload)
                raise HttpError(f"GET {target}: HTTP {status} {payload[:200]!r}")
            except CONNECT_ERRORS:
                if attempt == 9:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    head = await get("/api/v1/blocks?limit=1")
    height, base = head["height"], head["baseHeight"]
    accepted: dict[str, list] = {}
    next_h = base + 1
    commands = 0

    async def walker() -> None:
        nonlocal next_h, commands
        while next_h <= height:
            h = next_h
            next_h += 1
            block = await get(f"/api/v1/blocks/{h}")
            for cmd in block["commands"]:
                commands += 1
                for ev in cmd["events"]:
                    if ev["event"] == "OrderAccepted" and ev.get("clientOrderId"):
                        accepted.setdefault(ev["clientOrderId"], []).append((int(ev["orderId"]), h))

    await asyncio.gather(*(walker() for _ in range(args.verify_concurrency)))
    await pool.close()
    return {"height": height, "base_height": base, "accepted": accepted, "commands": commands}


async def walk_all(args, urls: dict[str, str]) -> dict[str, dict]:
    results = await asyncio.gather(*(walk_ledger(args, u) for u in urls.values()))
    return dict(zip(urls, results))


def verify(args, cl: Cluster, ledger: dict) -> dict:
    cfg = cl.cfg
    t0 = time.monotonic()
    live = cl.live()
    down_nodes = [n.id for n in cfg.nodes if n.id not in live]

    def same_height() -> dict | None:
        views = {n: cl.self_status(n) for n in live}
        if any(v is None for v in views.values()):
            return None
        if len({v["headHeight"] for v in views.values()}) != 1:
            return None
        return views

    views = local.wait_for(same_height, 180, interval_s=0.1, what="every live node at the same height")
    heads = {(v["headHeight"], v["headHash"], v["stateHash"]) for v in views.values()}
    log(args, f"verify: {len(live)} node(s) at height {next(iter(views.values()))['headHeight']}; walking the ledgers")
    walked = asyncio.run(walk_all(args, {n: cfg.node(n).api_url for n in live}))
    acked = ledger["acked"]
    by_cid: dict[str, tuple[int, int]] = {}
    ack_conflicts = 0
    for cid, oid, h in acked:
        prev = by_cid.get(cid)
        if prev is not None and prev[0] != oid:
            ack_conflicts += 1  # the same client order id acknowledged with two order ids
        by_cid[cid] = (oid, h)
    lost: set[str] = set()
    per_node = {}
    unverifiable = 0
    for node_id, w in walked.items():
        acc = w["accepted"]
        dups = {cid: v for cid, v in acc.items() if len(v) > 1}
        missing = wrong = skipped = 0
        for cid, (oid, h) in by_cid.items():
            if h and h <= w["base_height"]:
                skipped += 1  # that block is below this node's chain base (it took a snapshot)
                continue
            found = acc.get(cid)
            if not found:
                missing += 1
                lost.add(cid)
            elif all(f[0] != oid for f in found):
                wrong += 1
                lost.add(cid)
        unverifiable += skipped
        unacked_committed = sum(1 for cid in ledger["unacked"] if cid in acc)
        per_node[node_id] = {
            "height": w["height"], "base_height": w["base_height"], "commands": w["commands"],
            "orders_accepted": len(acc), "missing": missing, "other_order_id": wrong,
            "duplicate_client_order_ids": len(dups), "unverifiable_below_base": skipped,
            "unacked_but_committed": unacked_committed,
            "duplicate_examples": dict(list(dups.items())[:3]),
        }
    duplicates = max((p["duplicate_client_order_ids"] for p in per_node.values()), default=0)
    return {
        "acked_orders": len(by_cid),
        "lost_orders": len(lost),
        "lost_examples": sorted(lost)[:5],
        "duplicate_orders": duplicates,
        "ack_conflicts": ack_conflicts,
        "unverifiable": unverifiable,
        "nodes_checked": live,
        "nodes_down": down_nodes,
        "hashes_agree": len(heads) == 1,
        "head": {n: {"height": v["headHeight"], "headHash": v["headHash"][:16], "stateHash": v["stateHash"][:16]} for n, v in views.items()},
        "per_node": per_node,
        "seconds": round(time.monotonic() - t0, 1),
    }


def scan_logs(cfg: ClusterConfig) -> dict:
    out = {"truncating_already_applied": 0, "error_lines": 0, "critical_lines": 0, "tracebacks": 0, "replay_check_off": 0, "samples": [], "per_node": {}}
    pattern = re.compile(r" (ERROR|CRITICAL) ")
    for n in cfg.nodes:
        path = local.log_path(cfg, n.id)
        counts = collections.Counter()
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if TRUNCATE_MARKER in line:
                        counts["truncating_already_applied"] += 1
                    if REPLAY_OFF_MARKER in line:
                        counts["replay_check_off"] += 1
                    m = pattern.search(line)
                    if m:
                        counts["error_lines" if m.group(1) == "ERROR" else "critical_lines"] += 1
                        if len(out["samples"]) < 12:
                            out["samples"].append(line.strip()[:300])
                    if line.startswith("Traceback"):
                        counts["tracebacks"] += 1
        except FileNotFoundError:
            continue
        out["per_node"][n.id] = dict(counts)
        for k, v in counts.items():
            out[k] += v
    return out


# -------------------------------------------------------------------- main


RUN_TAG = secrets.token_hex(2)


NO_REPLAY_CHECK_ENV = "DEX_BENCH_UNSAFE_NO_REPLAY_CHECK"  # dex.node's


def run_replay_cost(args) -> int:
    """Pairs of saturating runs, the replay check on and off (see the
    module docstring); each run is this script again, in-process, with
    --json. Returns 0 when every run completed and its ledgers checked out."""
    import contextlib
    import io

    sub = [
        "--duration", str(args.duration), "--no-ceiling", "--json", "--quiet", "--nodes", str(args.nodes),
        "--concurrency", str(args.concurrency), "--client-procs", str(args.client_procs), "--accounts", str(args.accounts),
        "--cross-pct", str(args.cross_pct), "--batch", str(args.batch), "--durability", args.durability,
        "--targets", args.targets, "--seed", str(args.seed), "--http", args.http,
    ]
    runs = []
    status = 0
    for pair in range(args.replay_cost):
        for check in ((True, False) if pair % 2 == 0 else (False, True)):
            if check:
                os.environ.pop(NO_REPLAY_CHECK_ENV, None)
            else:
                os.environ[NO_REPLAY_CHECK_ENV] = "1"  # inherited by the nodes cluster.local starts
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    code = main(sub)
            finally:
                os.environ.pop(NO_REPLAY_CHECK_ENV, None)
            r = json.loads(out.getvalue().strip().splitlines()[-1])
            off_lines = (r.get("logs") or {}).get("replay_check_off", 0)
            if (off_lines == 0) != check:  # every node of an "off" run said so, none of an "on" run
                raise RuntimeError(f"replay check {'on' if check else 'off'} run: {off_lines} node logs say the check is off")
            status = max(status, code)
            runs.append({"check": check, "orders_per_s": r["orders_per_s"], "p50_ms": r["p50_ms"], "exit": code,
                         "lost": r.get("lost_orders"), "duplicate": r.get("duplicate_orders")})
            if not args.quiet:
                print(f"replay check {'on ' if check else 'off'}: {r['orders_per_s']} orders/s, p50 {r['p50_ms']} ms (exit {code})", file=sys.stderr)
    guard_us = guard_cost_us()
    on = statistics.median(r["orders_per_s"] for r in runs if r["check"] and r["orders_per_s"])
    off = statistics.median(r["orders_per_s"] for r in runs if not r["check"] and r["orders_per_s"])
    result = {
        "machine": machine(), "pairs": args.replay_cost, "duration_s": args.duration, "runs": runs,
        "on_orders_per_s_median": on, "off_orders_per_s_median": off,
        "ratio_on_off": round(on / off, 3), "cost_pct": round(100 * (1 - on / off), 1), "target_cost_pct_max": 10,
        "guard_us": guard_us,
        # The check's CPU per order (every node admits it, the receiving node
        # also asks used()) over the machine's CPU per order at the on rate:
        # an upper bound on its share that run-to-run noise cannot blur.
        "guard_cpu_share_pct": round(100 * (args.nodes * guard_us["admit"] + guard_us["used"]) * on / (machine()["nproc"] * 1e6), 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for r in runs:
            print(f"  check {'on ' if r['check'] else 'off'}  {r['orders_per_s']:>8} orders/s  p50 {r['p50_ms']} ms  exit {r['exit']}")
        print(f"replay check on: {on} orders/s (median), off: {off}; on/off = {result['ratio_on_off']}, "
              f"cost {result['cost_pct']}% (target <= 10%)")
        print(f"the check in-process: used() {guard_us['used']} us, advance()+admit() {guard_us['admit']} us a request "
              f"(each node admits every request; the node receiving it also asks used()): "
              f"{result['guard_cpu_share_pct']}% of the machine's CPU per order at {on} orders/s")
    return status


def guard_cost_us(count: int = 50_000) -> dict:
    """What the replay guard costs a signed request, in-process: the API's
    used() and a block's admit() (with advance), over order-sized payloads
    and a guard already holding `count` requests."""
    from dex.auth import signed_payload
    from dex.ledger.replay import ReplayGuard

    key = Keypair.generate().public
    ts0 = 1_700_000_000_000
    body = b'{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","timeInForce":"GTC","price":"49990.00","quantity":"0.00050","newClientOrderId":"b-0123456789abcdef01234567","newOrderRespType":"ACK"}'
    payloads = [(ts0 + i // 10, signed_payload(ts0 + i // 10, "POST", "/api/v1/order", "", body + str(i).encode())) for i in range(count)]
    guard = ReplayGuard()
    t0 = time.perf_counter()
    for ts, payload in payloads:
        guard.used(key, payload)
    t1 = time.perf_counter()
    for ts, payload in payloads:
        guard.advance(ts)
        guard.admit(key, ts, payload, ts)
    t2 = time.perf_counter()
    return {"used": round((t1 - t0) / count * 1e6, 2), "admit": round((t2 - t1) / count * 1e6, 2)}


def print_human(r: dict) -> None:
    m = r["machine"]
    c = r["config"]
    print(f"machine: {m['cpu']}, nproc {m['nproc']}, {m['ram_gb']} GB RAM, {m['python']} ({m['platform']}); "
          f"load average at start {m['loadavg_at_start']:.2f}; dex at {m.get('dex_commit')}")
    print(f"cluster: {c['nodes']} nodes on loopback, block_interval_ms {c['block_interval_ms']}, "
          f"block_commands_max {c['block_commands_max']}, block_bytes_max {c['block_bytes_max']}, "
          f"pending_commands_max {c['pending_commands_max']}, inflight_blocks_max {c['inflight_blocks_max']}, durability {c.get('durability')}")
    print(f"client: {c['client_procs']} process(es), http {c['http']}, requests to {c['targets']} node(s), concurrency {c['concurrency']}, "
          f"{c['accounts']} accounts, {c['cross_pct']}% crossing IOC, book target {c['book_target']:,}; "
          f"signing {r['sign_us']:.1f} us/request (Keypair.headers)")
    rows: list[tuple[str, str]] = []

    def cpu_row(p: dict) -> None:
        u = p.get("cpu")
        if u:
            rows.append(("  CPU (cores busy)", f"machine {u['machine_cores_busy']}, nodes {u['nodes_cores']}, "
                                                f"client {u['client_cores']}, other {u['other_cores']}"))

    def common(p: dict) -> None:
        rows.append(("  latency p50 / p90 / p99", f"{p['p50_ms']} / {p['p90_ms']} / {p['p99_ms']} ms"))
        rows.append(("  latency p99.9 / max", f"{p['p999_ms']} / {p['max_ms']} ms"))
        rows.append(("  rejected / unknown outcome", f"{p['orders_rejected']} / {p['orders_unknown']}"))
        rows.append(("  cancels acked / of finished", f"{p['cancels_acked']:,} / {p['cancels_of_finished_orders']:,}"))
        rows.append(("  client CPU per request", f"{p['client_cpu_us_per_request']} us"))
        cpu_row(p)
        if p["non_200"]:
            rows.append(("  non-200 answers", json.dumps(p["non_200"])))

    if (s := r.get("saturate")) is not None:
        rows.append((f"saturating ({s['duration_s']:g} s)", f"{s['orders_per_s']:,.0f} orders/s committed "
                     f"(+{s['cancels_per_s']:,.0f} cancels/s = {s['requests_per_s']:,.0f} requests/s)"))
        rows.append(("  orders/s each second", " ".join(str(x) for x in s["orders_per_s_timeline"])))
        common(s)
    if (c := r.get("ceiling")) is not None:
        rows.append(("ceiling (bench/ceiling.py)", f"{c['orders_per_s']:,.0f} orders/s, p50 {c['p50_ms']} ms: one process, "
                     f"validation + one Ed25519 check; ceiling_ratio {r['ceiling_ratio']}"))
    if (s := r.get("rate")) is not None:
        rows.append((f"open loop {s['target_rate']:g}/s ({s['duration_s']:g} s)", f"{s['orders_per_s']:,.0f} orders/s acked "
                     f"(+{s['cancels_per_s']:,.0f} cancels/s)"))
        common(s)
    if (s := r.get("overload")) is not None:
        rows.append((f"overload {s['offered_per_s']:,.0f}/s offered ({s['duration_s']:g} s)",
                     f"{s['orders_per_s']:,.0f} orders/s committed = {s['committed_over_capacity']:.0%} of capacity {s['capacity_per_s']:,.0f}/s"))
        rows.append(("  shed (503 -1008)", f"{s['orders_shed']:,} ({s['shed_with_retry_after']:,} with Retry-After), "
                     f"answered p50 {s['shed_p50_ms']} ms, p99 {s['shed_p99_ms']} ms"))
        rows.append(("  refused at the door (429)", f"{s['orders_refused_at_door']:,} ({s['refused_with_retry_after']:,} with Retry-After)"))
        rows.append(("  sent by the generator", f"{s['sent_per_s']:,.0f}/s; send lag p50 {s['send_lag_p50_ms']} ms, p99 {s['send_lag_p99_ms']} ms; "
                     f"client loop lag p99 {s['client_loop_lag_p99_ms']} ms; accepted from write p50 {s['accepted_from_write_p50_ms']} ms, "
                     f"p99 {s['accepted_from_write_p99_ms']} ms"))
        common(s)
    if (s := r.get("kills")) is not None:
        rows.append((f"failover ({len(s['kills'])} leader kills)", f"median {s['failover_median_s']} s, "
                     f"max {s['failover_max_s']} s, min {s['failover_min_s']} s (under {s['load_rate']:g} orders/s)"))
        rows.append(("  each (s)", " ".join(str(k["failover_s"]) for k in s["kills"])))
        rows.append(("  killed node rejoin max", f"{s['rejoin_max_s']} s"))
        rows.append(("  orders acked / unknown", f"{s['orders_acked']:,} / {s['orders_unknown']}"))
        if s["non_200"]:
            rows.append(("  non-200 answers", json.dumps(s["non_200"])))
    if (s := r.get("catchup")) is not None:
        rows.append((f"catch-up ({s['orders']:,} orders missed)", f"{s['catchup_s']} s to the leader's height "
                     f"{s['blocks_behind']:,} (first HTTP answer after {s['first_answer_s']} s)"))
        rows.append(("  placing them", f"{s['place_s']} s ({s['place_orders_per_s']:,.0f} orders/s on {r['config']['nodes'] - 1} nodes)"))
    v = r.get("verify")
    if v is not None:
        rows.append(("acknowledged orders checked", f"{v['acked_orders']:,} on {len(v['nodes_checked'])} node(s) "
                     f"({v['unverifiable']} below a snapshot base)"))
        rows.append(("lost / duplicated", f"{v['lost_orders']} / {v['duplicate_orders']}"))
        rows.append(("head and state hashes", "agree" if v["hashes_agree"] else "DISAGREE " + json.dumps(v["head"])))
    lg = r.get("logs")
    if lg is not None:
        rows.append(("node logs", f"{lg['truncating_already_applied']} \"{TRUNCATE_MARKER}\", "
                     f"{lg['error_lines']} ERROR, {lg['critical_lines']} CRITICAL, {lg['tracebacks']} tracebacks"))
    width = max(len(k) for k, _ in rows) if rows else 0
    for k, val in rows:
        print(f"{k:<{width}}  {val}")
    if lg and lg["samples"]:
        print("log samples:")
        for line in lg["samples"][:8]:
            print(f"  {line}")
    t = r.get("targets")
    if t:
        print("targets:")
        for name, (value, goal, ok) in t.items():
            print(f"  {'met ' if ok else ('MISS' if ok is False else 'n/a ')}  {name}: {value} (target {goal})")


def targets(r: dict) -> dict:
    out = {}
    s = r.get("saturate")
    if s:
        out["committed orders/s, saturating"] = (s["orders_per_s"], ">= 5000", s["orders_per_s"] >= 5000)
    q = r.get("rate")
    if q:
        ok_rate = q["orders_per_s"] >= 0.95 * q["target_rate"]
        out[f"achieved rate at {q['target_rate']:g}/s"] = (q["orders_per_s"], f">= {0.95 * q['target_rate']:g}", ok_rate)
        if q["target_rate"] == 1000:
            out["p50 at 1000/s"] = (q["p50_ms"], "<= 10 ms", q["p50_ms"] is not None and q["p50_ms"] <= 10)
            out["p99 at 1000/s"] = (q["p99_ms"], "<= 50 ms", q["p99_ms"] is not None and q["p99_ms"] <= 50)
    k = r.get("kills")
    if k:
        out["failover median"] = (k["failover_median_s"], "<= 1.5 s", k["failover_median_s"] is not None and k["failover_median_s"] <= 1.5)
        out[f"failover worst of {len(k['kills'])}"] = (k["failover_max_s"], "<= 3 s (over 20 kills)", k["failover_max_s"] is not None and k["failover_max_s"] <= 3)
    c = r.get("catchup")
    if c:
        out[f"catch-up after {c['orders']:,} orders"] = (c["catchup_s"], "<= 10 s (after 100,000)", c["catchup_s"] <= 10)
    v = r.get("verify")
    if v:
        out["lost / duplicated"] = (f"{v['lost_orders']} / {v['duplicate_orders']}", "0 / 0", v["lost_orders"] == 0 and v["duplicate_orders"] == 0)
    return out


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--duration", type=float, default=None, help="saturating run length in s (default 20; runs when given or when no other mode is)")
    p.add_argument("--rate", type=float, help="open-loop orders/s (runs for --rate-duration s)")
    p.add_argument("--rate-duration", type=float, default=20.0)
    p.add_argument("--overload", type=float, help="after the saturating run, offer this many times its orders/s (open loop, --rate-duration s; shed answers not retried)")
    p.add_argument("--capacity", type=float, help="--overload's capacity in orders/s (default: the saturating run's)")
    p.add_argument("--kills", type=int, default=0, help="leader SIGKILLs")
    p.add_argument("--kill-rate", type=float, default=50.0,
                   help="orders/s during the kills (default 50: light next to the ~150-200/s a 4-node cluster sustains on 2 shared cores)")
    p.add_argument("--kill-settle-s", type=float, default=1.0, help="steady load after a rejoin before the next kill")
    p.add_argument("--catchup", type=int, default=0, metavar="N", help="orders a killed follower misses before its restart")
    p.add_argument("--catchup-timeout", type=float, default=1800.0)
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (saturating and catch-up)")
    p.add_argument("--client-procs", type=int, default=1)
    p.add_argument("--accounts", type=int, default=100)
    p.add_argument("--cross-pct", type=float, default=10.0, help="percent of orders that cross (IOC)")
    p.add_argument("--batch", type=int, default=1, help="orders per request: >1 sends POST /api/v1/batchOrders (at most 100)")
    p.add_argument("--book-target", type=int, default=10_000, help="acked passive orders kept before cancelling the oldest")
    p.add_argument("--http", choices=("raw", "httpx"), default="raw")
    p.add_argument("--targets", choices=("all", "leader"), default="all",
                   help="send the saturating, open-loop and catch-up load to every (live) node (default) or only to the leader (no forwarding)")
    p.add_argument("--block-interval-ms", type=int)
    p.add_argument("--block-commands-max", type=int)
    p.add_argument("--block-bytes-max", type=int)
    p.add_argument("--inflight-blocks-max", type=int, help="blocks proposed and not yet applied on the leader (the config's inflight_blocks_max)")
    p.add_argument("--verify-concurrency", type=int, default=8, help="block requests in flight per node when checking the ledgers")
    p.add_argument("--no-verify", action="store_true",
                   help="nodes skip the Ed25519 check (verify_signatures = false); the client still signs. Compare with a run without it")
    p.add_argument("--no-ceiling", action="store_true", help="skip the ceiling run (bench/ceiling.py) after the saturating one")
    p.add_argument("--durability", choices=("fsync", "os"), default="fsync", help="the nodes' durability setting (docs/CLUSTER.md)")
    p.add_argument("--replay-cost", type=int, default=0, metavar="PAIRS",
                   help="alternate PAIRS saturating runs with the replay check on and off (fresh clusters) and print the cost")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (config, data, logs)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if args.nodes < 1 or args.concurrency < 1 or args.client_procs < 1 or args.accounts < args.client_procs:
        p.error("--nodes, --concurrency, --client-procs must be positive and --accounts >= --client-procs")
    run_saturating = args.duration is not None or not (args.rate or args.kills or args.catchup) or (args.overload and not args.capacity)
    if args.duration is None:
        args.duration = 20.0
    if args.kills and args.nodes < 3:
        p.error("--kills needs at least 3 nodes (a quorum must survive)")
    if args.catchup and args.nodes < 3:
        p.error("--catchup needs at least 3 nodes")

    if args.replay_cost:
        return run_replay_cost(args)

    # SIGTERM (a test runner's timeout) must still tear the cluster down.
    signal.signal(signal.SIGTERM, _interrupt)

    t_wall = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="dex-bench-"))
    cfg = None
    cl = None
    result: dict = {"machine": machine()}
    status = 0
    try:
        cfg = load_cluster(write_config(args, workdir))
        result["config"] = {
            "nodes": len(cfg.nodes), "block_interval_ms": cfg.block_interval_ms, "block_commands_max": cfg.block_commands_max,
            "block_bytes_max": cfg.block_bytes_max, "pending_commands_max": cfg.pending_commands_max,
            "inflight_blocks_max": cfg.inflight_blocks_max, "leader_wait_ms": cfg.leader_wait_ms,
            "client_procs": args.client_procs, "concurrency": args.concurrency, "http": args.http, "targets": args.targets,
            "accounts": args.accounts, "cross_pct": args.cross_pct, "book_target": args.book_target,
            "verify_signatures": cfg.verify_signatures, "durability": cfg.durability, "workdir": str(workdir),
        }
        local.init(cfg)
        log(args, f"starting {len(cfg.nodes)} nodes ({workdir})")
        local.up(cfg, timeout_s=60)
        cl = Cluster(cfg)
        rng = random.Random(args.seed)
        seeds = [rng.randbytes(32) for _ in range(args.accounts)]
        result["sign_us"] = round(measure_signing(seeds), 1)
        result["verify_us"] = round(measure_verifying(seeds), 1)
        result["funding"] = asyncio.run(fund(args, cfg, seeds))
        log(args, f"funded {args.accounts} accounts in {result['funding']['seconds']}s; signing costs {result['sign_us']} us")
        ledger = {"acked": [], "unacked": []}
        result["saturate"] = run_saturate(args, cl, seeds, ledger) if run_saturating else None
        if run_saturating and not args.no_ceiling:
            result["ceiling"] = run_ceiling(args, seeds)
            result["ceiling_orders_per_s"] = result["ceiling"]["orders_per_s"]
            result["ceiling_ratio"] = round(result["saturate"]["orders_per_s"] / max(1.0, result["ceiling"]["orders_per_s"]), 3)
        result["rate"] = run_rate(args, cl, seeds, ledger) if args.rate else None
        if args.overload:
            capacity = args.capacity or (result["saturate"] or {}).get("orders_per_s")
            result["overload"] = run_overload(args, cl, seeds, ledger, capacity)
        result["kills"] = run_kills(args, cl, seeds, ledger) if args.kills else None
        result["catchup"] = run_catchup(args, cl, seeds, ledger) if args.catchup else None
        result["verify"] = verify(args, cl, ledger)
        v = result["verify"]
        if v["lost_orders"] or v["duplicate_orders"] or not v["hashes_agree"] or v["ack_conflicts"]:
            status = 1
    except (KeyboardInterrupt, Exception) as e:
        import traceback

        result["error"] = f"{type(e).__name__}: {e}"
        print(traceback.format_exc(), file=sys.stderr)
        status = 2
    finally:
        if cl is not None:
            cl.close()
        if cfg is not None:
            try:
                local.down(cfg, timeout_s=10)
            except Exception as e:  # kill whatever is left
                print(f"teardown: {e}", file=sys.stderr)
            for n in cfg.nodes:
                if local.node_pid(cfg, n.id) is not None:
                    local.kill_node(cfg, n.id)
            result["logs"] = scan_logs(cfg)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    sat, rate, kills, catch, v = (result.get(k) for k in ("saturate", "rate", "kills", "catchup", "verify"))
    lat = rate or sat
    result.update({
        "orders_per_s": sat["orders_per_s"] if sat else None,
        "latency_from": ("rate" if rate else "saturate") if lat else None,
        "p50_ms": lat["p50_ms"] if lat else None,
        "p99_ms": lat["p99_ms"] if lat else None,
        "max_ms": lat["max_ms"] if lat else None,
        "failover_median_s": kills["failover_median_s"] if kills else None,
        "failover_max_s": kills["failover_max_s"] if kills else None,
        "catchup_s": catch["catchup_s"] if catch else None,
        "lost_orders": v["lost_orders"] if v else None,
        "duplicate_orders": v["duplicate_orders"] if v else None,
        "truncating_already_applied": result["logs"]["truncating_already_applied"] if result.get("logs") else None,
        "wall_s": round(time.monotonic() - t_wall, 1),
    })
    result["targets"] = targets(result)
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
        if result.get("error"):
            print(f"ERROR: {result['error']}")
        print(f"  (wall time {result['wall_s']:.1f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
