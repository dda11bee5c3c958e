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
hence the same entry by the Log Matching property) is kept. `keep_next_index_monotonic`
fixes 1: a success never moves nextIndex backwards (a failure still does).
"""

from __future__ import annotations

from contextlib import contextmanager

import pysyncobj.syncobj as _syncobj


class RaftCorrectJournal:
    """Wraps a PySyncObj journal; see the module docstring."""

    def __init__(self, inner) -> None:
        self._inner = inner

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
                inner.deleteEntriesFrom(position)  # a real conflict
        inner.add(command, idx, term)

    def __getitem__(self, item):
        return self._inner[item]

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@contextmanager
def raft_correct_journals():
    """While active, SyncObj constructors get a RaftCorrectJournal."""
    original = _syncobj.createJournal
    _syncobj.createJournal = lambda journal_file=None: RaftCorrectJournal(original(journal_file))
    try:
        yield
    finally:
        _syncobj.createJournal = original


def keep_next_index_monotonic(syncobj) -> None:
    """Hook the SyncObj's message handler so a successful acknowledgement
    never lowers a follower's nextIndex."""
    transport = syncobj._SyncObj__transport
    handler = transport._onMessageReceivedCallback

    def on_message(node, message):
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
