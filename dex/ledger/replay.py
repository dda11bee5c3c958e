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

Client transfer ids (`TransferIds`, the guard's `transfers`): a deposit or a
withdrawal may carry the client's id for it (clientTransferId). The first
transfer an account makes under an id executes; the state remembers its
outcome, and a later command with the same (account, id) is rejected whole
with DUPLICATE_TRANSFER (the API answers it with the remembered outcome, as
an order's client id is answered). A transfer the engine rejected is not
remembered, so it may be sent again under the same id. Remembered: the last
TRANSFER_IDS_PER_ACCOUNT_MAX transfers of each account, and at most
TRANSFER_IDS_MAX in all (the oldest, cluster-wide, forgotten first). Encoded
after the requests (guard version 2; a version 1 guard decodes with none).
"""

from __future__ import annotations

import struct

from dex.auth import RECV_WINDOW_MS_MAX
from collections import deque

from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw
from dex.core.events import BalanceChanged, OrderRejected
from dex.core.reasons import Reason
from dex.engine import sha256

REQUEST_ID_BYTES = 16
BLOCK_TIME_SLACK_MS = 30_000  # queueing before a block + leader vs node clock
REQUEST_AGE_MS_MAX = RECV_WINDOW_MS_MAX + BLOCK_TIME_SLACK_MS
REQUEST_LEAD_MS_MAX = 1_000 + BLOCK_TIME_SLACK_MS  # the API allows 1 s ahead
REQUESTS_REMEMBERED_MAX = 1_000_000  # ~130 MB at the bound; ~11,000 signed requests/s for 90 s
BUCKET_MS = 1_000
assert REQUEST_AGE_MS_MAX > RECV_WINDOW_MS_MAX and REQUEST_LEAD_MS_MAX > 1_000
assert REQUEST_AGE_MS_MAX % BUCKET_MS == 0

TRANSFER_IDS_PER_ACCOUNT_MAX = 1_000  # as an account's order dedup window, for transfers
TRANSFER_IDS_MAX = 1_000_000  # ~250 MB at the bound
assert TRANSFER_IDS_PER_ACCOUNT_MAX <= TRANSFER_IDS_MAX

MAGIC = b"DEXR"
VERSION = 2  # 2: the transfer ids after the requests; version 1 (without them) still decodes
_HEAD = struct.Struct("<4sHI")  # magic, version, count
_ENTRY = struct.Struct(f"<Q{REQUEST_ID_BYTES}s")  # timestamp_ms, id
_TRANSFERS_HEAD = struct.Struct("<I")  # count
_TRANSFER = struct.Struct("<QBQQQQ")  # account, kind (0 deposit, 1 withdrawal), amount, free after, height, time_ms (+asset, id)
DEPOSIT, WITHDRAWAL = 0, 1


def request_id(public_key: bytes, payload: bytes) -> bytes:
    """The name of a signed request (see the module docstring): the first
    REQUEST_ID_BYTES of SHA-256(public key + payload), through the engine's
    C SHA-256 where it is built (every node names every request of every
    block, and the API each request it receives)."""
    return sha256(public_key + payload)[:REQUEST_ID_BYTES]


class Transfer(tuple):
    """What a transfer did, remembered under its client id: (kind, asset,
    amount units, free units after it, block height, block time_ms)."""

    __slots__ = ()

    kind = property(lambda self: self[0])
    asset = property(lambda self: self[1])
    amount = property(lambda self: self[2])
    free = property(lambda self: self[3])
    height = property(lambda self: self[4])
    time_ms = property(lambda self: self[5])
    type_name = property(lambda self: "DEPOSIT" if self[0] == DEPOSIT else "WITHDRAW")  # as the API names it


class TransferIds:
    """(account, client transfer id) -> Transfer, bounded (see the module
    docstring). Insertion order is the only order: per account a dict in the
    order the transfers executed, and one queue across accounts (entries an
    account's own bound already dropped are skipped when they reach its front,
    so eviction depends only on the live entries, which encode in order)."""

    def __init__(self) -> None:
        self._by_account: dict[int, dict[str, Transfer]] = {}
        self._order: deque = deque()  # (account, id, Transfer), oldest first; may hold dropped entries
        self._count = 0  # live entries

    def __len__(self) -> int:
        return self._count

    def get(self, account: int, transfer_id: str) -> Transfer | None:
        ids = self._by_account.get(account)
        return None if ids is None else ids.get(transfer_id)

    def apply(self, engine, cmd, time_ms: int, height: int) -> list:
        """Apply a Deposit or Withdraw that carries a transfer id: once per
        (account, id); a repeat is rejected whole, changing nothing."""
        account, tid = cmd.account, cmd.transfer_id
        if self.get(account, tid) is not None:
            return [OrderRejected(account, None, tid, 0, Reason.DUPLICATE_TRANSFER)]
        events = engine.apply(cmd, time_ms)
        if events and events[0].__class__ is BalanceChanged:
            kind = DEPOSIT if cmd.__class__ is Deposit else WITHDRAWAL
            self._remember(account, tid, Transfer((kind, cmd.asset, cmd.amount, events[0].free, height, time_ms)))
        return events

    def _remember(self, account: int, tid: str, transfer: Transfer) -> None:
        ids = self._by_account.get(account)
        if ids is None:
            ids = self._by_account[account] = {}
        ids[tid] = transfer
        self._order.append((account, tid, transfer))
        self._count += 1
        if len(ids) > TRANSFER_IDS_PER_ACCOUNT_MAX:
            del ids[next(iter(ids))]  # the account's oldest; its queue entry is skipped later
            self._count -= 1
        while self._count > TRANSFER_IDS_MAX:
            old_account, old_tid, old = self._order.popleft()
            old_ids = self._by_account[old_account] if old_account in self._by_account else {}
            if old_ids.get(old_tid) is old:
                del old_ids[old_tid]
                self._count -= 1
                if not old_ids:
                    del self._by_account[old_account]
        if len(self._order) > 2 * self._count + 1024:  # drop the skipped entries
            self._order = deque(e for e in self._order if self.get(e[0], e[1]) is e[2])

    def entries(self) -> list[tuple[int, str, Transfer]]:
        """The live entries, oldest first."""
        return [e for e in self._order if self.get(e[0], e[1]) is e[2]]

    def encode(self) -> bytes:
        entries = self.entries()
        out = [_TRANSFERS_HEAD.pack(len(entries))]
        for account, tid, t in entries:
            out.append(_TRANSFER.pack(account, t.kind, t.amount, t.free, t.height, t.time_ms))
            out.append(_str(t.asset))
            out.append(_str(tid))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes, at: int) -> tuple[TransferIds, int]:
        (count,) = _TRANSFERS_HEAD.unpack_from(data, at)
        if count > TRANSFER_IDS_MAX:
            raise ValueError("transfer ids: too many")
        at += _TRANSFERS_HEAD.size
        ids = cls()
        for _ in range(count):
            account, kind, amount, free, height, time_ms = _TRANSFER.unpack_from(data, at)
            asset, at = _get_str(data, at + _TRANSFER.size)
            tid, at = _get_str(data, at)
            if kind not in (DEPOSIT, WITHDRAWAL):
                raise ValueError("transfer ids: bad kind")
            ids._remember(account, tid, Transfer((kind, asset, amount, free, height, time_ms)))
        return ids, at

    def check_invariants(self) -> None:
        live = self.entries()
        assert len(live) == self._count == sum(len(ids) for ids in self._by_account.values())
        assert self._count <= TRANSFER_IDS_MAX
        for ids in self._by_account.values():
            assert 0 < len(ids) <= TRANSFER_IDS_PER_ACCOUNT_MAX


def _str(text: str) -> bytes:
    raw = text.encode("ascii")
    assert 0 < len(raw) < 256
    return bytes((len(raw),)) + raw


def _get_str(data: bytes, at: int) -> tuple[str, int]:
    n = data[at]
    end = at + 1 + n
    if n == 0 or end > len(data):
        raise ValueError("transfer ids: bad string")
    return data[at + 1 : end].decode("ascii"), end


class ReplayGuard:
    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}  # id -> timestamp_ms
        self._buckets: dict[int, list[bytes]] = {}  # timestamp second -> ids
        self._floor = 0  # every bucket below this second has been dropped
        self.transfers = TransferIds()  # client transfer ids: deposits and withdrawals executed once
        # False only in a benchmark that measures what the check costs (see
        # dex.node NO_REPLAY_CHECK_ENV, loopback clusters only): every request
        # is admitted and none remembered. Every node of a cluster must agree.
        self.checking = True

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, rid: bytes) -> bool:
        return rid in self._seen

    def used(self, public_key: bytes, payload: bytes) -> bool:
        """True when a block already carried this request (a read for the
        API's early refusal; the block's own check is `admit`)."""
        return self.checking and request_id(public_key, payload) in self._seen

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
        if not self.checking:
            return None
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
        out.append(self.transfers.encode())
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> ReplayGuard:
        """A guard from `encode`'s bytes, of this version or version 1 (no
        transfer ids)."""
        magic, version, count = _HEAD.unpack_from(data, 0)
        if magic != MAGIC or version not in (1, VERSION):
            raise ValueError(f"not a replay guard v1..{VERSION}")
        requests_end = _HEAD.size + _ENTRY.size * (count + 1)
        if count > REQUESTS_REMEMBERED_MAX or len(data) < requests_end or (version == 1 and len(data) != requests_end):
            raise ValueError("replay guard: bad length")
        guard = cls()
        at = _HEAD.size
        guard._floor = _ENTRY.unpack_from(data, at)[0]
        for _ in range(count):
            at += _ENTRY.size
            ts, rid = _ENTRY.unpack_from(data, at)
            guard._seen[rid] = ts
            guard._buckets.setdefault(ts // BUCKET_MS, []).append(rid)
        if version >= 2:
            try:
                guard.transfers, at = TransferIds.decode(data, requests_end)
            except (struct.error, IndexError, UnicodeDecodeError) as e:
                raise ValueError(f"replay guard: bad transfer ids ({e})") from None
            if at != len(data):
                raise ValueError("replay guard: bad length")
        return guard

    def check_invariants(self) -> None:
        assert len(self._seen) <= REQUESTS_REMEMBERED_MAX
        assert sum(len(b) for b in self._buckets.values()) == len(self._seen)
        for second, ids in self._buckets.items():
            assert second >= self._floor, (second, self._floor)
            for rid in ids:
                assert self._seen[rid] // BUCKET_MS == second
        self.transfers.check_invariants()


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
