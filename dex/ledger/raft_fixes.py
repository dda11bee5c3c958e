"""Two corrections to PySyncObj 0.3.17's log replication (the version we pin).

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager

import pysyncobj.syncobj as _syncobj

TRUNCATION_LINE = "truncating already-applied log entries"
log = logging.getLogger("dex.raft")


class RaftCorrectJournal:
    """Wraps a PySyncObj journal; see the module docstring."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.applied_index: Callable[[], int] = lambda: 0  # set by install()

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 (PySyncObj's name)
        # Only called by a follower about to append; the appends delete what
        # actually conflicts.
        return None

    def add(self, command: bytes, idx: int, term: int) -> None:
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


def install(syncobj) -> None:
    """All three corrections on a constructed SyncObj whose journal came from
    raft_correct_journals()."""
    journal = syncobj._SyncObj__raftLog
    assert isinstance(journal, RaftCorrectJournal), "construct the SyncObj inside raft_correct_journals()"
    journal.applied_index = lambda: syncobj._SyncObj__raftLastApplied
    pysyncobj_log = logging.getLogger(_syncobj.__name__)
    if _OVERLAP_ALARM_FILTER not in pysyncobj_log.filters:
        pysyncobj_log.addFilter(_OVERLAP_ALARM_FILTER)
    _hook_messages(syncobj)


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


def _hook_messages(syncobj) -> None:
    """Hook the SyncObj's message handler so a successful acknowledgement
    never lowers a follower's nextIndex, and a follower never commits past
    what a message carried (cap_commit_index)."""
    transport = syncobj._SyncObj__transport
    handler = transport._onMessageReceivedCallback

    def on_message(node, message):
        if isinstance(message, dict) and message.get("type") == "append_entries":
            cap_commit_index(message)
            handler(node, message)
            return
        if isinstance(message, dict) and message.get("type") == "next_node_idx" and message.get("success") and not message.get("reset"):
            next_index = syncobj._SyncObj__raftNextIndex
            before = next_index.get(node)
            handler(node, message)
            after = next_index.get(node)
            if before is not None and after is not None and after < before:
                next_index[node] = before
            return
        handler(node, message)

    transport.setOnMessageReceivedCallback(on_message)
