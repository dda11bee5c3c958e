"""The forward channel: a follower's persistent, authenticated WebSocket to
the leader, carrying signed requests in batches.

Why a WebSocket: every node already serves WebSockets through uvicorn's
`websockets` stack (the public streams at /ws) and the client library is a
dependency already; gRPC would add grpcio (a large native wheel) for what is
one bidirectional stream of opaque frames. The channel is an internal route,
CHANNEL_PATH, on the node's own API port (not in the OpenAPI document).

Handshake (binary messages):
    leader   -> follower   MAGIC + challenge (32 random bytes) + leader id
    follower -> leader     nonce (32) + HMAC(k, "hello" challenge nonce id) + follower id
    leader   -> follower   frame 0 "welcome" (sealed, below)
`k` is derived from the cluster secret (channel_key); the connection's key
is HMAC(k, "conn" challenge nonce follower id), so it differs on every
connection. A follower sends nothing before the welcome.

Frames: MAC (32) + sequence (8, big-endian) + body, MAC = HMAC(connection
key, direction + sequence + body). Each side's sequence starts at 1 (the
welcome is the leader's 0) and goes up by one a frame; the receiver refuses
a frame with a bad MAC or an unexpected sequence and closes the connection.
So a frame captured on the wire executes nowhere else: not again on its own
connection (the sequence moved on), not on another one (another key).

A follower's frame holds up to FRAME_REQUESTS_MAX requests and
FRAME_BYTES_MAX bytes: whatever arrived while the previous frames
(FRAMES_INFLIGHT_MAX) were in flight. Each request travels as received
(method, path, raw query, body, the three signature headers) with a request
id; the leader verifies the timestamp and the replay guard (the follower
checked the signature and charged the rate limit), executes the frame's
requests with dex.api.execute.execute_many (one submit to the block
builder), and answers each by id: [id, status, payload, headers, height].

Honest answers on a failure (issue 10): a request never handed to the socket
(still queued, or the connection was never welcomed) is -1001 DISCONNECTED,
retryable; one that was written is -1007, outcome unknown. When the leader
changes, the channel to the old one is closed that way and a new one opened.

Bounds: the leader reads messages of at most WS_MESSAGE_BYTES_MAX (uvicorn's
ws_max_size) and frames of FRAME_REQUESTS_MAX requests; at most
HANDSHAKES_MAX connections are unauthenticated at a time, each for at most
HANDSHAKE_TIMEOUT_S; one channel per peer (a new one replaces the old);
FRAMES_INFLIGHT_MAX frames a channel executing at once. The follower reads
answers of at most ANSWER_MESSAGE_BYTES_MAX and forwards at most
FORWARDS_INFLIGHT_MAX requests at once (more: 503 -1008).

Shedding early: when the leader sheds a forwarded request because its
expected wait is over budget (503 -1008 with X-DEX-SHED-MS, how long the wait
stays over budget if nothing more is admitted), the follower refuses the
requests that reach it for that long itself (at most the cluster's
`admission_delay_ms`), with the leader's Retry-After, before it verifies
their signatures or sends them; the first request after that goes through and
probes the leader again. A refusal by the leader's count bound (a big batch
among many queued commands) carries no X-DEX-SHED-MS and holds nothing back.
And while two frames await answers (which the leader sends once a frame's
accepted requests have committed) and the oldest request in this follower's
queue, not yet sent, has waited longer than `admission_delay_ms`, new requests
are refused the same way: the leader's admission bounds the wait in its
builder, not here. With room for a frame, an old request waited for this
process (a stall, a channel connecting), not the leader: nothing is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import logging
import os
import struct
from collections import deque
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket

from dex.api.deps import verify_call
from dex.api.errors import DISCONNECTED, OVERLOADED, SHED_MS_HEADER, TIMEOUT, UNKNOWN, ApiError, Refused, log_once
from dex.api.execute import Answer, Call, execute_many, not_leader, refusal
from dex.api.jsonbody import dumps, loads
from dex.api.server import BODY_BYTES_MAX, HEAD_BYTES_MAX
from dex.ledger.port import REQUEST_TIMEOUT_S, within

log = logging.getLogger("dex.api.channel")

CHANNEL_PATH = "/internal/v1/forward"
MAGIC = b"dex-forward-1\0"
CHALLENGE_BYTES = 32
MAC_BYTES = 32
SEQ = struct.Struct(">Q")
COUNT = struct.Struct(">H")
REQUEST_HEAD = struct.Struct(">QBHHHHHI")  # id, then the lengths of method, path, query, api key, timestamp, signature, body
NODE_ID_BYTES_MAX = 64

FRAME_REQUESTS_MAX = 64
FRAME_OVERHEAD_BYTES = MAC_BYTES + SEQ.size + COUNT.size
# One request of the largest size the HTTP server lets in always fits a frame.
FRAME_BYTES_MAX = 80 * 1024
WS_MESSAGE_BYTES_MAX = FRAME_BYTES_MAX  # the leader's uvicorn ws_max_size (dex/node.py)
ANSWER_FRAME_BYTES_SOFT = 1024 * 1024  # the leader starts a new answer frame past this
ANSWER_MESSAGE_BYTES_MAX = 16 * 1024 * 1024  # the follower's max_size for the leader's frames
FRAMES_INFLIGHT_MAX = 2
HANDSHAKES_MAX = 8
HANDSHAKE_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
SHED_HOLD_MIN_SHARE = 0.25  # after the leader sheds a forward, hold at least this share of the delay budget
FORWARDS_INFLIGHT_MAX = 256  # a follower's requests forwarded at once; more is 503 -1008
FORWARD_TIMEOUT_S = REQUEST_TIMEOUT_S + 2.0  # the leader answers within REQUEST_TIMEOUT_S
APPLY_WAIT_S = 5.0  # a follower waiting to apply a block the leader applied
CLOSE_POLICY = 1008  # a bad MAC, sequence or frame: the connection is closed
CLOSE_TRY_AGAIN = 1013  # too many handshakes, or replaced by a newer channel
assert FRAME_OVERHEAD_BYTES + REQUEST_HEAD.size + BODY_BYTES_MAX + HEAD_BYTES_MAX <= FRAME_BYTES_MAX
assert FRAME_REQUESTS_MAX < 2**16 and FRAMES_INFLIGHT_MAX >= 1
assert ANSWER_FRAME_BYTES_SOFT < ANSWER_MESSAGE_BYTES_MAX and HANDSHAKE_TIMEOUT_S < FORWARD_TIMEOUT_S

TO_LEADER = b"F"
TO_FOLLOWER = b"L"
WELCOME = b"welcome"


class ChannelError(Exception):
    """The peer broke the protocol (a bad MAC, sequence or frame)."""


# ------------------------------------------------------------- sans-IO


def channel_key(secret: str) -> bytes:
    """The channel's key, derived from the cluster secret."""
    return hashlib.sha256(b"dex forward channel\0" + secret.encode()).digest()


def hello_mac(key: bytes, challenge: bytes, nonce: bytes, node_id: str) -> bytes:
    return hmac.digest(key, b"hello\0" + challenge + nonce + node_id.encode(), "sha256")


def connection_key(key: bytes, challenge: bytes, nonce: bytes, node_id: str) -> bytes:
    return hmac.digest(key, b"conn\0" + challenge + nonce + node_id.encode(), "sha256")


def seal(conn_key: bytes, direction: bytes, seq: int, body: bytes) -> bytes:
    """A frame: MAC + sequence + body."""
    head = SEQ.pack(seq)
    return hmac.digest(conn_key, direction + head + body, "sha256") + head + body


def unseal(conn_key: bytes, direction: bytes, expected_seq: int, frame: bytes) -> bytes:
    """The body of a frame sealed with `expected_seq`, or ChannelError."""
    if len(frame) < MAC_BYTES + SEQ.size:
        raise ChannelError("short frame")
    mac, rest = frame[:MAC_BYTES], frame[MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.digest(conn_key, direction + rest, "sha256")):
        raise ChannelError("bad MAC")
    (seq,) = SEQ.unpack_from(rest)
    if seq != expected_seq:
        raise ChannelError(f"frame {seq} out of sequence (expected {expected_seq})")
    return rest[SEQ.size :]


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def encode_request(request_id: int, call: Call) -> bytes:
    parts = [_text(call.method), _text(call.path), _text(call.query), _text(call.api_key), _text(call.timestamp), _text(call.signature)]
    return REQUEST_HEAD.pack(request_id, *(len(p) for p in parts), len(call.body)) + b"".join(parts) + call.body


def encode_requests(encoded: list[bytes]) -> bytes:
    assert 1 <= len(encoded) <= FRAME_REQUESTS_MAX
    return COUNT.pack(len(encoded)) + b"".join(encoded)


def decode_requests(body: bytes) -> list[tuple[int, Call]]:
    """[(request id, Call)] of a frame body, or ChannelError."""
    try:
        (count,) = COUNT.unpack_from(body)
        if not 1 <= count <= FRAME_REQUESTS_MAX:
            raise ChannelError(f"a frame of {count} requests (1..{FRAME_REQUESTS_MAX})")
        at = COUNT.size
        out = []
        for _ in range(count):
            request_id, *lengths = REQUEST_HEAD.unpack_from(body, at)
            at += REQUEST_HEAD.size
            fields = []
            for n in lengths:
                if at + n > len(body):
                    raise ChannelError("truncated request")
                fields.append(body[at : at + n])
                at += n
            method, path, query, api_key, timestamp, signature = (f.decode("utf-8", "surrogatepass") for f in fields[:6])
            out.append((request_id, Call(method, path, query, fields[6], api_key, timestamp, signature)))
        if at != len(body):
            raise ChannelError("trailing bytes")
        return out
    except (struct.error, UnicodeDecodeError) as e:
        raise ChannelError(f"malformed frame: {e}") from None


def encode_answer_rows(answers: list[tuple[int, Answer]]) -> list[bytes]:
    """Each answer as a JSON row [id, status, payload, headers, height]."""
    return [dumps([i, a.status, a.payload, a.headers, a.height]) for i, a in answers]


def encode_answers(answers: list[tuple[int, Answer]]) -> bytes:
    return b"[" + b",".join(encode_answer_rows(answers)) + b"]"


def decode_answers(body: bytes) -> list[tuple[int, Answer]]:
    try:
        rows = loads(body)
        return [(int(i), Answer(int(status), payload, headers, height)) for i, status, payload, headers, height in rows]
    except (ValueError, TypeError) as e:
        raise ChannelError(f"malformed answers: {e}") from None


# ------------------------------------------------------------- the leader

router = APIRouter()


@router.websocket(CHANNEL_PATH)
async def channel_route(ws: WebSocket) -> None:
    """A follower's forward channel (internal: not in the OpenAPI document)."""
    await ws.app.state.node.channel_server.serve(ws)


class ChannelServer:
    """The leader's side: accepts followers' channels and executes their
    frames. Runs on every node (any node may lead)."""

    def __init__(self, node) -> None:
        self.node = node
        self.key = channel_key(node.cfg.secret())
        self.peers = {n.id for n in node.cfg.nodes if n.id != node.node_id}
        self.handshakes = 0
        self.channels: dict[str, object] = {}  # follower id -> its WebSocket
        self.frames_refused = 0

    async def serve(self, ws) -> None:
        """One follower's connection (a Starlette WebSocket), until it closes."""
        if self.handshakes >= HANDSHAKES_MAX:
            await ws.close(code=CLOSE_TRY_AGAIN)
            return
        self.handshakes += 1
        try:
            authenticated = await asyncio.wait_for(self._handshake(ws), HANDSHAKE_TIMEOUT_S)
        except Exception as e:  # a stranger, a timeout, a connection gone mid-handshake: refused, never a crash
            log_once(log, "channel handshake refused", "forward channel: handshake refused (%s: %s)", e.__class__.__name__, str(e)[:200])
            authenticated = None
        finally:
            self.handshakes -= 1
        if authenticated is None:
            await _close(ws, CLOSE_POLICY)
            return
        peer, conn_key = authenticated
        old = self.channels.get(peer)
        self.channels[peer] = ws
        if old is not None:
            await _close(old, CLOSE_TRY_AGAIN)
        try:
            await self._run(ws, conn_key)
        finally:
            if self.channels.get(peer) is ws:
                del self.channels[peer]

    async def _handshake(self, ws) -> tuple[str, bytes]:
        await ws.accept()
        challenge = os.urandom(CHALLENGE_BYTES)
        await ws.send_bytes(MAGIC + challenge + self.node.node_id.encode())
        message = await ws.receive()
        hello = message.get("bytes")
        if not hello or len(hello) > CHALLENGE_BYTES + MAC_BYTES + NODE_ID_BYTES_MAX:
            raise ChannelError("no hello")
        nonce, mac = hello[:CHALLENGE_BYTES], hello[CHALLENGE_BYTES : CHALLENGE_BYTES + MAC_BYTES]
        peer = hello[CHALLENGE_BYTES + MAC_BYTES :].decode("utf-8", "replace")
        if peer not in self.peers or not hmac.compare_digest(mac, hello_mac(self.key, challenge, nonce, peer)):
            raise ChannelError("bad hello")
        conn_key = connection_key(self.key, challenge, nonce, peer)
        await ws.send_bytes(seal(conn_key, TO_FOLLOWER, 0, WELCOME))
        return peer, conn_key

    async def _run(self, ws, conn_key: bytes) -> None:
        expected = 1
        state = _Served(conn_key)
        tasks: set[asyncio.Task] = set()
        try:
            while True:
                try:
                    message = await ws.receive()
                except Exception:  # the connection went away (closed, reset, replaced)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                frame = message.get("bytes")
                try:
                    if frame is None:
                        raise ChannelError("a text message")
                    requests = decode_requests(unseal(conn_key, TO_LEADER, expected, frame))
                    if state.executing >= FRAMES_INFLIGHT_MAX:
                        raise ChannelError(f"more than {FRAMES_INFLIGHT_MAX} frames in flight")
                except ChannelError as e:
                    self.frames_refused += 1
                    log_once(log, "channel frame refused", "forward channel: frame refused, closing (%s)", e)
                    await _close(ws, CLOSE_POLICY)
                    return
                expected += 1
                state.executing += 1
                task = asyncio.create_task(self._execute(ws, state, requests))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:  # their answers have nowhere to go; the blocks still commit
                task.cancel()

    async def _execute(self, ws, state: _Served, requests: list) -> None:
        sent_early: set[int] = set()
        early_send: asyncio.Task | None = None

        def early(answers: list) -> None:
            # Refusals known before any block: answered now, in their own
            # frame, instead of after the frame's accepted requests commit.
            nonlocal early_send
            sent_early.update(i for i, _ in answers)
            early_send = asyncio.ensure_future(self._send(ws, state, answers))

        try:
            answers = await self.execute(requests, early)
        except Exception as e:  # a bug: answer rather than leave the follower waiting
            log_once(log, f"channel execute {e.__class__.__name__}", "forward channel: %s", e, exc_info=e)
            answers = [(i, Answer(500, {"code": UNKNOWN, "msg": "An unknown error occurred while processing the request."})) for i, _ in requests]
        finally:
            state.executing -= 1  # before the answers go out: the follower may send its next frame once it has them
        if early_send is not None:
            await early_send  # its sequence numbers first
        await self._send(ws, state, [(i, answer) for i, answer in answers if i not in sent_early])

    async def _send(self, ws, state: _Served, answers: list) -> None:
        """Answer rows [(request id, Answer)] in as few frames as the soft
        frame size allows."""
        if not answers:
            return
        chunks: list[list[bytes]] = [[]]
        size = 0
        for row in encode_answer_rows(answers):
            if chunks[-1] and size + len(row) > ANSWER_FRAME_BYTES_SOFT:
                chunks.append([])
                size = 0
            chunks[-1].append(row)
            size += len(row) + 1
        try:
            async with state.send_lock:  # sequence numbers go out in order
                for chunk in chunks:
                    state.sent += 1
                    await ws.send_bytes(seal(state.conn_key, TO_FOLLOWER, state.sent, b"[" + b",".join(chunk) + b"]"))
        except Exception:  # the follower went away: it answers its clients -1007
            pass

    async def execute(self, requests: list[tuple[int, Call]], early=None) -> list[tuple[int, Answer]]:
        """The answers to a frame's requests, by request id. `early([(id,
        Answer)])` is given those known before any block, when others must
        wait for theirs (dex.api.execute.execute_many)."""
        node = self.node
        if node.port.leader_id != node.node_id:
            return [(i, not_leader()) for i, _ in requests]
        answers: dict[int, Answer] = {}
        items = []  # (id, (signed, call))
        for i, call in requests:
            try:
                items.append((i, (verify_call(node, call, peer=True), call)))
            except Refused as e:
                answers[i] = refusal(e)
        if items:
            refused = list(answers.items())  # refused before translation

            def early_items(known: list) -> None:
                if early is not None:
                    early(refused + [(items[position][0], answer) for position, answer in known])

            for (i, _), answer in zip(items, await execute_many(node, [item for _, item in items], early_items)):
                answers[i] = answer
        return [(i, answers[i]) for i, _ in requests]


@dataclass(slots=True, eq=False)
class _Served:
    """A follower's channel as the leader serves it."""

    conn_key: bytes
    executing: int = 0  # frames received and not yet answered
    sent: int = 0  # the last answer frame's sequence number
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _close(ws, code: int) -> None:
    try:
        await ws.close(code=code)
    except Exception:
        pass


# ------------------------------------------------------------ the follower


@dataclass(slots=True, eq=False)
class Pending:
    request_id: int
    encoded: bytes
    future: asyncio.Future
    written: bool = False  # handed to the socket: the leader may have executed it
    frame: int = 0
    queued_s: float = 0.0  # loop time it joined the queue


@dataclass(slots=True, eq=False)
class Link:
    """One connection to one leader."""

    leader: str
    queue: deque = field(default_factory=deque)  # Pending, not yet written
    sent: dict = field(default_factory=dict)  # request id -> Pending, written, unanswered
    frame_left: dict = field(default_factory=dict)  # frame seq -> its requests unanswered
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    task: asyncio.Task | None = None


def _count(text) -> int:
    """A header's small non-negative integer, or 0."""
    return int(text) if isinstance(text, str) and 0 < len(text) <= 7 and text.isascii() and text.isdigit() else 0


class ForwardChannel:
    """A follower's channel to the leader: `forward(leader, call)`."""

    def __init__(self, cfg, node_id: str, port, *, timeout_s: float = FORWARD_TIMEOUT_S, url_of=None) -> None:
        assert timeout_s > 0
        self.cfg = cfg
        self.node_id = node_id
        self.port = port  # waits for this node's apply
        self.key = channel_key(cfg.secret())
        self.timeout_s = timeout_s
        self.url_of = url_of or (lambda leader: cfg.node(leader).api_url.replace("http", "ws", 1) + CHANNEL_PATH)
        self.link: Link | None = None
        self.inflight = 0
        self._ids = itertools.count(1)
        self.frames_sent = 0
        self.requests_sent = 0
        self.shed_hold_max_s = cfg.admission_delay_ms / 1000
        self.queue_wait_max_s = cfg.admission_delay_ms / 1000  # the budget, for the wait in this node's queue
        self._shedding: tuple[str, float, int] | None = None  # (leader, until, its Retry-After seconds)
        self.shed_early = 0  # requests refused here: while the leader sheds, or for the wait here (shed_queued)
        self.shed_queued = 0  # of those, refused while the oldest unsent one had waited past the budget

    def admit(self, leader: str) -> None:
        """ApiError 503 -1008 while the hold after `leader` shed one of our
        forwards lasts, or while the oldest request queued here for `leader`
        and not yet sent has waited longer than the admission budget; asked
        before a request's signature is verified."""
        now = asyncio.get_running_loop().time()
        link = self.link
        if link is not None and link.queue and len(link.frame_left) >= FRAMES_INFLIGHT_MAX and link.leader == leader and not link.closed:
            # The leader's admission bounds the wait in its block builder's
            # queue; this bounds the wait in ours, before the leader has seen
            # the request. Its sojourn time (the oldest unsent request's wait)
            # is what a request admitted now would wait at least: frames
            # leave only as the leader answers earlier ones (FRAMES_INFLIGHT_MAX).
            # Only while both frames await answers: with room for a frame the
            # queue goes out on the loop's next turn, and an old request in
            # it waited for this process (a stall, a channel still
            # connecting), not for the leader. On an idle cluster a stall
            # of this process on a busy machine had refused a dashboard's
            # order (CI, a follower's page; the page's retry placed it).
            over_s = now - link.queue[0].queued_s - self.queue_wait_max_s
            if over_s > 0:
                self.shed_early += 1
                self.shed_queued += 1
                refused = ApiError.unavailable(
                    OVERLOADED, "Server is currently overloaded: requests wait for the leader here longer than the budget. Please try again.", 1)
                refused.headers[SHED_MS_HEADER] = str(max(1, round(over_s * 1000)))
                raise refused
        shedding = self._shedding
        if shedding is None or shedding[0] != leader:
            return
        left_s = shedding[1] - now
        if left_s <= 0:
            self._shedding = None
            return
        self.shed_early += 1
        refused = ApiError.unavailable(OVERLOADED, "Server is currently overloaded: the leader is shedding load. Please try again.", shedding[2])
        refused.headers[SHED_MS_HEADER] = str(max(1, round(left_s * 1000)))  # when this node sends again: dex.client retries then
        raise refused

    def _note(self, leader: str, answer: Answer) -> None:
        if answer.status != 503 or not isinstance(answer.payload, dict) or answer.payload.get("code") != OVERLOADED:
            return
        headers = answer.headers or {}
        hold_ms, retry = _count(headers.get(SHED_MS_HEADER)), _count(headers.get("Retry-After"))
        if hold_ms:
            # At least a share of the budget: the leader's excess is how long it
            # stays over budget if nothing more arrives, but this follower's and
            # the others' requests keep arriving. Each one held back here costs
            # no signature check and no forward; the leader, with up to a
            # budget's worth of commands queued, stays busy meanwhile.
            hold_s = min(max(hold_ms / 1000, self.shed_hold_max_s * SHED_HOLD_MIN_SHARE), self.shed_hold_max_s)
            self._shedding = (leader, asyncio.get_running_loop().time() + hold_s, max(1, retry))

    async def stop(self) -> None:
        if self.link is not None:
            self._close(self.link, "node stopping")

    async def forward(self, leader: str, call: Call) -> Answer:
        """Send a request to the leader as received; wait until this node has
        applied the block that holds it. The leader's Answer, or ApiError
        -1001 (never sent), -1007 (may have executed), -1008 (too many)."""
        if self.inflight >= FORWARDS_INFLIGHT_MAX:
            raise ApiError.unavailable(OVERLOADED, "Server is currently overloaded with forwarded requests. Please try again.")
        self.inflight += 1
        try:
            answer = await self._forward(leader, call)
        finally:
            self.inflight -= 1
        self._note(leader, answer)
        if answer.status == 200 and answer.height is not None:
            if not await self.port.wait_applied(answer.height, APPLY_WAIT_S):
                raise ApiError.unavailable(TIMEOUT, f"Committed in block {answer.height}, which this node has not applied yet.")
        return answer

    async def _forward(self, leader: str, call: Call) -> Answer:
        link = self.link
        if link is None or link.closed or link.leader != leader:
            if link is not None:
                self._close(link, f"the leader is now {leader}")
            link = self.link = Link(leader)
            link.task = asyncio.create_task(self._run(link))
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        pending = Pending(request_id, encode_request(request_id, call), loop.create_future(), queued_s=loop.time())
        link.queue.append(pending)
        link.wake.set()
        # One timer on the request's own future (ledger.port.within), not
        # wait_for(shield(...)): those built two more futures and their
        # callbacks per request, ~7% of a follower's CPU at saturation. The
        # future is done from the moment it times out, so the frame builder
        # (or _close) may take it off the queue, unsent, before this resumes.
        try:
            return await within(pending.future, self.timeout_s)
        except asyncio.TimeoutError:
            if not pending.written:
                with contextlib.suppress(ValueError):
                    link.queue.remove(pending)
                raise _not_sent(leader, "no answer in time") from None
            raise _unknown(leader, "no answer in time") from None

    async def _run(self, link: Link) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        reason = "closed"
        try:
            async with connect(
                self.url_of(link.leader), max_size=ANSWER_MESSAGE_BYTES_MAX, open_timeout=CONNECT_TIMEOUT_S,
                compression=None, proxy=None,
            ) as ws:
                conn_key = await asyncio.wait_for(self._handshake(ws), HANDSHAKE_TIMEOUT_S)
                tasks = [asyncio.create_task(self._send(ws, link, conn_key)), asyncio.create_task(self._receive(ws, link, conn_key))]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                for task in done:
                    task.result()  # its error is the reason
                reason = "closed by the leader"
        except (OSError, asyncio.TimeoutError, WebSocketException, ChannelError) as e:
            reason = f"{e.__class__.__name__}: {e}"[:200]
        except asyncio.CancelledError:
            reason = "replaced"
        finally:
            self._close(link, reason)

    async def _handshake(self, ws) -> bytes:
        first = await ws.recv()
        if not isinstance(first, bytes) or not first.startswith(MAGIC) or len(first) < len(MAGIC) + CHALLENGE_BYTES:
            raise ChannelError("not a dex leader")
        challenge = first[len(MAGIC) : len(MAGIC) + CHALLENGE_BYTES]
        nonce = os.urandom(CHALLENGE_BYTES)
        await ws.send(nonce + hello_mac(self.key, challenge, nonce, self.node_id) + self.node_id.encode())
        conn_key = connection_key(self.key, challenge, nonce, self.node_id)
        welcome = await ws.recv()
        if not isinstance(welcome, bytes) or unseal(conn_key, TO_FOLLOWER, 0, welcome) != WELCOME:
            raise ChannelError("no welcome")
        return conn_key

    async def _send(self, ws, link: Link, conn_key: bytes) -> None:
        seq = 0
        while True:
            while not link.queue or len(link.frame_left) >= FRAMES_INFLIGHT_MAX:
                link.wake.clear()
                await link.wake.wait()
            taken: list[Pending] = []
            size = FRAME_OVERHEAD_BYTES
            seq += 1
            while link.queue and len(taken) < FRAME_REQUESTS_MAX and (not taken or size + len(link.queue[0].encoded) <= FRAME_BYTES_MAX):
                p = link.queue.popleft()
                if p.future.done():  # its client gave up while it waited
                    continue
                p.written, p.frame = True, seq
                link.sent[p.request_id] = p
                taken.append(p)
                size += len(p.encoded)
            if not taken:  # every one's client gave up: this sequence number is still free
                seq -= 1
                continue
            link.frame_left[seq] = len(taken)
            self.frames_sent += 1
            self.requests_sent += len(taken)
            await ws.send(seal(conn_key, TO_LEADER, seq, encode_requests([p.encoded for p in taken])))

    async def _receive(self, ws, link: Link, conn_key: bytes) -> None:
        expected = 1
        async for message in ws:
            if not isinstance(message, bytes):
                raise ChannelError("a text message")
            answers = decode_answers(unseal(conn_key, TO_FOLLOWER, expected, message))
            expected += 1
            for request_id, answer in answers:
                p = link.sent.pop(request_id, None)
                if p is None:
                    raise ChannelError(f"an answer to request {request_id}, which is not waiting")
                if not p.future.done():
                    p.future.set_result(answer)
                link.frame_left[p.frame] -= 1
                if link.frame_left[p.frame] == 0:
                    del link.frame_left[p.frame]
                    link.wake.set()

    def _close(self, link: Link, reason: str) -> None:
        """Fail what the link holds: -1001 what was never written, -1007 the rest."""
        if link.task is not None and not link.closed and link.task is not asyncio.current_task():
            link.task.cancel()
        link.closed = True
        while link.queue:
            p = link.queue.popleft()
            if not p.future.done():
                p.future.set_exception(_not_sent(link.leader, reason))
        for p in link.sent.values():
            if not p.future.done():
                p.future.set_exception(_unknown(link.leader, reason))
        link.sent.clear()
        link.frame_left.clear()


def _not_sent(leader: str, reason: str) -> ApiError:
    return ApiError.unavailable(DISCONNECTED, f"The leader ({leader}) is unreachable ({reason}); the request was not sent. Please try again.")


def _unknown(leader: str, reason: str) -> ApiError:
    return ApiError.unavailable(
        TIMEOUT,
        f"The leader ({leader}) did not answer ({reason}); execution status unknown. "
        "Query the order, or retry with the same client order id.",
    )
