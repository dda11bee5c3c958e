"""The corrections to PySyncObj's log replication (dex/ledger/raft_fixes.py)."""

from pysyncobj.journal import MemoryJournal

from dex.ledger.raft_fixes import RaftCorrectJournal


def _journal(entries):
    j = RaftCorrectJournal(MemoryJournal())
    for idx, term in entries:
        j.add(f"c{idx}t{term}".encode(), idx, term)
    return j


def _log(j):
    return [(j[i][1], j[i][2]) for i in range(len(j))]


def test_resent_matching_entries_keep_the_entries_after_them():
    j = _journal([(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)])

    j.deleteEntriesFrom(2)  # what the follower does for prevLogIdx=2
    j.add(b"c3t1", 3, 1)
    j.add(b"c4t1", 4, 1)

    assert _log(j) == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]


def test_a_heartbeat_behind_the_log_end_deletes_nothing():
    j = _journal([(1, 1), (2, 1), (3, 1)])

    j.deleteEntriesFrom(1)

    assert _log(j) == [(1, 1), (2, 1), (3, 1)]


def test_a_conflicting_entry_deletes_it_and_everything_after():
    j = _journal([(1, 1), (2, 1), (3, 1), (4, 1)])

    j.deleteEntriesFrom(1)
    j.add(b"c2t1", 2, 1)
    j.add(b"c3t2", 3, 2)

    assert _log(j) == [(1, 1), (2, 1), (3, 2)]
    assert j[2][0] == b"c3t2"


def test_entries_past_the_end_are_appended():
    j = _journal([(1, 1), (2, 1)])

    j.add(b"c3t1", 3, 1)

    assert _log(j) == [(1, 1), (2, 1), (3, 1)]
