"""The leader's block builder: gathers commands and proposes blocks.

Requests (one or more commands that must share a block, with the signature
that authorized them) queue here on the leader. A block is sealed at once
when no earlier block is still in flight (group commit: an idle cluster adds
no batching delay); otherwise when the oldest waiting request has waited
`block_interval_ms`, or when the next request would take it past
`block_commands_max` commands or `block_bytes_max` bytes. The builder stamps the block time from the leader's
clock; nothing else in a block depends on any node's clock.

Admission (dex/ledger/admission.py): a request is refused at once with a
typed `Overloaded` (answered 503 with Retry-After) when the delay it can
expect (commands queued or in flight / the measured commit rate) is over
`admission_delay_ms`, or when `pending_commands_max` commands are already
queued or in flight; so an overloaded cluster sheds the excess and keeps
the latency of what it accepts. At most `inflight_blocks_max` blocks
are proposed but not yet applied. A proposal whose outcome Raft never reports
(its leader lost office before committing it) is failed after
`INFLIGHT_TIMEOUT_S` with an unknown outcome: the client retries with the same
client order id, and the replicated dedup window makes that safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pysyncobj import FAIL_REASON

from dex.config import ClusterConfig
from dex.ledger.admission import FLOOR_COMMANDS_MAX, Admission
from dex.ledger.codec import (
    COMMAND_OVERHEAD_BYTES,
    NO_AUTH,
    PROPOSAL_OVERHEAD_BYTES,
    Auth,
    assemble_proposal,
    compress_proposal,
    encode_auth,
    encode_command,
)

log = logging.getLogger("dex.ledger.builder")

INFLIGHT_TIMEOUT_S = 10.0
COMMIT_SAMPLES_MAX = 1000


class NotLeader(Exception):
    """This node stopped leading before the request was proposed."""


class Overloaded(Exception):
    """The request would wait too long (or too many commands are waiting):
    it was not queued. `retry_after_s`: when the queue ahead will have drained;
    `excess_s`: how long the expected wait stays over the budget (0 when the
    count bound refused it)."""

    def __init__(self, msg: str, retry_after_s: int = 1, excess_s: float = 0.0) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s
        self.excess_s = excess_s


class TooLarge(Exception):
    """One request needs more than a whole block: it can never be proposed."""


class Unknown(Exception):
    """The block's fate is unknown (leader change); retry with the same client order id."""


@dataclass(slots=True, kw_only=True)
class Request:
    raw: list[bytes]  # encoded commands
    auth: bytes | None  # encoded Auth
    done: Callable  # done(height, block_hash, results | None, error | None)
    size: int = 0
    arrived_s: float = field(default_factory=time.monotonic)


class BlockBuilder:
    def __init__(self, replica, cfg: ClusterConfig, *, clock_ms: Callable[[], int] | None = None) -> None:
        self.replica = replica
        self.interval_s = cfg.block_interval_ms / 1000
        self.commands_max = cfg.block_commands_max
        self.bytes_max = cfg.block_bytes_max
        self.inflight_max = cfg.inflight_blocks_max
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._cond = threading.Condition()
        self._pending: deque[Request] = deque()
        self._pending_commands = 0
        self._inflight: dict[int, tuple[float, list[Request]]] = {}
        self.admission = Admission(
            delay_budget_ms=cfg.admission_delay_ms, floor_commands=min(cfg.block_commands_max, FLOOR_COMMANDS_MAX),
            queued_max=max(cfg.pending_commands_max, cfg.block_commands_max),
        )
        self.shed_requests = 0  # refused by admission since start
        self._next_proposal = 0
        self._stopped = False
        self.blocks_proposed = 0
        self.commit_ms_recent: deque[float] = deque(maxlen=COMMIT_SAMPLES_MAX)  # propose -> applied here
        self.wait_ms_recent: deque[float] = deque(maxlen=COMMIT_SAMPLES_MAX)  # arrival -> propose
        self._thread = threading.Thread(target=self._run, name="block-builder", daemon=True)
        self._thread.start()

    # --------------------------------------------------------------- intake

    def submit(self, commands: list, auth: Auth | None, done: Callable) -> None:
        """Queue commands that must go in one block, in order. `done` is
        called from another thread exactly once."""
        request = self._request(commands, auth, done)
        with self._cond:
            self._admit(len(request.raw))
            self.admission.admitted(time.monotonic(), len(request.raw))
            was_idle = not self._pending
            self._pending.append(request)
            self._pending_commands += len(request.raw)
            self._wake_if_due(was_idle)

    def submit_many(self, requests: list) -> list[Exception | None]:
        """Queue several requests [(commands, auth, done)] at once, in order
        (a forwarded frame): one lock, one wake-up. For each, None (queued:
        `done` will be called once) or the error that refused it (TooLarge,
        Overloaded, or the codec's error; `done` is never called)."""
        errors: list[Exception | None] = [None] * len(requests)
        built: list[tuple[int, Request]] = []
        for i, (commands, auth, done) in enumerate(requests):
            try:
                built.append((i, self._request(commands, auth, done)))
            except Exception as e:  # TooLarge or a CodecError: this request only
                errors[i] = e
        with self._cond:
            was_idle = not self._pending
            for i, request in built:
                try:
                    self._admit(len(request.raw))
                except Overloaded as e:
                    errors[i] = e
                    continue
                self.admission.admitted(time.monotonic(), len(request.raw))
                self._pending.append(request)
                self._pending_commands += len(request.raw)
            self._wake_if_due(was_idle)
        return errors

    def _wake_if_due(self, was_idle: bool) -> None:
        """After queueing (lock held): wake the builder thread when nothing
        was pending before (`was_idle`) or a block's worth now is (`_full`).
        Otherwise it is gathering a block and wakes on its own at the
        interval's end, or on a commit; waking it for every request cost a
        thread switch each (~5% of the leader's CPU at saturation)."""
        if was_idle or self._full():
            self._cond.notify()

    def _request(self, commands: list, auth: Auth | None, done: Callable) -> Request:
        """The request encoded for a block, or TooLarge (or a CodecError)."""
        raw = [encode_command(c) for c in commands]
        auth_raw = None if auth is None else encode_auth(auth)
        size = sum(len(r) + COMMAND_OVERHEAD_BYTES for r in raw) + (0 if auth_raw is None else len(auth_raw))
        if len(raw) > self.commands_max or size + PROPOSAL_OVERHEAD_BYTES > self.bytes_max:
            raise TooLarge(
                f"the request needs {len(raw)} commands and {size + PROPOSAL_OVERHEAD_BYTES} bytes of block; "
                f"a block holds {self.commands_max} commands and {self.bytes_max} bytes"
            )
        return Request(raw=raw, auth=auth_raw, done=done, size=size)

    def check_admission(self, commands: int = 1) -> None:
        """Overloaded if `commands` more would be refused now (nothing is
        queued): the API asks before it spends a signature check on a
        request that would be shed."""
        with self._cond:
            self._admit(commands)

    def _admit(self, commands: int) -> None:
        why = self.admission.refusal(commands)
        if why is not None:
            self.shed_requests += 1
            raise Overloaded(why, self.admission.retry_after_s(), self.admission.excess_s())

    @property
    def pending_commands(self) -> int:
        return self._pending_commands

    @property
    def inflight_blocks(self) -> int:
        return len(self._inflight)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=2)

    # ---------------------------------------------------------------- loop

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                if batch is None:
                    return
            if batch:
                self._propose(batch)

    def _next_batch(self) -> list[Request] | None:
        """Wait for a block's worth of requests (called with the lock held)."""
        while not self._stopped:
            self._expire_inflight()
            if not self._pending:
                self._cond.wait(0.5)
                continue
            # Group commit: with nothing in flight, propose at once; while
            # blocks are in flight, gather for up to the interval.
            wait_s = self._pending[0].arrived_s + self.interval_s - time.monotonic()
            if wait_s > 0 and self._inflight and not self._full():
                self._cond.wait(wait_s)
                continue
            if len(self._inflight) >= self.inflight_max:
                self._cond.wait(0.05)
                continue
            if not self.replica.is_leader:
                self._fail_pending(NotLeader("not the leader"))
                continue
            return self._take()
        self._fail_pending(NotLeader("node stopping"))
        return None

    def _full(self) -> bool:
        count = 0
        size = PROPOSAL_OVERHEAD_BYTES
        for r in self._pending:
            count += len(r.raw)
            size += r.size
            if count >= self.commands_max or size >= self.bytes_max:
                return True
        return False

    def _take(self) -> list[Request]:
        batch: list[Request] = []
        count = 0
        size = PROPOSAL_OVERHEAD_BYTES
        while self._pending:
            r = self._pending[0]
            if batch and (count + len(r.raw) > self.commands_max or size + r.size > self.bytes_max):
                break
            batch.append(self._pending.popleft())
            count += len(r.raw)
            size += r.size
            self._pending_commands -= len(r.raw)
        return batch

    def _fail_pending(self, error: Exception) -> None:
        while self._pending:
            r = self._pending.popleft()
            self._pending_commands -= len(r.raw)
            self.admission.finished(time.monotonic(), len(r.raw), committed=False)
            _call(r.done, None, None, None, error)

    def _expire_inflight(self) -> None:
        now = time.monotonic()
        for key in [k for k, (t, _) in self._inflight.items() if now - t > INFLIGHT_TIMEOUT_S]:
            _, batch = self._inflight.pop(key)
            for r in batch:
                self.admission.finished(now, len(r.raw), committed=False)
                _call(r.done, None, None, None, Unknown("block outcome unknown"))

    def _propose(self, batch: list[Request]) -> None:
        auths: list[bytes] = []
        commands: list[tuple[int, bytes]] = []
        for r in batch:
            index = NO_AUTH
            if r.auth is not None:
                index = len(auths)
                auths.append(r.auth)
            commands.extend((index, raw) for raw in r.raw)
        proposal = compress_proposal(assemble_proposal(
            leader=self.replica.node_id,
            term=self.replica.raftCurrentTerm,
            time_ms=self.clock_ms(),
            auths=auths,
            commands=commands,
        ))
        now = time.monotonic()
        self.wait_ms_recent.append((now - batch[0].arrived_s) * 1000)
        with self._cond:
            key = self._next_proposal
            self._next_proposal += 1
            self._inflight[key] = (now, batch)
        self.blocks_proposed += 1
        self.replica.apply_block(proposal, callback=lambda result, error: self._on_applied(key, result, error))

    def _on_applied(self, key: int, result, error) -> None:
        committed = error == FAIL_REASON.SUCCESS and result is not None
        now = time.monotonic()
        with self._cond:
            entry = self._inflight.pop(key, None)
            if entry is not None:
                self.admission.finished(now, sum(len(r.raw) for r in entry[1]), committed=committed)
            # Wake the builder only if this commit lets it propose sooner:
            # nothing left in flight (it proposes at once), or a slot freed
            # under inflight_max. Otherwise it is gathering and wakes at the
            # interval's end.
            if self._pending and (not self._inflight or len(self._inflight) == self.inflight_max - 1):
                self._cond.notify()
        if entry is None:
            return  # already expired
        self.commit_ms_recent.append((now - entry[0]) * 1000)
        batch = entry[1]
        if not committed:
            failure = NotLeader(f"not committed ({error})") if error in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER, FAIL_REASON.QUEUE_FULL) else Unknown(f"not committed ({error})")
            for r in batch:
                _call(r.done, None, None, None, failure)
            return
        height, block_hash, results = result
        at = 0
        for r in batch:
            n = len(r.raw)
            _call(r.done, height, block_hash, results[at : at + n], None)
            at += n


def _call(done: Callable, *args) -> None:
    try:
        done(*args)
    except Exception:
        log.exception("request callback failed")
