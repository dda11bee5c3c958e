"""Honest error codes when a follower's forward to the leader fails
(dex/api/forward.py): -1001 only when the request provably never reached the
leader, -1007 (outcome unknown) once it may have.

The logic is driven against fake leaders on real loopback sockets (refused,
reset mid-request, silent, garbage); the case that matters in production, a
leader killed while it holds the request, runs on a real cluster."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from dex.api.errors import DISCONNECTED, TIMEOUT, ApiError
from dex.api.forward import Forwarder
from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster, signed_request

SECRET = "s" * 32
TIMEOUT_S = 0.5  # the fake-leader tests' forward timeout
WAIT_S = 10.0  # bound on waiting for a condition on a real cluster
POLL_S = 0.02


class FakePort:
    """What the Forwarder asks of the ledger port: whether a height was applied."""

    def __init__(self, applied: int) -> None:
        self.applied = applied
        self.waited: list[int] = []

    async def wait_applied(self, height: int, timeout_s: float) -> bool:
        self.waited.append(height)
        return self.applied >= height


def forwarder(port: int, ledger: FakePort | None = None) -> Forwarder:
    cfg = SimpleNamespace(node=lambda _id: SimpleNamespace(api_url=f"http://127.0.0.1:{port}"), secret=lambda: SECRET)
    return Forwarder(cfg, "n2", ledger or FakePort(0), timeout_s=TIMEOUT_S)


async def forward_to(handler, ledger: FakePort | None = None):
    """Forward one request to a fake leader running `handler(reader,
    writer)`; (status, payload) or the ApiError, and what the leader read."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        await handler(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    f = forwarder(port, ledger)
    await f.start()
    try:
        status, payload, _ = await f.forward("n1", "POST", "/api/v1/withdraw", "", {"x-api-key": "k", "x-signature": "s"}, b"{}", b"signed")
        return (status, payload), seen
    except ApiError as e:
        return e, seen
    finally:
        await f.stop()
        server.close()
        await server.wait_closed()


async def _answer(writer: asyncio.StreamWriter, status: str, body: bytes, content_type: str = "application/json") -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    writer.close()


def test_a_refused_connection_is_1001_please_try_again() -> None:
    async def run():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()  # nothing listens there now: the connection is refused
        f = forwarder(port)
        await f.start()
        try:
            await f.forward("n1", "POST", "/api/v1/withdraw", "", {}, b"{}", b"signed")
        except ApiError as e:
            return e
        finally:
            await f.stop()

    e = asyncio.run(run())

    assert isinstance(e, ApiError) and (e.status, e.code) == (503, DISCONNECTED), e
    assert "not sent" in e.msg


def test_a_connection_reset_after_the_request_was_sent_is_1007_unknown() -> None:
    async def reset(reader, writer):
        writer.transport.abort()  # RST after reading the request, no answer

    e, seen = asyncio.run(forward_to(reset))

    assert seen and seen[0].startswith(b"POST /api/v1/withdraw"), "the fake leader did not read the request"
    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT), e
    assert "unknown" in e.msg


def test_a_leader_that_never_answers_is_1007_unknown() -> None:
    async def silent(reader, writer):
        await reader.read()  # until the forwarder gives up and closes

    e, seen = asyncio.run(forward_to(silent))

    assert seen
    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT), e


def test_a_garbage_answer_is_1007_unknown() -> None:
    async def garbage(reader, writer):
        await _answer(writer, "200 OK", b"<html>not json", "text/html")

    e, _ = asyncio.run(forward_to(garbage))

    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT), e


def test_an_answer_is_passed_on_once_this_node_applied_its_block() -> None:
    async def ok(reader, writer):
        await _answer(writer, "200 OK", json.dumps({"free": "1", "blockHeight": 7}).encode())

    (status, payload), _ = asyncio.run(forward_to(ok, FakePort(applied=7)))
    assert (status, payload) == (200, {"free": "1", "blockHeight": 7})

    ledger = FakePort(applied=6)  # the block is not applied here in time
    e, _ = asyncio.run(forward_to(ok, ledger))
    assert ledger.waited == [7]
    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT) and "block 7" in e.msg


# ------------------------------------------------------------- real nodes


def _queued_bytes_on(port: int) -> int:
    """The bytes waiting unread in established TCP sockets bound to local
    `port` (from /proc/net/tcp): a stopped server's unread requests."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            state = fields[3]
            rx_queue = int(fields[4].split(":")[1], 16)
            if local_port == port and state == "01":
                total += rx_queue
    return total


def test_a_withdrawal_held_by_a_leader_killed_mid_request_is_1007_not_1001(cluster: Cluster) -> None:
    """The leader is paused (SIGSTOP), a follower forwards a withdrawal to it
    (the kernel accepts the connection and queues the request, unread), then
    the leader is SIGKILLed: the follower cannot know whether it executed and
    must not say "please try again" (-1001), on which a client would send the
    withdrawal twice. (If an election beats the forward, the withdrawal goes
    to the new leader and the case is tried again, at most ATTEMPTS times.)"""
    from cluster import local

    keys = Keypair.generate()
    with Client(cluster.urls, keys) as c:
        c.deposit("USDT", "1000")
    http = httpx.Client(trust_env=False)
    attempts = 2  # each kills a leader: a third would leave two of four nodes, no quorum
    try:
        for _ in range(attempts):
            leader = cluster.wait_leader(cluster.alive())
            follower = next(n for n in cluster.alive() if n != leader)
            leader_port = cluster.cfg.node(leader).api_port
            pid = local.node_pid(cluster.cfg, leader)
            answer: list = []
            sender = threading.Thread(target=lambda: answer.append(
                signed_request(http, keys, "POST", cluster.url(follower), "/api/v1/withdraw", {"asset": "USDT", "amount": "1"})
            ))
            os.kill(pid, signal.SIGSTOP)
            try:
                sender.start()
                held = _wait_for(lambda: "answered" if answer else "held" if _queued_bytes_on(leader_port) > 0 else None)
            finally:
                cluster.kill(leader)  # SIGKILL works on a stopped process
            sender.join(WAIT_S * 2)
            assert answer, "the follower never answered"
            if held == "held":
                r = answer[0]
                assert r.status_code == 503, (r.status_code, r.text)
                assert r.json()["code"] == TIMEOUT, r.json()
                return
    finally:
        http.close()
    pytest.fail(f"in {attempts} attempts an election always beat the forward to the stopped leader")


def _wait_for(condition):
    """The first true value of condition(), polled for at most WAIT_S; None if none."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(POLL_S)
    return None
