"""The typed port between the API and the replicated ledger.

The API (dex/api) reaches the replica only through a `LedgerPort`: it submits
commands and waits for their block, and it reads the engine's state through
typed queries taken under the replica's lock. Nothing above this module
touches the engine, the replica's lock or its internals; every read of the
engine's internal order tuples happens here, in `LedgerView`.

What it owns:
- `submit(commands, auth) -> Applied`: queue commands in the leader's block
  builder and wait for the block that holds them to be applied on this node.
  Expected failures are typed ledger exceptions (`LedgerUnavailable` and its
  subclasses, `Unrecordable`), never HTTP ones; the API maps them to codes.
- `wait_applied(height)`: wait, without a thread, until this node applied a
  height (a follower answering a forwarded request waits for its own apply).
- `wait_leader()`: the leader's id, waiting through an election.
- `status()`: Raft's view, the head, the builder's load, and this node's
  apply latency: for each block applied once the node had caught up, ms from
  the block's time (the leader's clock when it sealed it) to the apply here
  (this node's clock; across machines, their clock skew adds in).
- reads: `order`, `open_orders`, `balances`, `check_place` (the engine's
  pre-trade check, nothing placed), `depth`, `resting_counts`, and `view()`,
  a context manager holding the lock for several reads that must agree
  (the stream hub's per-block reads).

Threads: `on_block` runs on the Raft thread after every applied block (the
node registers it last, so every other listener has seen the block when a
waiter is released); everything else runs on the event loop, except that the
reads may run on any thread. Invariant: a waiter for height h is released
only once `replica.height >= h`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dex.core.commands import PlaceOrder
from dex.core.reasons import Reason
from dex.core.types import Side
from dex.engine import IMPLEMENTATION as ENGINE_IMPLEMENTATION
from dex.engine.book import KIND_SIDE_SHIFT, kind_side
from dex.ledger import builder as _builder
from dex.ledger.codec import Auth, CodecError

REQUEST_TIMEOUT_S = 5.0  # from queueing a command to its block applied here
LEADER_POLL_S = 0.02  # how often wait_leader looks again during an election
BLOCK_TIMES_KEPT_MAX = 4096  # recent heights whose block time submit can answer without the chain
APPLY_SAMPLES_MAX = 1000  # recent blocks whose seal-to-apply time status() reports
_BUY = Side.BUY  # read once: an enum member's lookup costs ~70 ns on CPython 3.11
assert LEADER_POLL_S < REQUEST_TIMEOUT_S and BLOCK_TIMES_KEPT_MAX >= 1 and APPLY_SAMPLES_MAX >= 1


# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class Applied:
    """A submitted request's block, applied on this node."""

    height: int
    block_hash: bytes
    time_ms: int  # the block's time (the leader's clock when it sealed it)
    results: list  # one list of events per submitted command, in order


class LedgerUnavailable(Exception):
    """The ledger cannot take or confirm the request now (a 503 at the API)."""


class NoQuorum(LedgerUnavailable):
    """This node leads but sees no majority: nothing can commit. Not queued."""


class NotLeader(LedgerUnavailable):
    """Leadership changed before the request was proposed: it was not executed."""


class Overloaded(LedgerUnavailable):
    """The request would wait longer than the admission budget (or too many
    commands are waiting): it was not queued (dex/ledger/admission.py).
    `retry_after_s`: when the queue ahead is expected to have drained;
    `excess_s`: how long the expected wait stays over the budget (0: refused
    by the count bound)."""

    def __init__(self, msg: str, retry_after_s: int = 1, excess_s: float = 0.0) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s
        self.excess_s = excess_s


class OutcomeUnknown(LedgerUnavailable):
    """The request was proposed (or may have been) but its block was not seen
    applied in time: it may or may not execute."""


class TooLarge(Exception):
    """The request needs more than a whole block: it can never be proposed
    (nothing queued; not retryable)."""


class Unrecordable(Exception):
    """A command cannot be encoded in a block (a field outside the codec's
    range). The API checks fields first; this is the backstop. Not queued."""


# ------------------------------------------------------------------ the port


class LedgerPort:
    def __init__(self, replica, block_builder=None, *, leader_wait_ms: int = 3000) -> None:
        """`replica`: the node's Replica (or, in tests, any object with
        `lock`, `engine`, `height`, `chain`). `block_builder`: the leader's
        BlockBuilder (None: a read-only port)."""
        assert leader_wait_ms >= 0
        self._replica = replica
        self._builder = block_builder
        self.leader_wait_s = leader_wait_ms / 1000
        self.loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list = []  # (height, seq, future), a heap by height
        self._waiters_lock = threading.Lock()
        self._waiter_seq = itertools.count()
        self._block_times: OrderedDict[int, int] = OrderedDict()  # height -> time_ms, recent only
        self.apply_ms_recent: deque[float] = deque(maxlen=APPLY_SAMPLES_MAX)  # block time -> applied here

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the waiters live on (at start-up)."""
        self.loop = loop

    # ----------------------------------------------------------- Raft side

    def on_block(self, header, block_hash, proposal, results) -> None:
        """After each applied block (Raft thread): remember its time and how
        long after its sealing it was applied here, release the waiters for
        heights up to it."""
        # A node replaying its log or catching up after a restart applies old
        # blocks: those say how long it was away, not how fast blocks reach it.
        if self._replica_ready():
            self.apply_ms_recent.append(round(time.time_ns() / 1e6 - header.time_ms, 1))
        with self._waiters_lock:
            self._block_times[header.height] = header.time_ms
            while len(self._block_times) > BLOCK_TIMES_KEPT_MAX:
                self._block_times.popitem(last=False)
            due = []
            while self._waiters and self._waiters[0][0] <= header.height:
                due.append(heapq.heappop(self._waiters)[2])
        if due and self.loop is not None:
            self.loop.call_soon_threadsafe(_release, due)

    def _replica_ready(self) -> bool:
        """PySyncObj's isReady: the node has applied up to the commit index a
        leader first told it (a stand-in replica without one is ready)."""
        is_ready = getattr(self._replica, "isReady", None)
        return True if is_ready is None else bool(is_ready())

    # --------------------------------------------------------------- Raft

    @property
    def node_id(self) -> str:
        return self._replica.node_id

    @property
    def leader_id(self) -> str | None:
        return self._replica.leader_id

    @property
    def has_quorum(self) -> bool:
        return bool(self._replica.hasQuorum)

    @property
    def height(self) -> int:
        return self._replica.height

    @property
    def chain(self):
        """The node's chain (dex.ledger.chain.Chain): headers and stored blocks."""
        return self._replica.chain

    def status(self) -> dict:
        """Raft's view, the applied head and the block builder's load."""
        r = self._replica
        raft = r.getStatus()
        with r.lock:
            head = r.applied
            head_hash = r.applied_hash
        b = self._builder
        return {
            "engine": ENGINE_IMPLEMENTATION,  # "compiled" or "pure" (dex.engine)
            "state": raft["state"],  # 0 follower, 1 candidate, 2 leader
            "term": raft["raft_term"],
            "leader": r.leader_id,
            "hasQuorum": bool(raft["has_quorum"]),
            "commitIndex": raft["commit_idx"],
            "lastApplied": raft["last_applied"],
            "head": head,
            "headHash": head_hash,
            "pendingCommands": b.pending_commands if b is not None else 0,
            "admittedCommands": b.admission.queued if b is not None else 0,  # queued or in flight
            "commitRatePerS": round(b.admission.rate_per_s() or 0.0, 1) if b is not None else 0.0,
            "shedRequests": b.shed_requests if b is not None else 0,
            "inflightBlocks": b.inflight_blocks if b is not None else 0,
            "commitMsRecent": list(b.commit_ms_recent) if b is not None else [],
            "applyMsRecent": list(self.apply_ms_recent),
            "blockWaitMsRecent": list(b.wait_ms_recent) if b is not None else [],
        }

    async def wait_leader(self) -> str | None:
        """The leader's id, waiting up to leader_wait_ms during an election
        (None: no leader, or this node leads without a quorum)."""
        deadline = time.monotonic() + self.leader_wait_s
        while True:
            leader = self._replica.leader_id
            if leader == self.node_id and not self._replica.hasQuorum:
                return None  # a leader that has not heard from a majority refuses at once (docs/CLUSTER.md)
            if leader is not None:
                return leader
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(LEADER_POLL_S)

    async def wait_applied(self, height: int, timeout_s: float) -> bool:
        """Wait, without a thread, until this node has applied `height`."""
        assert height >= 0 and timeout_s >= 0
        assert self.loop is not None, "bind_loop first"
        future = self.loop.create_future()
        with self._waiters_lock:
            if self._replica.height >= height:
                return True
            heapq.heappush(self._waiters, (height, next(self._waiter_seq), future))
        try:
            await within(future, timeout_s)
            return True
        except asyncio.TimeoutError:
            return self._replica.height >= height

    def request_used(self, public_key: bytes, payload: bytes) -> bool:
        """True when a committed block already carried this signed request
        (the replay guard, dex/ledger/replay.py): the API refuses it early."""
        return self._replica.guard.used(public_key, payload)

    def transfer(self, account: int, transfer_id: str):
        """The remembered outcome (dex.ledger.replay.Transfer) of the
        account's deposit or withdrawal under this client transfer id, or
        None."""
        with self._replica.lock:
            return self._replica.guard.transfers.get(account, transfer_id)

    def admit(self, commands: int = 1) -> None:
        """Raise Overloaded when `commands` more would be shed now (nothing is
        queued). A route asks before it verifies a signature, so shedding a
        flood costs little; `submit` decides again with the exact count. A
        follower's builder holds nothing, so it admits (and forwards)."""
        if self._builder is None:
            return
        try:
            self._builder.check_admission(commands)
        except _builder.Overloaded as e:
            raise _refusal(e) from e

    async def submit(self, commands: list, auth: Auth | None) -> Applied:
        """Replicate `commands` in one block (this node must lead) and return
        once the block is applied here. Raises NoQuorum, Overloaded,
        TooLarge, Unrecordable (nothing queued), NotLeader (not executed) or
        OutcomeUnknown (may have executed)."""
        assert commands and self._builder is not None
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(height, block_hash, results, error):
            loop.call_soon_threadsafe(_settle, future, (height, block_hash, results), error)

        if not self._replica.hasQuorum:
            raise NoQuorum("the leader has lost its quorum")
        try:
            self._builder.submit(commands, auth, done)
        except (_builder.Overloaded, _builder.TooLarge, CodecError) as e:
            raise _refusal(e) from e
        return await self._applied(future, len(commands))

    def submit_many(self, requests: list) -> list:
        """Replicate several requests [(commands, auth)] at once (a forwarded
        frame: queued in the block builder together, so they share a block
        when they fit): one awaitable per request, giving its Applied or
        raising what `submit` raises. A request refused at once (admission,
        no quorum) gets a future already done, so the caller can answer it
        without waiting for the others' blocks."""
        assert requests and self._builder is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        if not self._replica.hasQuorum:
            return [_refused_now(loop, NoQuorum("the leader has lost its quorum")) for _ in requests]

        def done_for(future):
            return lambda height, block_hash, results, error: loop.call_soon_threadsafe(_settle, future, (height, block_hash, results), error)

        errors = self._builder.submit_many([(commands, auth, done_for(f)) for (commands, auth), f in zip(requests, futures)])
        return [
            self._applied(f, len(commands)) if error is None else _refused_now(loop, _refusal(error))
            for (commands, _), f, error in zip(requests, futures, errors)
        ]

    async def _applied(self, future: asyncio.Future, commands_count: int) -> Applied:
        try:
            height, block_hash, results = await within(future, REQUEST_TIMEOUT_S)
        except _builder.NotLeader as e:
            raise NotLeader(str(e)) from e
        except (_builder.Unknown, asyncio.TimeoutError) as e:
            raise OutcomeUnknown(str(e) or "timeout waiting for the block") from e
        assert len(results) == commands_count, (len(results), commands_count)
        return Applied(height, block_hash, self._block_time_ms(height), results)

    def _block_time_ms(self, height: int) -> int:
        with self._waiters_lock:
            time_ms = self._block_times.get(height)
        if time_ms is None:  # older than the recent window (not expected on the ack path)
            header = self._replica.chain.header(height)
            time_ms = header.time_ms if header is not None else 0
        return time_ms

    # --------------------------------------------------------------- reads

    @contextmanager
    def view(self) -> Iterator[LedgerView]:
        """Several reads that see one state: the replica's lock is held
        while the `with` block runs (keep it short: blocks wait for it)."""
        with self._replica.lock:
            yield LedgerView(self._replica.engine, self._replica.height)

    def order(self, account: int, symbol: str, order_id: int = 0, client_order_id: str | None = None):
        """The engine's view of an account's order (by id, else by client id), or None."""
        with self.view() as v:
            return v.order(account, symbol, order_id, client_order_id)

    def open_orders(self, account: int, symbol: str | None = None) -> list:
        with self.view() as v:
            return v.open_orders(account, symbol)

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        with self.view() as v:
            return v.balances(account)

    def check_place(self, cmd: PlaceOrder) -> Reason | None:
        """The reason the engine would refuse `cmd` now, or None: every check
        a new order passes, nothing placed."""
        with self.view() as v:
            return v.check_place(cmd)

    def depth(self, symbol: str, limit: int) -> tuple[list, list, int]:
        """(bids, asks, applied height): the best `limit` levels a side."""
        with self.view() as v:
            bids, asks = v.depth(symbol, limit)
            return bids, asks, v.height

    def resting_counts(self, symbols: list[str]) -> dict[str, int]:
        """symbol -> orders resting in its book."""
        with self.view() as v:
            return v.resting_counts(symbols)


class LedgerView:
    """Reads of the engine while the replica's lock is held (see
    `LedgerPort.view`). Prices in ticks, quantities in lots, amounts in units."""

    __slots__ = ("_engine", "height")

    def __init__(self, engine, height: int) -> None:
        self._engine = engine
        self.height = height

    def order(self, account: int, symbol: str, order_id: int = 0, client_order_id: str | None = None):
        return self._engine.order(account, symbol, order_id, client_order_id)

    def open_orders(self, account: int, symbol: str | None = None) -> list:
        return self._engine.open_orders(account, symbol)

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        return self._engine.balances(account)

    def check_place(self, cmd: PlaceOrder) -> Reason | None:
        engine = self._engine
        book = engine.books.get(cmd.symbol)
        if book is None:
            return Reason.UNKNOWN_SYMBOL
        # The engine's own check (private: the one place outside the engine
        # that calls it, so a new engine has one caller to satisfy).
        return engine._check_place(cmd, book, engine.accounts.get(cmd.account))

    def depth(self, symbol: str, limit: int) -> tuple[list, list]:
        return self._engine.depth(symbol, limit)

    def level_totals(self, symbol: str, prices) -> tuple[list, list]:
        """The current total of each (is bid, price) level, 0 for an empty
        one: (bids best first, asks best first), as (price, lots)."""
        book = self._engine.books[symbol]
        bids, asks = [], []
        for is_bid, price in prices:
            level = (book.bids if is_bid else book.asks).get(price)
            (bids if is_bid else asks).append((price, 0 if level is None else level.total))
        bids.sort(reverse=True)
        asks.sort()
        return bids, asks

    def resting_orders(self, symbol: str) -> Iterator[tuple[int, bool, int]]:
        """(order id, is bid, price) of every order resting in the book."""
        for o in self._engine.live_orders(symbol):
            yield o.id, kind_side(o.kind) == _BUY, o.price

    def resting_order(self, account: int, order_id: int) -> tuple[str, bool, int] | None:
        """(symbol, is bid, price) of an open order of `account`, or None."""
        acct = self._engine.accounts.get(account)
        order = None if acct is None else acct.open.get(order_id)
        if order is None:
            return None
        # By attribute: `order[O_PRICE]` builds the order's 10-field tuple
        # (boxing its ints) for each field read. The stream hub asks this
        # for every order a block may have left resting, on every node.
        return self._engine.book_list[order.market].symbol, (order.kind >> KIND_SIDE_SHIFT) == _BUY, order.price

    def resting_counts(self, symbols: list[str]) -> dict[str, int]:
        books = self._engine.books
        return {s: books[s].order_count for s in symbols if s in books}


def _refusal(error: Exception) -> Exception:
    """The ledger exception for the block builder's refusal of a request."""
    if isinstance(error, _builder.Overloaded):
        return Overloaded(str(error), error.retry_after_s, error.excess_s)
    if isinstance(error, _builder.TooLarge):
        return TooLarge(str(error))
    assert isinstance(error, CodecError), error
    return Unrecordable(str(error))


def _refused_now(loop, error: Exception) -> asyncio.Future:
    """An awaitable that raises `error`, already done (`.done()` is True)."""
    future = loop.create_future()
    future.set_exception(error)
    return future


async def within(future: asyncio.Future, timeout_s: float):
    """`await asyncio.wait_for(future, timeout_s)` for a future nobody else
    awaits: on timeout it fails with asyncio.TimeoutError instead of being
    cancelled, and no second future, task or callback is made (wait_for's
    cost, per request, was a few % of a node's CPU at saturation). Whoever
    settles the future checks done() first."""
    timer = asyncio.get_running_loop().call_later(timeout_s, _time_out, future)
    try:
        return await future
    finally:
        timer.cancel()


def _time_out(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _release(futures: list) -> None:
    for future in futures:
        if not future.done():
            future.set_result(True)


def _settle(future: asyncio.Future, value, error) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
