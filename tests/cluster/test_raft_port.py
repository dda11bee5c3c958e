"""Attacks on a running node's Raft port by someone without the cluster secret
(issue 11; dex/ledger/transport.py): huge announced lengths and idle
unauthenticated connections. The cluster must keep its leader and term and
keep committing orders throughout.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from cluster import local
from dex.auth import Keypair
from dex.client import Client
from dex.ledger.transport import HANDSHAKE_TIMEOUT_S, UNAUTHENTICATED_PER_HOST_MAX, UNAUTHENTICATED_TOTAL_MAX
from tests.cluster.harness import Cluster

ANNOUNCED = (24_000_000, 2**31 - 1)  # the flood seen, and the most a signed 32-bit prefix can announce
FLOOD_S = 6.0  # per announced length: connection after connection
CLOSE_TIMEOUT_S = 3.0  # a flooding connection must be closed by then
GARBAGE = os.urandom(64 * 1024)
PEAK_RSS_GROWTH_BYTES_MAX = 12 * 2**20  # half the smaller announcement
ORDERS_DURING_FLOOD_MIN = 10
REFUSAL_LINE = "raft transport refused"
REFUSAL_LOG_INTERVAL_S = 10.0


def _raft_address(cluster: Cluster, node_id: str) -> tuple[str, int]:
    n = cluster.cfg.node(node_id)
    return n.raft_host, n.raft_port


def _term_and_leader(cluster: Cluster, node_id: str) -> tuple[int, str]:
    s = cluster.self_status(node_id)
    assert s is not None, f"{node_id} does not answer"
    return s["term"], s["leader"]


def _peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _flood_once(address: tuple[str, int], announced: int) -> tuple[int, float]:
    """Announce `announced` bytes and stream garbage until the node closes the
    connection: (bytes sent, seconds until closed). Fails if it never does."""
    s = socket.create_connection(address, timeout=CLOSE_TIMEOUT_S)
    s.setblocking(False)
    started = time.monotonic()
    sent = 0
    pending = memoryview(struct.pack("<i", announced) + GARBAGE)
    try:
        while time.monotonic() - started < CLOSE_TIMEOUT_S and sent < announced + 4:
            try:
                n = s.send(pending)
            except BlockingIOError:
                n = 0
            except (BrokenPipeError, ConnectionResetError):
                return sent, time.monotonic() - started
            sent += n
            pending = pending[n:] if n < len(pending) else memoryview(GARBAGE)
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    return sent, time.monotonic() - started
            except BlockingIOError:
                pass
            except ConnectionResetError:
                return sent, time.monotonic() - started
            if n == 0:
                time.sleep(0.001)  # the socket buffer is full: give the node a moment to read or close
        raise AssertionError(f"the node still read after {sent} bytes and {time.monotonic() - started:.1f} s of a {announced}-byte announcement")
    finally:
        s.close()


class _OrderFlow:
    """Orders through one node, one after another, in a thread, until stopped."""

    def __init__(self, url: str) -> None:
        self.seller = Client(url, Keypair.generate())
        self.seller.deposit("BTC", "10")
        self.placed = 0
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.seller.place_order("BTCUSDT", "SELL", price="90000", quantity="0.001", client_order_id=f"flood-{self.placed}")
                assert r["status"] == "NEW", r
                self.placed += 1
            except Exception as e:  # reported by the test
                self.errors.append(e)
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.seller.close()


def test_huge_announced_lengths_are_refused_before_they_are_buffered(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    term, _ = _term_and_leader(cluster, leader)
    pid = local.node_pid(cluster.cfg, leader)
    peak_before = _peak_rss_bytes(pid)
    follower = next(n for n in cluster.ids if n != leader)

    with _OrderFlow(cluster.url(follower)) as flow:
        for announced in ANNOUNCED:
            connections = 0
            started = time.monotonic()
            while time.monotonic() - started < FLOOD_S:
                sent, closed_s = _flood_once(_raft_address(cluster, leader), announced)
                assert sent < announced, f"the node took all {sent} bytes of a {announced}-byte announcement"
                assert closed_s < CLOSE_TIMEOUT_S
                connections += 1
            assert connections >= 10, f"only {connections} flooding connections in {FLOOD_S} s"
        placed_during_flood = flow.placed
    assert not flow.errors, flow.errors
    assert placed_during_flood >= ORDERS_DURING_FLOOD_MIN, f"{placed_during_flood} orders committed during the flood"

    assert _term_and_leader(cluster, leader) == (term, leader), "the flood caused an election"
    for n in cluster.ids:
        assert _term_and_leader(cluster, n) == (term, leader), f"{n} saw an election"
    growth = _peak_rss_bytes(pid) - peak_before
    assert growth < PEAK_RSS_GROWTH_BYTES_MAX, f"the leader's peak memory grew by {growth} bytes"
    log = local.log_path(cluster.cfg, leader).read_text(errors="replace")
    lines = [line for line in log.splitlines() if REFUSAL_LINE in line]
    assert lines, "the refusals were not logged"
    assert len(lines) <= 2 * FLOOD_S / REFUSAL_LOG_INTERVAL_S + 2, f"{len(lines)} refusal lines: not rate limited"
    assert "Traceback" not in log


# ------------------------------------------------ idle unauthenticated connections

IDLE_PER_SOURCE = 40
SOURCES_FOR_TOTAL = [f"127.0.0.{i}" for i in range(2, 2 + UNAUTHENTICATED_TOTAL_MAX // UNAUTHENTICATED_PER_HOST_MAX + 2)]
assert len(SOURCES_FOR_TOTAL) * UNAUTHENTICATED_PER_HOST_MAX > UNAUTHENTICATED_TOTAL_MAX  # enough to reach the total cap
CAP_TIMEOUT_S = 10.0
IDLE_CLOSE_TIMEOUT_S = HANDSHAKE_TIMEOUT_S + 5.0


def _open_idle(address: tuple[str, int], source: str, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(2.0)
        try:
            s.connect(address)
        except OSError:  # refused or dropped: not open, which is the point
            s.close()
            continue
        s.setblocking(False)
        out.append(s)
    return out


def _still_open(sockets: list[socket.socket]) -> int:
    n = 0
    for s in sockets:
        try:
            if s.recv(1, socket.MSG_PEEK) != b"":
                n += 1  # the node sent something to a connection that sent nothing: count it as open
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


class _IdleHolder:
    """Keeps IDLE_PER_SOURCE idle connections from `source` to every address,
    opening new ones as the node closes them, until stopped."""

    def __init__(self, addresses: list[tuple[str, int]], source: str) -> None:
        self.addresses = addresses
        self.source = source
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for address in self.addresses:
                self.sockets += _open_idle(address, self.source, IDLE_PER_SOURCE)
            self._stop.wait(0.5)
            for s in self.sockets:
                s.close()
            self.sockets = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for s in self.sockets:
            s.close()


def test_idle_unauthenticated_connections_are_capped_and_time_out(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    term, _ = _term_and_leader(cluster, leader)
    address = _raft_address(cluster, leader)

    # One address: the excess is closed.
    held = _open_idle(address, "127.0.0.2", IDLE_PER_SOURCE)
    try:
        local.wait_for(lambda: _still_open(held) <= UNAUTHENTICATED_PER_HOST_MAX, CAP_TIMEOUT_S,
                       what=f"at most {UNAUTHENTICATED_PER_HOST_MAX} of {len(held)} idle connections from one address left open")
        # Idle ones are closed after the handshake timeout.
        local.wait_for(lambda: _still_open(held) == 0, IDLE_CLOSE_TIMEOUT_S, what="every idle unauthenticated connection closed")
    finally:
        for s in held:
            s.close()

    # Many addresses: the total is capped.
    held = [s for source in SOURCES_FOR_TOTAL for s in _open_idle(address, source, UNAUTHENTICATED_PER_HOST_MAX)]
    try:
        local.wait_for(lambda: _still_open(held) <= UNAUTHENTICATED_TOTAL_MAX, CAP_TIMEOUT_S,
                       what=f"at most {UNAUTHENTICATED_TOTAL_MAX} of {len(held)} idle connections left open")
    finally:
        for s in held:
            s.close()
    assert _term_and_leader(cluster, leader) == (term, leader), "the crowd caused an election"

    # Peers still connect while every node's Raft port is crowded from the
    # peers' own address: a follower restarted meanwhile rejoins and commits.
    follower = next(n for n in cluster.ids if n != leader)
    addresses = [_raft_address(cluster, n) for n in cluster.ids]
    with _IdleHolder(addresses, "127.0.0.1"):
        cluster.kill(follower)
        cluster.start(follower)
        with Client(cluster.url(follower), Keypair.generate()) as client:
            height = client.deposit("USDT", "1000")["blockHeight"]
        cluster.wait_converged(cluster.ids, height_min=height)
