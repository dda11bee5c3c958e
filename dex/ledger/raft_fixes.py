"""Corrections to PySyncObj 0.3.17's log replication and elections (the version we pin).

With each block sent as soon as it is proposed (`appendEntriesUseBatch=False`),
several AppendEntries are in flight to each follower, and two behaviours of
PySyncObj combine to make a follower delete entries it has already applied
(logged as "truncating already-applied log entries"; seen under plain load):

1. The leader, on every successful acknowledgement, sets the follower's
   nextIndex to the acknowledged index + 1, even when it had already sent
   further. The next send then re-sends entries the follower holds.
2. The follower, given entries that overlap its log, deletes everything after
   `prevLogIdx` before appending, whether or not the entries conflict. Raft
   (§5.3) deletes only from the first entry whose term differs.

`RaftCorrectJournal` fixes 2 at the journal: deletion is deferred to the first
conflicting entry; an entry that matches the one held (same index and term,
hence the same entry by the Log Matching property) is kept. `_hook_messages`
fixes 1: a success never moves nextIndex backwards (a failure still does).

Keeping the entries after a match makes a third rule of Raft's matter (§5.3):
a follower may commit only up to the last entry the leader's message carried,
`min(leaderCommit, index of last new entry)`. PySyncObj takes the minimum with
its whole log instead, which is the same thing only when it has just deleted
everything after the message. A follower holding an old leader's uncommitted
entries beyond a message that stops short of them (the leader sends at most
64 KiB a message) would otherwise commit and apply them. `install` caps each
append_entries message's commit index at its last entry.

The alarm. PySyncObj logs "truncating already-applied log entries" at CRITICAL
whenever a message overlaps applied entries, before deciding anything; with
the journal above, an overlap that matches deletes nothing, so the line is a
false alarm there. `install` drops PySyncObj's line, and the journal logs it
itself, with the same words, when a conflicting entry really replaces an
applied one: replicas have diverged, and the tests fail on that line.

Stale failure replies (`NextIndexGuard`). A leader sends a follower that is
behind the whole gap in 64 KiB batches, advancing nextIndex after each. A
follower whose log diverges answers the first batch "term mismatch, try k" and
each later one "I have no entry there, try my log end + 1"; PySyncObj applies
every failure reply as it comes, so the later ones undo the step back and a
follower with a divergent tail longer than one batch never catches up. Each
append_entries now carries a sequence number that the follower's reply
echoes; once the leader has applied a failure reply (a reset of nextIndex),
failure replies to messages it had sent before that are stale and leave
nextIndex alone (they still count as a sign of life).

Pre-vote (`PreVote`, Raft thesis §9.6). PySyncObj starts an election, with a
higher term, whenever its election timer runs out. A node cut off from the
others does so again and again, and when it returns its higher term deposes
a healthy leader. Here a node holds PySyncObj's election timer and runs its
own: when it runs out, the node first asks the others whether they would vote
for it at term + 1 (`dex_pre_vote`). Another node says yes only if the
asker's log is at least as up to date as its own and it has not heard from a
current leader within the minimum election timeout (leader stickiness; a
leader always says no). Only with a majority of yeses does PySyncObj's
election go ahead. Nobody's term changes during a pre-vote, so a node that
was cut off returns with its old term and simply follows the leader.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable
from contextlib import contextmanager

import pysyncobj.syncobj as _syncobj

TRUNCATION_LINE = "truncating already-applied log entries"
log = logging.getLogger("dex.raft")

# Keys dex adds to PySyncObj's messages (PySyncObj ignores keys it does not know).
SEQ_KEY = "dex_seq"  # on append_entries: the sender's sequence number
ACK_KEY = "dex_ack"  # on next_node_idx: the dex_seq of the append_entries it answers
PRE_VOTE = "dex_pre_vote"
PRE_VOTE_RESPONSE = "dex_pre_vote_response"
# PySyncObj's election timer while PreVote holds it: never runs out.
ELECTION_HELD_S = float("inf")

_LEADER = 2  # PySyncObj's _RAFT_STATE.LEADER


class RaftCorrectJournal:
    """Wraps a PySyncObj journal; see the module docstring."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.applied_index: Callable[[], int] = lambda: 0  # set by install()
        # Called with an entry's size before it is stored (the replica's
        # free-space check); set by install().
        self.before_add: Callable[[int], None] = lambda entry_bytes: None

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 (PySyncObj's name)
        # Only called by a follower about to append; the appends delete what
        # actually conflicts.
        return None

    def add(self, command: bytes, idx: int, term: int) -> None:
        self.before_add(len(command))
        inner = self._inner
        if len(inner):
            first = inner[0][1]
            last = inner[-1][1]
            if first <= idx <= last:
                position = idx - first
                if inner[position][2] == term:
                    return  # the same entry: keep it (and everything after it)
                applied = self.applied_index()
                if idx <= applied:
                    log.critical(
                        "%s from index %d (last applied: %d): a leader replaced an applied entry; this replica has diverged",
                        TRUNCATION_LINE, idx, applied,
                    )
                inner.deleteEntriesFrom(position)  # a real conflict
        inner.add(command, idx, term)

    def __getitem__(self, item):
        return self._inner[item]

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@contextmanager
def raft_correct_journals(make_journal: Callable | None = None):
    """While active, SyncObj constructors get a RaftCorrectJournal around
    `make_journal(journal_file)` (default: PySyncObj's own journal)."""
    original = _syncobj.createJournal
    inner = make_journal or original
    _syncobj.createJournal = lambda journal_file=None: RaftCorrectJournal(inner(journal_file))
    try:
        yield
    finally:
        _syncobj.createJournal = original


class _DropOverlapAlarm(logging.Filter):
    """PySyncObj's own truncation line, logged before it knows whether
    anything conflicts (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(TRUNCATION_LINE))


_OVERLAP_ALARM_FILTER = _DropOverlapAlarm()


def install(syncobj, *, before_journal_add: Callable[[int], None] | None = None) -> "Corrections":
    """Every correction on a constructed SyncObj whose journal came from
    raft_correct_journals(). `before_journal_add(entry_bytes)` runs before
    each journal entry is stored."""
    journal = syncobj._SyncObj__raftLog
    assert isinstance(journal, RaftCorrectJournal), "construct the SyncObj inside raft_correct_journals()"
    journal.applied_index = lambda: syncobj._SyncObj__raftLastApplied
    if before_journal_add is not None:
        journal.before_add = before_journal_add
    pysyncobj_log = logging.getLogger(_syncobj.__name__)
    if _OVERLAP_ALARM_FILTER not in pysyncobj_log.filters:
        pysyncobj_log.addFilter(_OVERLAP_ALARM_FILTER)
    corrections = Corrections(syncobj)
    corrections.hook()
    return corrections


def cap_commit_index(message: dict) -> None:
    """Raft's commit rule on a follower: never past the last entry this
    append_entries message carries (or its prevLogIdx when it carries none)."""
    if "prevLogIdx" not in message or "commit_index" not in message:
        return  # a snapshot transmission: no log entries
    transmission = message.get("transmission")
    if transmission is None:
        entries = message.get("entries") or ()
        last = entries[-1][1] if entries else message["prevLogIdx"]
    elif transmission == "finish":
        last = message["prevLogIdx"] + 1  # one entry, sent in chunks
    else:
        return  # start/process: PySyncObj returns before committing anything
    if message["commit_index"] > last:
        message["commit_index"] = last


def leader_hears_majority(syncobj, window_s: float) -> bool:
    """A leader heard, within window_s, from enough followers to make a majority
    with itself. PySyncObj's own hasQuorum counts open connections, which stay
    open for its connectionTimeout (3.5 s) after a partition; a leader that
    cannot commit must refuse requests at once."""
    assert window_s > 0
    deadline = _syncobj.monotonicTime() - window_s
    heard = list(syncobj._SyncObj__lastResponseTime.values())  # one C-level copy: safe from other threads
    recent = 1 + sum(1 for t in heard if t > deadline)
    return recent > (len(syncobj.otherNodes) + 1) / 2


class NextIndexGuard:
    """The leader's side of the stale-failure-reply fix (module docstring):
    which failure replies answer messages sent before nextIndex was last reset."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self.sent_last: dict = {}  # node -> dex_seq of the last append_entries sent to it
        self.barrier: dict = {}  # node -> replies to dex_seq <= this are stale
        self.term = -1  # the term the barriers belong to

    def on_send(self, node, message: dict) -> None:
        term = message.get("term")
        if term != self.term:
            # A new leadership: onBecomeLeader reset every nextIndex, so replies
            # to what was sent in an earlier term are stale.
            self.term = term
            self.barrier = dict(self.sent_last)
        seq = next(self._seq)
        message[SEQ_KEY] = seq
        self.sent_last[node] = seq

    def is_stale(self, node, message: dict) -> bool:
        ack = message.get(ACK_KEY)
        barrier = self.barrier.get(node)
        return ack is not None and barrier is not None and ack <= barrier

    def on_reset(self, node) -> None:
        """A failure reply moved nextIndex: what was sent until now answers to
        the old nextIndex."""
        self.barrier[node] = self.sent_last.get(node, 0)


class PreVote:
    """The pre-vote and leader stickiness (module docstring). Runs on
    PySyncObj's thread: its tick callback and its message handler."""

    def __init__(self, syncobj, *, rng: random.Random | None = None) -> None:
        conf = syncobj.conf
        assert 0 < conf.raftMinTimeout < conf.raftMaxTimeout
        self.syncobj = syncobj
        self.timeout_min_s = conf.raftMinTimeout
        self.timeout_max_s = conf.raftMaxTimeout
        self.rng = rng or random.Random()
        self.heard_leader_s = float("-inf")  # last append_entries from a current leader
        self.deadline_s = _syncobj.monotonicTime() + self._timeout_s()
        self.round_term: int | None = None  # the term the pre-vote in progress asks for
        self.grants: set[str] = set()
        self.released_term: int | None = None  # PySyncObj may campaign from this term
        self.rounds = 0

    def _timeout_s(self) -> float:
        return self.timeout_min_s + (self.timeout_max_s - self.timeout_min_s) * self.rng.random()

    def on_tick(self) -> None:
        s = self.syncobj
        now = _syncobj.monotonicTime()
        term = s.raftCurrentTerm
        if s._SyncObj__raftState == _LEADER:
            self.round_term = None
            self.released_term = None
            self.deadline_s = now + self._timeout_s()
            return
        if self.released_term is not None:
            if term == self.released_term and s._SyncObj__raftElectionDeadline != ELECTION_HELD_S:
                return  # PySyncObj campaigns on its next tick
            self.released_term = None
        s._SyncObj__raftElectionDeadline = ELECTION_HELD_S
        if now < self.deadline_s:
            return
        self.deadline_s = now + self._timeout_s()
        # No word from a leader for a whole timeout: it is no longer ours to
        # name (PySyncObj forgets it only when it campaigns).
        if s._SyncObj__raftLeader is not None:
            s._SyncObj__raftLeader = None
            s._SyncObj__onLeaderChanged()
        self.round_term = term + 1
        self.grants = {s.selfNode.id}
        self.rounds += 1
        message = {
            "type": PRE_VOTE,
            "term": self.round_term,
            "last_log_index": s._SyncObj__getCurrentLogIndex(),
            "last_log_term": s._SyncObj__getCurrentLogTerm(),
        }
        for node in s.otherNodes:
            s._SyncObj__transport.send(node, dict(message))
        self._maybe_release()

    def on_append_entries(self, message: dict) -> None:
        """Before PySyncObj handles an append_entries."""
        if message.get("term", -1) >= self.syncobj.raftCurrentTerm:
            now = _syncobj.monotonicTime()
            self.heard_leader_s = now
            self.deadline_s = now + self._timeout_s()

    def on_request_vote(self, message: dict) -> None:
        """A real election by a node that won its pre-vote: give it time."""
        if message.get("term", -1) > self.syncobj.raftCurrentTerm:
            self.deadline_s = _syncobj.monotonicTime() + self._timeout_s()

    def on_pre_vote(self, node, message: dict) -> None:
        s = self.syncobj
        now = _syncobj.monotonicTime()
        my_last_term = s._SyncObj__getCurrentLogTerm()
        up_to_date = (message["last_log_term"], message["last_log_index"]) >= (my_last_term, s._SyncObj__getCurrentLogIndex())
        granted = (
            s._SyncObj__raftState != _LEADER
            and now - self.heard_leader_s >= self.timeout_min_s
            and message["term"] > s.raftCurrentTerm
            and up_to_date
        )
        s._SyncObj__transport.send(node, {"type": PRE_VOTE_RESPONSE, "term": message["term"], "granted": granted})

    def on_pre_vote_response(self, node, message: dict) -> None:
        s = self.syncobj
        if not message.get("granted") or message.get("term") != self.round_term or self.round_term != s.raftCurrentTerm + 1:
            return
        self.grants.add(node.id)
        self._maybe_release()

    def _maybe_release(self) -> None:
        s = self.syncobj
        if len(self.grants) > (len(s.otherNodes) + 1) / 2:
            self.round_term = None
            self.released_term = s.raftCurrentTerm
            s._SyncObj__raftElectionDeadline = 0  # campaign on the next tick


class Corrections:
    """The message and election hooks on one SyncObj."""

    def __init__(self, syncobj) -> None:
        self.syncobj = syncobj
        self.next_index = NextIndexGuard()
        self.pre_vote = PreVote(syncobj)
        self._answering: int | None = None  # dex_seq of the append_entries being handled

    def hook(self) -> None:
        syncobj = self.syncobj
        transport = syncobj._SyncObj__transport
        handler = transport._onMessageReceivedCallback
        inner_send = transport.send
        next_index_by_node = syncobj._SyncObj__raftNextIndex
        guard = self.next_index
        pre_vote = self.pre_vote

        def send(node, message):
            if isinstance(message, dict):
                kind = message.get("type")
                if kind == "append_entries":
                    guard.on_send(node, message)
                elif kind == "next_node_idx" and self._answering is not None:
                    message[ACK_KEY] = self._answering
            return inner_send(node, message)

        def on_message(node, message):
            if not isinstance(message, dict):
                handler(node, message)
                return
            kind = message.get("type")
            if kind == "append_entries":
                cap_commit_index(message)
                pre_vote.on_append_entries(message)
                self._answering = message.get(SEQ_KEY)
                try:
                    handler(node, message)
                finally:
                    self._answering = None
                return
            if kind == PRE_VOTE:
                pre_vote.on_pre_vote(node, message)
                return
            if kind == PRE_VOTE_RESPONSE:
                pre_vote.on_pre_vote_response(node, message)
                return
            if kind == "request_vote":
                pre_vote.on_request_vote(message)
                handler(node, message)
                return
            if kind == "next_node_idx" and syncobj._SyncObj__raftState == _LEADER:
                before = next_index_by_node.get(node)
                stale = not message.get("success") and guard.is_stale(node, message)
                handler(node, message)
                after = next_index_by_node.get(node)
                if before is None or after is None:
                    return
                if message.get("success"):
                    if after < before:  # a success never moves nextIndex back (fix 1)
                        next_index_by_node[node] = before
                elif stale:
                    next_index_by_node[node] = before
                elif message.get("reset"):
                    guard.on_reset(node)
                return
            handler(node, message)

        transport.send = send
        transport.setOnMessageReceivedCallback(on_message)
        syncobj.addOnTickCallback(self.pre_vote.on_tick)
