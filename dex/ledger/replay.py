"""The replay guard: a signed request executes at most once, cluster-wide.

The block explorer publishes every request's signed bytes, so anyone can send
a captured request again. The guard is replicated state beside the engine: it
remembers every signed request a block carried for as long as that request's
timestamp could still be accepted, and `apply_proposal` rejects a request it
already holds (REPLAYED) or whose timestamp is too far from the block time
(EXPIRED_REQUEST) before any of its commands reaches the engine.

A request is named by SHA-256(public key || signed bytes), the first
REQUEST_ID_BYTES: the signed bytes start with the timestamp and hold method,
path, query and body, so two different requests never share a name, and a
second valid signature over the same bytes names the same request.

Validity against the block time T (deterministic: no clock is read here):

    timestamp_ms - REQUEST_LEAD_MS_MAX <= T <= timestamp_ms + REQUEST_AGE_MS_MAX

The API refuses, against its own clock, a request older than its signed
recvWindow (at most RECV_WINDOW_MS_MAX) or more than 1 s ahead; the slack on
top covers the queueing before a block and the leader's clock differing from
the node's. Once T passes timestamp_ms + REQUEST_AGE_MS_MAX the timestamp
check alone refuses a replay, so the guard forgets the request then: memory is
bounded by the signed requests of the last REQUEST_AGE_MS_MAX, and at most
REQUESTS_REMEMBERED_MAX (past that, new signed requests are refused with
REQUESTS_WINDOW_FULL, answered 503, until old ones expire).

Requests are kept in buckets by timestamp second; `advance` drops whole
buckets. Encoding (in the Raft dump, beside the engine snapshot) lists the
requests in (timestamp, id) order, so equal guards encode to equal bytes.
"""

from __future__ import annotations

import hashlib
import struct

from dex.auth import RECV_WINDOW_MS_MAX
from dex.core.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from dex.core.events import OrderRejected
from dex.core.reasons import Reason

REQUEST_ID_BYTES = 16
BLOCK_TIME_SLACK_MS = 30_000  # queueing before a block + leader vs node clock
REQUEST_AGE_MS_MAX = RECV_WINDOW_MS_MAX + BLOCK_TIME_SLACK_MS
REQUEST_LEAD_MS_MAX = 1_000 + BLOCK_TIME_SLACK_MS  # the API allows 1 s ahead
REQUESTS_REMEMBERED_MAX = 1_000_000  # ~130 MB at the bound; ~11,000 signed requests/s for 90 s
BUCKET_MS = 1_000
assert REQUEST_AGE_MS_MAX > RECV_WINDOW_MS_MAX and REQUEST_LEAD_MS_MAX > 1_000
assert REQUEST_AGE_MS_MAX % BUCKET_MS == 0

MAGIC = b"DEXR"
VERSION = 1
_HEAD = struct.Struct("<4sHI")  # magic, version, count
_ENTRY = struct.Struct(f"<Q{REQUEST_ID_BYTES}s")  # timestamp_ms, id


def request_id(public_key: bytes, payload: bytes) -> bytes:
    """The name of a signed request (see the module docstring)."""
    return hashlib.sha256(public_key + payload).digest()[:REQUEST_ID_BYTES]


class ReplayGuard:
    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}  # id -> timestamp_ms
        self._buckets: dict[int, list[bytes]] = {}  # timestamp second -> ids
        self._floor = 0  # every bucket below this second has been dropped

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, rid: bytes) -> bool:
        return rid in self._seen

    def used(self, public_key: bytes, payload: bytes) -> bool:
        """True when a block already carried this request (a read for the
        API's early refusal; the block's own check is `admit`)."""
        return request_id(public_key, payload) in self._seen

    def advance(self, block_time_ms: int) -> None:
        """Forget every request that a block at `block_time_ms` (or later)
        refuses by its timestamp alone."""
        floor = (block_time_ms - REQUEST_AGE_MS_MAX) // BUCKET_MS  # buckets below it are expired
        if floor <= self._floor:
            return
        seen = self._seen
        buckets = self._buckets
        span = range(self._floor, floor) if floor - self._floor <= len(buckets) else sorted(s for s in buckets if s < floor)
        for second in span:
            for rid in buckets.pop(second, ()):
                del seen[rid]
        self._floor = floor

    def admit(self, public_key: bytes, timestamp_ms: int, payload: bytes, block_time_ms: int) -> Reason | None:
        """Record a request a block carries: None when it may execute, else
        why not. Call `advance(block_time_ms)` first."""
        if not timestamp_ms - REQUEST_LEAD_MS_MAX <= block_time_ms <= timestamp_ms + REQUEST_AGE_MS_MAX:
            return Reason.EXPIRED_REQUEST
        rid = request_id(public_key, payload)
        if rid in self._seen:
            return Reason.REPLAYED
        if len(self._seen) >= REQUESTS_REMEMBERED_MAX:
            return Reason.REQUESTS_WINDOW_FULL
        second = timestamp_ms // BUCKET_MS
        assert second >= self._floor, (second, self._floor)  # the timestamp check above guarantees it
        self._seen[rid] = timestamp_ms
        bucket = self._buckets.get(second)
        if bucket is None:
            self._buckets[second] = [rid]
        else:
            bucket.append(rid)
        return None

    # ------------------------------------------------------------ encoding

    def encode(self) -> bytes:
        entries = sorted((ts, rid) for rid, ts in self._seen.items())
        out = [_HEAD.pack(MAGIC, VERSION, len(entries)), _ENTRY.pack(self._floor, bytes(REQUEST_ID_BYTES))]
        out.extend(_ENTRY.pack(ts, rid) for ts, rid in entries)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> ReplayGuard:
        magic, version, count = _HEAD.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise ValueError(f"not a replay guard v{VERSION}")
        if count > REQUESTS_REMEMBERED_MAX or len(data) != _HEAD.size + _ENTRY.size * (count + 1):
            raise ValueError("replay guard: bad length")
        guard = cls()
        at = _HEAD.size
        guard._floor = _ENTRY.unpack_from(data, at)[0]
        for _ in range(count):
            at += _ENTRY.size
            ts, rid = _ENTRY.unpack_from(data, at)
            guard._seen[rid] = ts
            guard._buckets.setdefault(ts // BUCKET_MS, []).append(rid)
        return guard

    def check_invariants(self) -> None:
        assert len(self._seen) <= REQUESTS_REMEMBERED_MAX
        assert sum(len(b) for b in self._buckets.values()) == len(self._seen)
        for second, ids in self._buckets.items():
            assert second >= self._floor, (second, self._floor)
            for rid in ids:
                assert self._seen[rid] // BUCKET_MS == second


def rejected(cmd, reason: Reason) -> OrderRejected:
    """The event that refuses `cmd` whole, as the engine's own rejections
    name it (symbol, client order id and target order where it has them)."""
    cls = cmd.__class__
    if cls is PlaceOrder:
        return OrderRejected(cmd.account, cmd.symbol, cmd.client_order_id, 0, reason)
    if cls is CancelOrder or cls is AmendOrder:
        return OrderRejected(cmd.account, cmd.symbol, cmd.client_order_id, cmd.order_id, reason)
    if cls is CancelAll:
        return OrderRejected(cmd.account, cmd.symbol, None, 0, reason)
    return OrderRejected(cmd.account, None, None, 0, reason)  # deposit, withdrawal
