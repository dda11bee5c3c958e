"""Every HTTP input is bounded before it is read, on a real node
(dex/api/server.py): a huge body is refused from its Content-Length, a huge
or never-finished head is cut off, one address cannot hold every connection,
and the node keeps serving others throughout."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from cluster import local
from dex.api.server import BODY_BYTES_MAX, CONNECTIONS_PER_ADDRESS_MAX, HEAD_BYTES_MAX, HEAD_TIMEOUT_S
from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster

CLOSE_DEADLINE_S = 5.0


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    """One cluster for the module: each test sends its own requests and stops no node."""
    return shared_cluster


def api_address(cluster: Cluster, node: str) -> tuple[str, int]:
    n = cluster.cfg.node(node)
    return n.api_host, n.api_port


def rss_kib(cluster: Cluster, node: str) -> int:
    pid = local.node_pid(cluster.cfg, node)
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


RESET = b"<reset>"  # the node closed with our bytes unread: the kernel sent RST, which may drop its answer


def read_answer(s: socket.socket, deadline_s: float = CLOSE_DEADLINE_S) -> bytes:
    """Everything the node sends until it closes the connection (RESET if it
    reset it); fails if the node keeps it open."""
    s.settimeout(deadline_s)
    data = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data or RESET
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the node kept the connection open; sent {data[:200]!r}")


def still_serves(cluster: Cluster, node: str) -> None:
    with Client(cluster.url(node), Keypair.generate()) as c:
        assert c.deposit("USDT", "1")["blockHeight"] > 0


def test_a_body_over_the_bound_is_refused_from_its_length_before_it_is_read(cluster: Cluster) -> None:
    node = cluster.ids[0]
    before = rss_kib(cluster, node)
    with socket.create_connection(api_address(cluster, node)) as s:
        s.sendall(b"POST /api/v1/order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n")
        s.sendall(b"{" * 65536)
        answer = read_answer(s)

    assert answer == RESET or (answer.startswith(b"HTTP/1.1 413 ") and b'"code": -9413' in answer), answer[:200]
    assert rss_kib(cluster, node) - before < 20 * 1024
    still_serves(cluster, node)


def test_a_chunked_body_is_cut_off_at_the_bound(cluster: Cluster) -> None:
    node = cluster.wait_leader()  # the leader reads the body to check its signature (a follower would too, after a leader lookup)
    chunk = b"a" * 8192
    keys = Keypair.generate()
    signed = keys.headers(time.time_ns() // 1_000_000, "POST", "/api/v1/order", "", b"")  # well formed, so the route reads the body
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.items()).encode()
    with socket.create_connection(api_address(cluster, node)) as s:
        s.sendall(b"POST /api/v1/order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n" + head + b"\r\n")
        sent = 0
        try:
            while sent <= BODY_BYTES_MAX + len(chunk):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_answer(s)

    assert answer == RESET or answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    still_serves(cluster, node)


def test_a_head_over_the_bound_is_refused(cluster: Cluster) -> None:
    node = cluster.ids[2]
    with socket.create_connection(api_address(cluster, node)) as s:
        s.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(20 * 1024 * 1024 // 65536):  # 20 MB of one header
                s.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_answer(s)

    assert answer in (b"", RESET) or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert 0 < HEAD_BYTES_MAX < 65536
    still_serves(cluster, node)


def test_a_head_never_finished_is_closed_after_the_timeout(cluster: Cluster) -> None:
    node = cluster.ids[3]
    with socket.create_connection(api_address(cluster, node)) as silent, socket.create_connection(api_address(cluster, node)) as slow:
        slow.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert read_answer(silent, HEAD_TIMEOUT_S + CLOSE_DEADLINE_S) == b""
        assert read_answer(slow, CLOSE_DEADLINE_S) == b""
        assert time.monotonic() - started >= HEAD_TIMEOUT_S - 1.0
    still_serves(cluster, node)


def test_one_address_cannot_hold_every_connection(cluster: Cluster) -> None:
    node = cluster.ids[0]
    held = []
    try:
        for _ in range(CONNECTIONS_PER_ADDRESS_MAX):
            held.append(socket.create_connection(api_address(cluster, node), source_address=("127.0.0.2", 0)))
        with socket.create_connection(api_address(cluster, node), source_address=("127.0.0.2", 0)) as extra:
            answer = read_answer(extra)
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:200]
        assert b"\r\nretry-after: 1\r\n" in answer.lower(), answer[:300]  # when to come back, as every overload answer
        still_serves(cluster, node)  # from 127.0.0.1: another address
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("value", ["²", "１２", "\u0663", "1" * 40])
def test_unicode_digits_in_the_timestamp_are_a_400_not_a_500(cluster: Cluster, value: str) -> None:
    keys = Keypair.generate()
    node = cluster.ids[0]
    raw = value.encode()
    head = b"POST /api/v1/deposit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n"
    head += b"X-API-KEY: " + keys.api_key.encode() + b"\r\nX-SIGNATURE: " + b"A" * 88 + b"\r\nX-TIMESTAMP: " + raw + b"\r\n\r\n{}"
    with socket.create_connection(api_address(cluster, node)) as s:
        s.sendall(head)
        answer = read_answer(s)

    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b'"code":-1021' in answer.replace(b" ", b"")
