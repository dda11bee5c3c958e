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


# ------------------------------------------- PySyncObj ticked by hand (raft_sim)

import pytest  # noqa: E402
import pysyncobj.syncobj as _syncobj  # noqa: E402

from dex.ledger.raft_fixes import leader_hears_majority  # noqa: E402
from dex.ledger.replica import LEADER_FALLBACK_TIMEOUT_S, RAFT_MAX_TIMEOUT_S, RAFT_MIN_TIMEOUT_S  # noqa: E402
from tests.unit.raft_sim import FakeClock, SimNet  # noqa: E402

BATCH_BYTES = 2**16  # PySyncObj's appendEntriesBatchSizeBytes
ENTRY_BYTES = 1024
DIVERGENT_ENTRIES = 20
GAP_ENTRIES = 400  # ~400 KiB: several batches
assert GAP_ENTRIES * ENTRY_BYTES > 4 * BATCH_BYTES


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(_syncobj, "monotonicTime", fake)
    return fake


def _others(net: SimNet, *node_ids: str) -> list[str]:
    return [n for n in net.ids if n not in node_ids]


def test_a_deposed_leader_with_a_divergent_tail_longer_than_a_batch_catches_up(clock):
    net = SimNet(3, clock)
    old = net.elect()
    net.run_for(0.5)
    # Cut off, the old leader takes proposals it can never commit.
    net.cut = {old}
    net.append(old, DIVERGENT_ENTRIES, ENTRY_BYTES)
    majority = _others(net, old)
    assert net.run_for(10.0, until=lambda: bool(net.leaders())), "the majority elected no leader"
    (new,) = net.leaders()
    net.append(new, GAP_ENTRIES, ENTRY_BYTES)
    net.run_for(1.0)
    assert net.log(majority[0]) == net.log(majority[1])

    net.cut = set()
    caught_up = net.run_for(10.0, step_s=0.05, until=lambda: net.log(old) == net.log(new))

    assert caught_up, f"the old leader is stuck at {net.log(old)[-1]}, the leader at {net.log(new)[-1]}; nextIndex {net[new]._SyncObj__raftNextIndex}"
    assert net.leaders() == [new]


def test_a_leader_that_hears_no_majority_stops_claiming_quorum_and_steps_down_within_the_election_timeout(clock):
    net = SimNet(3, clock)
    leader = net.elect()
    net.run_for(0.5)
    assert leader_hears_majority(net[leader], LEADER_FALLBACK_TIMEOUT_S)

    net.cut = set(_others(net, leader))  # it hears from nobody
    clock.advance(LEADER_FALLBACK_TIMEOUT_S + 0.01)
    assert net[leader]._isLeader() and not leader_hears_majority(net[leader], LEADER_FALLBACK_TIMEOUT_S)
    net.tick(leader)

    assert not net[leader]._isLeader()
    assert LEADER_FALLBACK_TIMEOUT_S <= RAFT_MAX_TIMEOUT_S


def test_a_node_cut_off_for_many_election_timeouts_returns_without_deposing_the_leader(clock):
    net = SimNet(3, clock)
    leader = net.elect()
    net.run_for(0.5)
    term = net[leader].raftCurrentTerm
    loner = _others(net, leader)[0]

    net.cut = {loner}
    net.run_for(20 * RAFT_MAX_TIMEOUT_S)  # its election timer runs out again and again
    assert net[loner].raftCurrentTerm == term, "a cut-off node raised its term"
    assert net[loner]._getLeader() is None, "a cut-off node still names a leader it has not heard from"
    net.append(leader, 10, ENTRY_BYTES)
    net.cut = set()
    net.run_for(5 * RAFT_MAX_TIMEOUT_S, step_s=0.05)

    assert net.leaders() == [leader]
    assert net[leader].raftCurrentTerm == term
    assert net.log(loner) == net.log(leader)


def test_a_leader_that_dies_is_replaced_despite_the_pre_vote(clock):
    net = SimNet(3, clock)
    leader = net.elect()
    net.run_for(0.5)
    term = net[leader].raftCurrentTerm

    net.cut = {leader}

    assert net.run_for(5 * RAFT_MAX_TIMEOUT_S, until=lambda: bool(net.leaders())), "no new leader"
    (new,) = net.leaders()
    assert new != leader and net[new].raftCurrentTerm > term


def test_a_node_that_heard_from_its_leader_recently_refuses_a_pre_vote(clock):
    net = SimNet(3, clock)
    leader = net.elect()
    net.run_for(0.5)
    follower, asker = _others(net, leader)
    sent = {"type": "dex_pre_vote", "term": net[asker].raftCurrentTerm + 1,
            "last_log_index": net[asker]._SyncObj__getCurrentLogIndex(), "last_log_term": net[asker]._SyncObj__getCurrentLogTerm()}

    def answer(to: str) -> bool:
        transport = net[to]._SyncObj__transport
        transport._onMessageReceived(transport.peers[asker], dict(sent))
        (target, reply), = transport.outbox[-1:]
        transport.outbox.clear()
        assert target == asker and reply["type"] == "dex_pre_vote_response"
        return reply["granted"]

    assert not answer(follower)  # it heard from the leader within the minimum timeout
    assert not answer(leader)
    clock.advance(RAFT_MIN_TIMEOUT_S + 0.01)  # and no word from the leader since
    assert answer(follower)


def test_failure_replies_are_stale_only_for_messages_sent_before_the_last_reset_or_in_an_earlier_term():
    from dex.ledger.raft_fixes import ACK_KEY, SEQ_KEY, NextIndexGuard

    guard = NextIndexGuard()

    def send(term: int) -> dict:
        message = {"type": "append_entries", "term": term}
        guard.on_send("b", message)
        return {"type": "next_node_idx", ACK_KEY: message[SEQ_KEY]}

    first, second = send(2), send(2)
    assert not guard.is_stale("b", first)  # the first of a leadership counts
    guard.on_reset("b")  # `first` answered "try k"
    assert guard.is_stale("b", second)  # sent before the reset
    third = send(2)
    assert not guard.is_stale("b", third)
    fourth = send(3)  # a new leadership
    assert guard.is_stale("b", third) and not guard.is_stale("b", fourth)
    assert not guard.is_stale("b", {"type": "next_node_idx"})  # a peer without the echo: PySyncObj's behaviour
