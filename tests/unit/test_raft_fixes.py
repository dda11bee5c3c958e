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


# ---------------------------------------------------------------- commit rule

from dex.ledger.raft_fixes import TRUNCATION_LINE, _OVERLAP_ALARM_FILTER, cap_commit_index  # noqa: E402


def test_a_follower_commits_no_further_than_the_entries_a_message_carried():
    message = {"type": "append_entries", "prevLogIdx": 9, "entries": [(b"a", 10, 2), (b"b", 11, 2)], "commit_index": 15}
    cap_commit_index(message)
    assert message["commit_index"] == 11  # its own entries 12.. may be an old leader's


def test_a_heartbeat_commits_no_further_than_its_prev_log_index():
    message = {"type": "append_entries", "prevLogIdx": 9, "commit_index": 12}
    cap_commit_index(message)
    assert message["commit_index"] == 9


def test_a_commit_index_behind_the_entries_is_left_alone():
    message = {"type": "append_entries", "prevLogIdx": 9, "entries": [(b"a", 10, 2)], "commit_index": 7}
    cap_commit_index(message)
    assert message["commit_index"] == 7


def test_a_chunked_entry_counts_as_one_entry_and_snapshots_are_untouched():
    finish = {"type": "append_entries", "transmission": "finish", "prevLogIdx": 4, "commit_index": 9}
    cap_commit_index(finish)
    assert finish["commit_index"] == 5
    snapshot = {"type": "append_entries", "serialized": b"...", "commit_index": 9}
    cap_commit_index(snapshot)
    assert snapshot["commit_index"] == 9


# ----------------------------------------------------------------- the alarm


def test_replacing_an_applied_entry_raises_the_alarm_and_a_matching_overlap_does_not(caplog):
    j = _journal([(1, 1), (2, 1), (3, 1), (4, 1)])
    j.applied_index = lambda: 3
    with caplog.at_level("CRITICAL", logger="dex.raft"):
        j.add(b"c2t1", 2, 1)  # the same entry again: nothing to say
        assert not caplog.records
        j.add(b"c4t2", 4, 2)  # conflicts, but 4 was never applied
        assert not caplog.records
        j.add(b"c3t2", 3, 2)  # replaces applied entry 3
    assert [r.getMessage().startswith(TRUNCATION_LINE) for r in caplog.records] == [True]


def test_pysyncobjs_own_overlap_line_is_dropped_and_others_are_kept():
    import logging

    def record(msg):
        return logging.LogRecord("pysyncobj.syncobj", logging.CRITICAL, __file__, 1, msg, (), None)

    assert not _OVERLAP_ALARM_FILTER.filter(record(TRUNCATION_LINE + " from index %d (last applied: %d) - ..."))
    assert _OVERLAP_ALARM_FILTER.filter(record("failed to load full dump"))
