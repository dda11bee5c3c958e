"""The Raft journal on disk (dex/ledger/journal.py): records survive a
reopen, torn tails are cut, damage in the middle is refused, the term and
vote are durable at once, and entries are fsynced once per sync()."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dex.ledger.journal import DexJournal, JournalCorrupt, encode_record


def filled(path: Path, n: int, **kwargs) -> DexJournal:
    j = DexJournal(path, **kwargs)
    for i in range(1, n + 1):
        j.add(b"cmd-%d" % i, i, 1 + i // 4)
    j.sync()
    return j


def reopened(path: Path) -> list[tuple[bytes, int, int]]:
    j = DexJournal(path)
    try:
        return [j[i] for i in range(len(j))]
    finally:
        j._destroy()


def test_entries_term_and_vote_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    j = filled(path, 10)
    j.setCurrentTerm(7, "127.0.0.1:1234")
    entries = [j[i] for i in range(len(j))]
    os.close(j._fd)  # a SIGKILL: nothing more is written

    again = DexJournal(path)

    assert [again[i] for i in range(len(again))] == entries == [(b"cmd-%d" % i, i, 1 + i // 4) for i in range(1, 11)]
    assert (again.getCurrentTerm(), again.getVotedForNodeId()) == (7, "127.0.0.1:1234")


def test_one_fsync_per_sync_however_many_entries_and_none_in_os_mode(tmp_path: Path) -> None:
    durable = filled(tmp_path / "a.journal", 50)
    cached = filled(tmp_path / "b.journal", 50, durability="os")
    durable.sync()  # nothing new: no fsync

    assert durable.fsyncs == 1
    assert cached.fsyncs == 0


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_a_torn_last_record_is_cut(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "raft.journal"
    filled(path, 5)._destroy()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - cut)

    entries = reopened(path)

    assert [e[1] for e in entries] == [1, 2, 3, 4]
    assert path.stat().st_size < size - cut or cut >= size


def test_a_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    filled(path, 3)._destroy()
    with open(path, "ab") as f:
        f.write(bytes(4096))

    assert [e[1] for e in reopened(path)] == [1, 2, 3]
    j = DexJournal(path)
    j.add(b"next", 4, 1)  # appends after the cut
    j._destroy()
    assert [e[1] for e in reopened(path)] == [1, 2, 3, 4]


def test_a_changed_byte_in_the_middle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    filled(path, 5)._destroy()
    data = bytearray(path.read_bytes())
    data[len(encode_record(b"cmd-1", 1, 1)) + 20] ^= 0x01  # inside the first record's command

    path.write_bytes(bytes(data))

    with pytest.raises(JournalCorrupt, match=f"checksum mismatch at offset {6 + len(encode_record(b'cmd-1', 1, 1))} with records after it"):
        DexJournal(path)


def test_deletes_from_and_to_are_durable(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    j = filled(path, 10)
    j.deleteEntriesFrom(7)  # keep entries 1..7
    j.add(b"new-8", 8, 9)
    j.sync()
    j.deleteEntriesTo(3)  # compaction: drop entries 1..3
    j._destroy()

    entries = reopened(path)

    assert [e[1] for e in entries] == [4, 5, 6, 7, 8]
    assert entries[-1] == (b"new-8", 8, 9)


def test_a_gap_in_the_indexes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    filled(path, 2)._destroy()
    with open(path, "ab") as f:
        f.write(encode_record(b"x", 9, 1) + encode_record(b"y", 10, 1))

    with pytest.raises(JournalCorrupt, match="entry 9 .* follows entry 2"):
        DexJournal(path)


def test_a_pysyncobj_journal_is_converted_once(tmp_path: Path) -> None:
    from pysyncobj.journal import FileJournal

    path = tmp_path / "raft.journal"
    old = FileJournal(str(path))
    for i in range(1, 6):
        old.add(b"old-%d" % i, i, 2)
    old.setCurrentTerm(3, "n2")
    old._destroy()

    j = DexJournal(path)

    assert [j[i] for i in range(len(j))] == [(b"old-%d" % i, i, 2) for i in range(1, 6)]
    assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (3, "n2")
    j._destroy()
    assert path.read_bytes().startswith(b"DEXJ")


def test_an_unreadable_meta_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    filled(path, 1)._destroy()
    (tmp_path / "raft.journal.term").write_text("{not json")

    with pytest.raises(JournalCorrupt, match="term and vote are unknown"):
        DexJournal(path)
