"""Honest error codes when a follower's forward to the leader fails
(dex/api/channel.py): -1001 only when the request provably never reached the
leader (never written to the channel), -1007 (outcome unknown) once it may
have.

The follower's side is driven against fake leaders on real loopback
WebSockets that speak the channel's handshake (refused, never welcoming,
reset after reading the frame, silent, garbage); the case that matters in
production, a leader killed while it holds the request, runs on a real
cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from websockets.asyncio.server import serve

from dex.api import channel as ch
from dex.api.errors import DISCONNECTED, OVERLOADED, SHED_MS_HEADER, TIMEOUT, ApiError
from dex.api.execute import Answer, Call
from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster, signed_request

SECRET = "s" * 32
TIMEOUT_S = 0.5  # the fake-leader tests' forward timeout
WAIT_S = 10.0  # bound on waiting for a condition on a real cluster
POLL_S = 0.02
CALL = Call("POST", "/api/v1/withdraw", "", b"{}", "k", "1", "s")


class FakePort:
    """What the channel asks of the ledger port: whether a height was applied."""

    def __init__(self, applied: int) -> None:
        self.applied = applied
        self.waited: list[int] = []

    async def wait_applied(self, height: int, timeout_s: float) -> bool:
        self.waited.append(height)
        return self.applied >= height


def follower(ports: dict[str, int], ledger: FakePort | None = None) -> ch.ForwardChannel:
    cfg = SimpleNamespace(secret=lambda: SECRET, admission_delay_ms=50)
    return ch.ForwardChannel(cfg, "n2", ledger or FakePort(0), timeout_s=TIMEOUT_S, url_of=lambda leader: f"ws://127.0.0.1:{ports[leader]}{ch.CHANNEL_PATH}")


class FakeLeader:
    """A leader's end of the channel: the real handshake, then `handler(ws,
    conn_key, frames)` where frames is what the follower sent, opened."""

    def __init__(self, handler, *, welcome: bool = True) -> None:
        self.handler = handler
        self.welcome = welcome
        self.frames: list[list] = []
        self.server = None

    async def __aenter__(self) -> int:
        self.server = await serve(self._serve, "127.0.0.1", 0, compression=None)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, ws) -> None:
        key = ch.channel_key(SECRET)
        challenge = os.urandom(ch.CHALLENGE_BYTES)
        if not self.welcome:
            await ws.wait_closed()
            return
        await ws.send(ch.MAGIC + challenge + b"n1")
        hello = await ws.recv()
        nonce, node_id = hello[: ch.CHALLENGE_BYTES], hello[ch.CHALLENGE_BYTES + ch.MAC_BYTES :].decode()
        assert hello[ch.CHALLENGE_BYTES : ch.CHALLENGE_BYTES + ch.MAC_BYTES] == ch.hello_mac(key, challenge, nonce, node_id)
        conn_key = ch.connection_key(key, challenge, nonce, node_id)
        await ws.send(ch.seal(conn_key, ch.TO_FOLLOWER, 0, ch.WELCOME))
        await self.handler(ws, conn_key, self)

    async def read_frame(self, ws, conn_key: bytes) -> list:
        requests = ch.decode_requests(ch.unseal(conn_key, ch.TO_LEADER, len(self.frames) + 1, await ws.recv()))
        self.frames.append(requests)
        return requests


async def forward_to(handler, ledger: FakePort | None = None, *, welcome: bool = True):
    """Forward one request to a fake leader: the Answer or the ApiError, and
    the frames the leader read."""
    leader = FakeLeader(handler, welcome=welcome)
    async with leader as port:
        f = follower({"n1": port}, ledger)
        try:
            return await f.forward("n1", CALL), leader.frames
        except ApiError as e:
            return e, leader.frames
        finally:
            await f.stop()


async def against(handler, scenario):
    """`scenario(follower)` run against a fake leader: its result, and the
    frames the leader read."""
    leader = FakeLeader(handler)
    async with leader as port:
        f = follower({"n1": port})
        try:
            return await scenario(f), leader.frames
        finally:
            await f.stop()


async def _answer(ws, conn_key: bytes, requests: list, status: int = 200, height: int | None = 7, seq: int = 1) -> None:
    answers = [(i, Answer(status, {"free": "1", "blockHeight": height}, None, height)) for i, _ in requests]
    await ws.send(ch.seal(conn_key, ch.TO_FOLLOWER, seq, ch.encode_answers(answers)))


def test_a_refused_connection_is_1001_please_try_again() -> None:
    async def run():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()  # nothing listens there now: the connection is refused
        f = follower({"n1": port})
        try:
            await f.forward("n1", CALL)
        except ApiError as e:
            return e
        finally:
            await f.stop()

    e = asyncio.run(run())

    assert isinstance(e, ApiError) and (e.status, e.code) == (503, DISCONNECTED), e
    assert "not sent" in e.msg


def test_a_leader_that_never_welcomes_the_channel_is_1001_nothing_was_sent() -> None:
    e, frames = asyncio.run(forward_to(None, welcome=False))

    assert isinstance(e, ApiError) and (e.status, e.code) == (503, DISCONNECTED), e
    assert frames == []


def test_a_request_that_times_out_already_off_the_queue_is_still_1001(monkeypatch) -> None:
    """The request's future is done from the turn its timer fires; the frame
    builder (it skips done ones) or the link's close may take it off the queue
    before the waiting task resumes. Never sent: -1001, not a 500."""

    async def taken_off_as_it_times_out(future, timeout_s):
        f = forwarding[0]
        f.link.queue.clear()
        raise asyncio.TimeoutError

    forwarding: list = []

    async def run():
        leader = FakeLeader(None, welcome=False)
        async with leader as port:
            f = follower({"n1": port})
            forwarding.append(f)
            try:
                await f.forward("n1", CALL)
            except ApiError as e:
                return e, leader.frames
            finally:
                await f.stop()
        raise AssertionError("a request with no answer was answered")

    monkeypatch.setattr(ch, "within", taken_off_as_it_times_out)
    e, frames = asyncio.run(run())
    assert (e.status, e.code) == (503, DISCONNECTED), (e.status, e.code, e.msg)
    assert frames == []


def test_a_connection_reset_after_the_frame_was_sent_is_1007_unknown() -> None:
    async def reset(ws, conn_key, leader):
        await leader.read_frame(ws, conn_key)
        ws.transport.abort()  # RST after reading the request, no answer

    e, frames = asyncio.run(forward_to(reset))

    assert [[c for _, c in f] for f in frames] == [[CALL]], "the fake leader did not read the request as sent"
    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT), e
    assert "unknown" in e.msg


def test_a_leader_that_never_answers_is_1007_unknown() -> None:
    async def silent(ws, conn_key, leader):
        await leader.read_frame(ws, conn_key)
        await ws.wait_closed()  # until the follower gives up and closes

    e, frames = asyncio.run(forward_to(silent))

    assert frames
    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT), e


def test_a_garbage_answer_is_1007_unknown() -> None:
    async def garbage(ws, conn_key, leader):
        requests = await leader.read_frame(ws, conn_key)
        await _answer(ws, b"x" * 32, requests)  # sealed with the wrong key
        await ws.wait_closed()

    e, _ = asyncio.run(forward_to(garbage))

    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT), e


def test_an_answer_is_passed_on_once_this_node_applied_its_block() -> None:
    async def ok(ws, conn_key, leader):
        await _answer(ws, conn_key, await leader.read_frame(ws, conn_key))
        await ws.wait_closed()

    answer, _ = asyncio.run(forward_to(ok, FakePort(applied=7)))
    assert answer == Answer(200, {"free": "1", "blockHeight": 7}, None, 7)

    ledger = FakePort(applied=6)  # the block is not applied here in time
    e, _ = asyncio.run(forward_to(ok, ledger))
    assert ledger.waited == [7]
    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT) and "block 7" in e.msg


def test_after_the_leader_sheds_a_forward_the_follower_sheds_while_the_leader_stays_over_budget() -> None:
    """The leader answers three forwards 503 -1008 (Retry-After 3): the first
    two say how long its expected wait stays over budget (X-DEX-SHED-MS), the
    third, a count-bound refusal, does not. After the first the follower
    refuses that leader's requests itself, with the leader's Retry-After, and
    counts them; not another leader's; the hold is at most the cluster's
    budget (here set to end at once for the second); a count-bound refusal
    holds nothing back."""
    sheds = [{"Retry-After": "3", SHED_MS_HEADER: "60000"}, {"Retry-After": "3", SHED_MS_HEADER: "1"}, {"Retry-After": "3"}]

    async def shedding(ws, conn_key, leader):
        for seq, headers in enumerate(sheds, 1):
            requests = await leader.read_frame(ws, conn_key)
            answers = [(i, Answer(503, {"code": OVERLOADED, "msg": "overloaded"}, headers, None)) for i, _ in requests]
            await ws.send(ch.seal(conn_key, ch.TO_FOLLOWER, seq, ch.encode_answers(answers)))
        await ws.wait_closed()

    async def scenario(f):
        f.admit("n1")  # nothing shed yet
        f.shed_hold_max_s = 60.0
        answers = [await f.forward("n1", CALL)]
        with pytest.raises(ApiError) as refused:
            f.admit("n1")
        f.admit("n3")  # another leader: no refusal of its on record
        f.shed_hold_max_s = 0.0  # the cluster's budget caps the hold: over at once
        answers.append(await f.forward("n1", CALL))
        f.admit("n1")
        f.shed_hold_max_s = 60.0
        answers.append(await f.forward("n1", CALL))
        f.admit("n1")  # a count-bound refusal: no hold
        return answers, refused.value, f.shed_early

    (answers, refused, shed_early), frames = asyncio.run(against(shedding, scenario))
    assert [(a.status, a.payload["code"]) for a in answers] == [(503, OVERLOADED)] * 3
    assert (refused.status, refused.code, refused.headers["Retry-After"]) == (503, OVERLOADED, "3")
    assert set(refused.headers) == {"Retry-After", SHED_MS_HEADER}
    assert 59_000 <= int(refused.headers[SHED_MS_HEADER]) <= 60_000  # what is left of the hold: dex.client retries then
    assert shed_early == 1 and [len(f) for f in frames] == [1, 1, 1]


def test_a_shed_holds_the_followers_requests_back_for_at_least_a_share_of_the_budget() -> None:
    """The leader says it stays over budget 1 ms longer, but every follower's
    requests keep its queue full: the follower holds its own back for at least
    SHED_HOLD_MIN_SHARE of the budget (each one held back costs no signature
    check and no forward), and never longer than the budget."""

    async def shedding(ws, conn_key, leader):
        requests = await leader.read_frame(ws, conn_key)
        headers = {"Retry-After": "1", SHED_MS_HEADER: "1"}
        answers = [(i, Answer(503, {"code": OVERLOADED, "msg": "overloaded"}, headers, None)) for i, _ in requests]
        await ws.send(ch.seal(conn_key, ch.TO_FOLLOWER, 1, ch.encode_answers(answers)))
        await ws.wait_closed()

    async def scenario(f):
        f.shed_hold_max_s = 0.4
        await f.forward("n1", CALL)
        noted_until = f._shedding[1]
        now = asyncio.get_running_loop().time()
        with pytest.raises(ApiError) as refused:
            f.admit("n1")
        return noted_until - now, refused.value

    (held_s, refused), _ = asyncio.run(against(shedding, scenario))
    assert 0.4 * ch.SHED_HOLD_MIN_SHARE - 0.05 <= held_s <= 0.4 * ch.SHED_HOLD_MIN_SHARE
    assert (refused.status, refused.code) == (503, OVERLOADED)
    assert 1 <= int(refused.headers[SHED_MS_HEADER]) <= round(held_s * 1000)


def test_while_the_oldest_unsent_forward_has_waited_past_the_budget_the_follower_sheds_new_requests() -> None:
    """Two frames are in flight unanswered (FRAMES_INFLIGHT_MAX), so a third
    request waits in the follower's queue. While the oldest such request has
    waited no longer than the admission budget, new requests are admitted;
    past it they are refused at once, 503 -1008 with Retry-After and
    X-DEX-SHED-MS (how far past the budget), before any signature check,
    and counted; once the queue has drained they are admitted again."""
    assert ch.FRAMES_INFLIGHT_MAX == 2  # the scenario fills exactly two frames
    read = [asyncio.Event(), asyncio.Event()]
    release = asyncio.Event()

    async def slow(ws, conn_key, leader):
        first = await leader.read_frame(ws, conn_key)
        read[0].set()
        second = await leader.read_frame(ws, conn_key)
        read[1].set()
        await release.wait()
        await _answer(ws, conn_key, first, height=None, seq=1)
        await _answer(ws, conn_key, second, height=None, seq=2)
        third = await leader.read_frame(ws, conn_key)
        await _answer(ws, conn_key, third, height=None, seq=3)
        await ws.wait_closed()

    async def scenario(f):
        f.queue_wait_max_s = 60.0
        calls = []
        for n in range(3):
            calls.append(asyncio.ensure_future(f.forward("n1", Call("POST", "/api/v1/order", "", str(n).encode(), "k", "1", "s"))))
            if n < 2:
                await read[n].wait()
        while not (f.link is not None and f.link.queue):  # the third is queued: both frames are in flight
            await asyncio.sleep(0)
        try:
            f.admit("n1")  # it has waited a moment: within the budget
            f.link.queue[0].queued_s -= 120.0  # as if it had waited two minutes
            with pytest.raises(ApiError) as refused:
                f.admit("n1")
            f.admit("n3")  # another leader's requests do not wait in this queue
            counts = (f.shed_early, f.shed_queued)
        finally:
            release.set()  # a failure above must not leave the fake leader waiting
        answers = await asyncio.gather(*calls)
        f.admit("n1")  # drained: admitted again
        return refused.value, counts, answers

    (refused, counts, answers), frames = asyncio.run(against(slow, scenario))
    assert (refused.status, refused.code, refused.headers["Retry-After"]) == (503, OVERLOADED, "1")
    assert 59_000 <= int(refused.headers[SHED_MS_HEADER]) <= 61_000
    assert counts == (1, 1)
    assert [a.status for a in answers] == [200, 200, 200]
    assert [len(f) for f in frames] == [1, 1, 1]


def test_an_old_unsent_forward_with_room_for_a_frame_sheds_nothing() -> None:
    """A request that waited long in the queue while no frame awaits an
    answer (here: the channel is still connecting) waited for this process,
    not for the leader; it goes out as soon as the loop turns, so new
    requests are admitted. (On a busy CI machine a follower descheduled for
    a moment had refused a dashboard's order on an idle cluster.)"""

    async def ok(ws, conn_key, leader):
        requests = await leader.read_frame(ws, conn_key)
        await _answer(ws, conn_key, requests, height=None)
        await ws.wait_closed()

    async def scenario(f):
        call = asyncio.ensure_future(f.forward("n1", CALL))
        while not (f.link is not None and f.link.queue):
            await asyncio.sleep(0)
        assert not f.link.frame_left  # connecting: nothing sent yet
        f.link.queue[0].queued_s -= 120.0  # as if it had waited two minutes
        f.admit("n1")
        return await call, (f.shed_early, f.shed_queued)

    (answer, counts), frames = asyncio.run(against(ok, scenario))
    assert answer.status == 200 and counts == (0, 0)
    assert [len(f) for f in frames] == [1]


def test_requests_that_arrive_together_travel_in_one_frame_and_are_answered_by_id() -> None:
    async def ok(ws, conn_key, leader):
        requests = await leader.read_frame(ws, conn_key)
        answers = [(i, Answer(200, {"n": call.body.decode()}, None, None)) for i, call in reversed(requests)]
        await ws.send(ch.seal(conn_key, ch.TO_FOLLOWER, 1, ch.encode_answers(answers)))
        await ws.wait_closed()

    async def scenario(f):
        calls = [Call("POST", "/api/v1/order", "", str(n).encode(), "k", "1", "s") for n in range(10)]
        return await asyncio.gather(*(f.forward("n1", c) for c in calls))

    answers, frames = asyncio.run(against(ok, scenario))

    assert [len(f) for f in frames] == [10]
    assert [a.payload["n"] for a in answers] == [str(n) for n in range(10)]


def test_a_leader_change_answers_what_the_old_leader_holds_1007_and_moves_the_channel() -> None:
    async def holds(ws, conn_key, leader):
        await leader.read_frame(ws, conn_key)
        await ws.wait_closed()

    async def ok(ws, conn_key, leader):
        await _answer(ws, conn_key, await leader.read_frame(ws, conn_key), height=None)
        await ws.wait_closed()

    async def run():
        old, new = FakeLeader(holds), FakeLeader(ok)
        async with old as old_port, new as new_port:
            f = follower({"n1": old_port, "n3": new_port})
            try:
                held = asyncio.ensure_future(f.forward("n1", CALL))
                while not old.frames:  # the old leader read it
                    await asyncio.sleep(0.005)
                answer = await f.forward("n3", CALL)
                try:
                    await held
                except ApiError as e:
                    return e, answer, old.frames, new.frames
            finally:
                await f.stop()

    e, answer, old_frames, new_frames = asyncio.run(run())

    assert isinstance(e, ApiError) and (e.status, e.code) == (503, TIMEOUT) and "n3" in e.msg, e
    assert answer.status == 200 and len(old_frames) == 1 and len(new_frames) == 1


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
    (over its open channel: the kernel queues the frame, unread), then
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
            # The follower's channel to the leader is open (a request went through it), so
            # the withdrawal below is written to it, not stuck in the handshake.
            warm = signed_request(http, keys, "POST", cluster.url(follower), "/api/v1/deposit", {"asset": "USDT", "amount": "1"})
            assert warm.status_code == 200, warm.text
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
