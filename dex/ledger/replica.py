"""The Raft state machine: one PySyncObj member per node, applying blocks.

The only replicated method is `apply_block(proposal_bytes)`. The leader's
`BlockBuilder` gathers commands into a proposal and proposes it; Raft commits
it once a majority of nodes hold it; then every node, in log order, decodes
it, applies each command to its own engine at the block's time, and appends a
block to its own chain. The header (height, parent, roots, state hash) is
computed by each node for itself; equal headers on every node are the proof
that the replicas agree.

Block time is the leader's clock when it sealed the proposal, raised to the
parent block's time if the clock went back (a new leader's clock may lag):
a function of the chain alone, so every node computes the same value.

Persistence, all in the node's data directory:
  raft.journal   the Raft log (dex/ledger/journal.py: checksummed records,
                 fsynced before a node acknowledges them; raft.journal.term
                 the durable term and vote)
  raft.dump      PySyncObj's full dump at log compaction, in *our* format (see
                 `_serialize`): the engine snapshot, the replay guard
                 (dex/ledger/replay.py) and the applied head, never
                 a pickle of live objects. A leader sends this file to a
                 follower too far behind to catch up from the log.
  blocks.dat     the chain (dex.ledger.chain), which outlives log compaction.

Threads: PySyncObj's own thread applies blocks and runs elections; API
threads read the engine under `lock`, which `apply_block` holds while it
mutates.

Fail-stop. Applying a block is all or nothing: once the engine has been
touched, any failure (the chain write failing on a full disk, a replayed
journal entry that disagrees with blocks.dat, a bug) logs one CRITICAL line
naming the height, the cause and what to do, and ends the process with
EXIT_APPLY_FAILED. It never returns into PySyncObj, which would retry the same
log entry every tick and apply its commands to the engine again each time
(a silent divergence). A restart recovers from the dump, the journal and the
chain. The same holds for a data directory too full for the next journal
entry (checked before each one: PySyncObj's journal is an mmap, and a write
into a page the disk cannot back kills the process with SIGBUS and no log
line) and for a chain file damaged in the middle. See docs/CLUSTER.md.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from pysyncobj import SyncObj, SyncObjConf, replicated

from dex.config import ClusterConfig
from dex.engine import Engine
from dex.ledger.chain import Chain, ChainError
from dex.ledger.raft_fixes import install as install_raft_fixes, leader_hears_majority, raft_correct_journals
from dex.ledger.codec import (
    GENESIS_PARENT,
    BlockHeader,
    CodecError,
    Proposal,
    decode_header,
    decode_proposal,
)
from dex.ledger.journal import DexJournal, JournalCorrupt, install_sync_before_send
from dex.ledger.replay import ReplayGuard
from dex.ledger.state import apply_proposal
from dex.ledger.transport import RaftTransport, pickle_entries_natively

log = logging.getLogger("dex.ledger.replica")

DUMP_MAGIC = b"DEXD"
DUMP_VERSION = 2  # 2: the replay guard after the header; version 1 (without it) still loads
_DUMP_HEAD = struct.Struct("<4sHQI")  # magic, version, engine snapshot length, header length
_DUMP_GUARD = struct.Struct("<Q")  # replay guard length (version 2)
_ENTRY = struct.Struct("<IQQ")  # command length, index, term

# Raft timing, tuned for 4 nodes on 2 shared cores (see docs/CLUSTER.md).
RAFT_MIN_TIMEOUT_S = 0.4
RAFT_MAX_TIMEOUT_S = 0.8
APPEND_ENTRIES_PERIOD_S = 0.05
CONNECTION_RETRY_S = 0.5
LOG_COMPACTION_ENTRIES_MIN = 20_000
LOG_COMPACTION_TIME_MIN_S = 600
# A leader that has not heard from a majority for this long steps down
# (PySyncObj's default is 30 s): by then the majority's own election timers
# have run out, so it may already have a new leader. Until it steps down it
# reports no quorum and refuses requests (hasQuorum below).
LEADER_FALLBACK_TIMEOUT_S = RAFT_MAX_TIMEOUT_S
assert APPEND_ENTRIES_PERIOD_S * 4 <= RAFT_MIN_TIMEOUT_S < RAFT_MAX_TIMEOUT_S
assert RAFT_MIN_TIMEOUT_S <= LEADER_FALLBACK_TIMEOUT_S <= RAFT_MAX_TIMEOUT_S


def raft_timing() -> dict:
    """The timing part of SyncObjConf (shared with the tests that tick PySyncObj by hand)."""
    return {
        "raftMinTimeout": RAFT_MIN_TIMEOUT_S,
        "raftMaxTimeout": RAFT_MAX_TIMEOUT_S,
        "appendEntriesPeriod": APPEND_ENTRIES_PERIOD_S,
        "leaderFallbackTimeout": LEADER_FALLBACK_TIMEOUT_S,
    }

# Exit codes of a node that stops itself rather than run on untrustworthy
# state; each names what an operator must look at (docs/CLUSTER.md).
EXIT_DUMP_UNLOADABLE = 70  # raft.dump cannot be loaded
EXIT_APPLY_FAILED = 71  # a committed block failed after the engine was touched
EXIT_CHAIN_DAMAGED = 72  # blocks.dat is damaged before its tail
EXIT_DISK_FULL = 73  # no room for the next journal entry
EXIT_JOURNAL_DAMAGED = 74  # raft.journal (or its term file) is damaged before its tail
# Free space the data directory must keep beyond a journal entry: blocks.dat
# and the dump share it, and PySyncObj's journal grows by doubling its mmap.
DISK_FREE_BYTES_MIN = 4 * 1024 * 1024
assert len({EXIT_DUMP_UNLOADABLE, EXIT_APPLY_FAILED, EXIT_CHAIN_DAMAGED, EXIT_DISK_FULL, EXIT_JOURNAL_DAMAGED}) == 5
assert DISK_FREE_BYTES_MIN > 64 * 1024  # above one append batch of entries


def stop_process(code: int, message: str, *args) -> None:
    """Log one CRITICAL line and end the process at once with `code`.

    os._exit, not sys.exit: this runs on PySyncObj's thread, which catches
    every exception and retries. Never returns (tests replace `_exit`)."""
    log.critical(message + " [exit %d]", *args, code)
    logging.shutdown()
    _exit(code)


_exit = os._exit

BlockListener = Callable[[BlockHeader, bytes, Proposal, list], None]


class Replica(SyncObj):
    def __init__(self, cfg: ClusterConfig, node_id: str, *, listeners=(), replay_check: bool = True) -> None:
        """`listeners` are called after every applied block; those with a
        `catch_up(chain)` method read the stored chain first, before Raft
        starts applying. `replay_check=False` only for the benchmark that
        measures the replay guard's cost (dex.node refuses it off loopback)."""
        me = cfg.node(node_id)
        secret = cfg.secret()  # refuses to start without one
        self.cfg = cfg
        self.node_id = node_id
        self.data_dir: Path = cfg.node_data_dir(node_id)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.engine = Engine(cfg.markets)
        self.replay_check = replay_check
        self.guard = ReplayGuard()  # replicated beside the engine: signed requests already executed
        self.guard.checking = replay_check
        # A SIGBUS (a journal page the disk cannot back) or SIGSEGV then
        # leaves a traceback in the node's log instead of nothing.
        if not faulthandler.is_enabled():
            faulthandler.enable()
        try:
            self.chain = Chain(self.data_dir / "blocks.dat")
        except ChainError as e:
            stop_process(
                EXIT_CHAIN_DAMAGED,
                "refusing to start: %s is damaged (%s). Its other replicas hold the same blocks: start the node "
                "with `dex node --rebuild` (it moves the raft.* and blocks.dat files of %s aside, kept for "
                "inspection) to rebuild it from the cluster.",
                self.data_dir / "blocks.dat", e, self.data_dir,
            )
        self.applied: BlockHeader | None = None  # the engine's state is after this block
        self.applied_hash: bytes = GENESIS_PARENT
        self.listeners: list[BlockListener] = []
        for listener in listeners:
            if hasattr(listener, "catch_up"):
                listener.catch_up(self.chain)
            self.listeners.append(listener.on_block if hasattr(listener, "on_block") else listener)
        self.node_by_address = {n.raft_address: n.id for n in cfg.nodes}
        conf = SyncObjConf(
            password=secret,
            journalFile=str(self.data_dir / "raft.journal"),
            fullDumpFile=str(self.data_dir / "raft.dump"),
            serializer=self._serialize,
            deserializer=self._deserialize,
            dynamicMembershipChange=False,
            **raft_timing(),
            # Our entries are already blocks: send each at once, and tell
            # followers of a new commit index at once, instead of on the
            # next 50 ms tick.
            appendEntriesUseBatch=False,
            connectionRetryTime=CONNECTION_RETRY_S,
            logCompactionMinEntries=LOG_COMPACTION_ENTRIES_MIN,
            logCompactionMinTime=LOG_COMPACTION_TIME_MIN_S,
            commandsQueueSize=cfg.inflight_blocks_max * 4,
            bindAddress=f"{me.raft_host}:{me.raft_port}",
            # Containers come and go with new addresses: don't cache lookups
            # (PySyncObj's defaults are 600 s, and 30 s for failures).
            dnsCacheTime=10.0,
            dnsFailCacheTime=1.0,
        )
        others = [n.raft_address for n in cfg.nodes if n.id != node_id]
        pickle_entries_natively()  # blocks are bytes: a third smaller on the wire and in the journal
        try:
            with raft_correct_journals(lambda path: DexJournal(path, durability=cfg.durability)):
                super().__init__(me.raft_address, others, conf, transportClass=RaftTransport)  # bounded Raft port
        except JournalCorrupt as e:
            stop_process(
                EXIT_JOURNAL_DAMAGED,
                "refusing to start: %s. This node's Raft log cannot be trusted: start it with `dex node --rebuild` "
                "(it moves the raft.* and blocks.dat files of %s aside, kept for inspection) to rebuild it from the cluster.",
                e, self.data_dir,
            )
        install_raft_fixes(self, before_journal_add=self._check_disk_space)
        install_sync_before_send(self, self._SyncObj__raftLog)

    # ---------------------------------------------------------------- views

    @property
    def leader_id(self) -> str | None:
        leader = self._getLeader()
        return None if leader is None else self.node_by_address.get(leader.id)

    @property
    def is_leader(self) -> bool:
        return self._isLeader()

    @property
    def height(self) -> int:
        return 0 if self.applied is None else self.applied.height

    @property
    def hasQuorum(self) -> bool:  # noqa: N802 (PySyncObj's name, read by dex.node)
        """PySyncObj's (a majority of connections open) and, on a leader, a
        majority heard from within LEADER_FALLBACK_TIMEOUT_S."""
        if not SyncObj.hasQuorum.fget(self):
            return False
        return not self._isLeader() or leader_hears_majority(self, LEADER_FALLBACK_TIMEOUT_S)

    # ------------------------------------------------------------ the block

    @replicated
    def apply_block(self, proposal_bytes: bytes):
        """Apply one committed proposal. Runs on every node, in log order.

        All or nothing: a failure after decoding stops the process (see the
        module docstring); it never returns to PySyncObj half applied."""
        try:
            proposal, leaves = decode_proposal(proposal_bytes)
        except CodecError as e:
            # Only a holder of the cluster secret can propose, so this is a
            # bug; every node skips the same entry, so they stay in step.
            log.error("skipping an undecodable proposal: %s", e)
            return None
        with self.lock:
            height = self.height + 1
            try:
                header, encoded, results = apply_proposal(self.engine, self.guard, self.applied, self.applied_hash, proposal, leaves)
                block_hash = self.chain.append(header, proposal_bytes, b"".join(encoded))
            except BaseException as e:  # noqa: BLE001 (anything: the engine may be half mutated)
                self._stop_on_apply_failure(height, e)
                raise  # only reached when a test's _exit returns
            self.applied = header
            self.applied_hash = block_hash
        for listener in self.listeners:
            try:
                listener(header, block_hash, proposal, results)
            except Exception:  # a listener must never stop the state machine
                log.exception("block listener failed")
        return header.height, block_hash, results

    def _stop_on_apply_failure(self, height: int, error: BaseException) -> None:
        if isinstance(error, ChainError):
            advice = (
                "the block computed from the Raft log disagrees with blocks.dat: this node's journal or chain is "
                f"damaged. Start the node with `dex node --rebuild` (it moves the raft.* and blocks.dat files of "
                f"{self.data_dir} aside) to rebuild it from the cluster"
            )
        elif isinstance(error, OSError):
            advice = (
                f"the data directory {self.data_dir} could not be written (full disk?). Free space and start the "
                "node again: it recovers from its dump, journal and chain"
            )
        else:
            advice = (
                "this is a bug. Start the node again: it recovers from its dump, journal and chain; if it stops "
                f"at the same block, move {self.data_dir} aside to rebuild it from the cluster and report the bug"
            )
        log.error("block %d failed after its commands were applied", height, exc_info=error)
        stop_process(
            EXIT_APPLY_FAILED,
            "stopping: block %d could not be applied all or nothing (%s: %s); the engine may hold part of it, so this "
            "node must not go on. What to do: %s.",
            height, type(error).__name__, error, advice,
        )

    def _check_disk_space(self, entry_bytes: int) -> None:
        """Before each journal entry: stop cleanly if the disk cannot hold it
        (a write that fails mid-record inside PySyncObj's thread would be
        logged and retried there; the reserve also covers blocks.dat and the
        dump, which share the directory)."""
        st = os.statvfs(self.data_dir)
        free = st.f_bavail * st.f_frsize
        if free < entry_bytes + DISK_FREE_BYTES_MIN:
            stop_process(
                EXIT_DISK_FULL,
                "stopping: the data directory %s has %d bytes free, less than a journal entry of %d bytes plus %d "
                "in reserve. Free space and start the node again: it recovers from its dump, journal and chain.",
                self.data_dir, free, entry_bytes, DISK_FREE_BYTES_MIN,
            )

    # --------------------------------------------- PySyncObj's full dump file

    def _serialize(self, file_name: str, raft_data) -> None:
        """Write the full dump: the engine snapshot, the applied head and the
        two log entries PySyncObj needs to resume (raft_data[0:2])."""
        last_entry, prev_entry, _cluster = raft_data
        with self.lock:
            snapshot = self.engine.snapshot()
            guard = self.guard.encode()
            head = b"" if self.applied is None else self.applied.encode()
        with open(file_name, "wb") as f:
            f.write(_DUMP_HEAD.pack(DUMP_MAGIC, DUMP_VERSION, len(snapshot), len(head)))
            f.write(snapshot)
            f.write(head)
            f.write(_DUMP_GUARD.pack(len(guard)))
            f.write(guard)
            for command, index, term in (last_entry, prev_entry):
                f.write(_ENTRY.pack(len(command), index, term))
                f.write(command)
            f.flush()
            os.fsync(f.fileno())  # PySyncObj renames it into place, then the journal fsyncs the directory
        self.chain.flush()
        log.info("full dump written at height %d (%d bytes of engine state)", self.height, len(snapshot))

    def _deserialize(self, file_name: str):
        """Load a full dump (our own at start-up, or one sent by the leader).

        PySyncObj logs and swallows a failure here and would go on with an
        empty engine, so a dump that cannot be loaded stops the node instead."""
        try:
            return self._load_dump(file_name)
        except Exception as e:
            stop_process(
                EXIT_DUMP_UNLOADABLE,
                "cannot load %s (%s): stopping. To rebuild this node from the others, "
                "start it with `dex node --rebuild` (it moves the raft.* and blocks.dat files of %s aside).", file_name, e, self.data_dir,
            )

    def _load_dump(self, file_name: str):
        with open(file_name, "rb") as f:
            data = f.read()
        magic, version, n_snapshot, n_head = _DUMP_HEAD.unpack_from(data, 0)
        if magic != DUMP_MAGIC or version not in (1, DUMP_VERSION):
            raise ValueError(f"{file_name}: not a dex dump v1..{DUMP_VERSION}")
        at = _DUMP_HEAD.size
        engine = Engine.restore(self.cfg.markets, data[at : at + n_snapshot])
        at += n_snapshot
        head = decode_header(data, at)[0] if n_head else None
        at += n_head
        guard = ReplayGuard()  # a version 1 dump predates the guard
        if version >= 2:
            (n_guard,) = _DUMP_GUARD.unpack_from(data, at)
            at += _DUMP_GUARD.size
            guard = ReplayGuard.decode(data[at : at + n_guard])
            at += n_guard
        entries = []
        for _ in range(2):
            n, index, term = _ENTRY.unpack_from(data, at)
            at += _ENTRY.size
            entries.append((data[at : at + n], index, term))
            at += n
        guard.checking = self.replay_check
        with self.lock:
            self.engine = engine
            self.guard = guard
            self.applied = head
            self.applied_hash = GENESIS_PARENT if head is None else head.hash
            if head is not None:
                stored = self.chain.header(head.height)
                if stored is None and head.height > self.chain.height:
                    log.warning("chain at %d is behind the snapshot at %d: continuing from the snapshot", self.chain.height, head.height)
                    self.chain.reset_to(head)
                elif stored is not None and stored.hash != head.hash:
                    raise RuntimeError(f"block {head.height} in the snapshot differs from the stored chain: replicas diverged")
        log.info("loaded full dump at height %d", self.height)
        return entries[0], entries[1], set()
