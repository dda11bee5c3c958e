"""The Raft log on disk: checksummed records, durable terms and votes.

PySyncObj's own FileJournal is an mmap that is never flushed per entry, has
no checksum, and writes the term and vote without fsync: a power loss could
lose acknowledged entries or let a node vote twice in one term. `DexJournal`
implements PySyncObj's journal interface (add, clear, deleteEntriesFrom,
deleteEntriesTo, indexing, the term, vote and commit index) over our own file.

Files, in the node's data directory:

    raft.journal       magic "DEXJ", u16 version; then records:
                       u32 length, u32 crc32(payload), payload
                       payload = u64 index, u64 term, command bytes
    raft.journal.term  JSON {"term", "votedFor", "commitIndex"}, replaced
                       atomically (write, fsync, rename, fsync the directory)

Durability (`durability` in the cluster config):
- "fsync" (default): `sync()` makes every record added so far durable with
  one fdatasync. The replica calls it before the node sends any Raft message
  (`install_sync_before_send`), so an entry is on disk before a follower
  acknowledges it or a leader counts itself toward its majority: group commit,
  one fdatasync per batch of entries a message carries, not per order.
- "os": records reach the OS page cache only (they survive a killed
  process, not a power loss); fsynced at compaction and close.
The term and vote are always durable before `setCurrentTerm` returns, i.e.
before any message reflecting them is sent (Raft's rule for votes).

Opening: a record cut short or failing its checksum at the end of the file is
a torn write (the crash happened mid-append): it is cut, with a warning. A
record that fails its checksum with more data after it, or indexes that do
not follow each other, is corruption: `JournalCorrupt`, and the node refuses
to start (docs/CLUSTER.md says how to rebuild it from the cluster). A journal
written by PySyncObj's FileJournal (dex before this format) is converted once.

Threads: PySyncObj's thread only.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path

from dex.ledger.durable import fsync_dir, record_synced_length

log = logging.getLogger("dex.ledger.journal")

MAGIC = b"DEXJ"
VERSION = 1
_FILE_HEAD = struct.Struct("<4sH")
_RECORD_HEAD = struct.Struct("<II")  # length, crc32
_ENTRY = struct.Struct("<QQ")  # index, term
RECORD_BYTES_MAX = 64 * 1024 * 1024  # larger than any entry (PySyncObj sends <= 64 KiB batches)
DURABILITY_MODES = ("fsync", "os")
VOTE_LINE = "term %d: voted for %s"


class JournalCorrupt(Exception):
    """The journal cannot be trusted: the node must not start on it."""


def encode_record(command: bytes, index: int, term: int) -> bytes:
    payload = _ENTRY.pack(index, term) + command
    return _RECORD_HEAD.pack(len(payload), zlib.crc32(payload)) + payload


class DexJournal:
    def __init__(self, path: str | Path, *, durability: str = "fsync") -> None:
        assert durability in DURABILITY_MODES, durability
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".term")  # PySyncObj's own ".meta" is a pickle
        self.durability = durability
        self._entries: list[tuple[bytes, int, int]] = []
        self._offsets: list[int] = []  # each entry's record offset
        self._meta = {"term": 0, "votedFor": None, "commitIndex": 1}
        self._meta_dirty = False
        self._unsynced = False
        self.fsyncs = 0
        self._load_meta()
        self._open()

    # ----------------------------------------------------------------- open

    def _open(self) -> None:
        created = not self.path.exists()
        if not created:
            with open(self.path, "rb") as f:
                data = f.read()
            if data.startswith(b"PYSYNCOBJ"):
                self._convert_pysyncobj()
                return
            self._end = self._scan(data)
        else:
            self._write_fresh(self.path, [])
            fsync_dir(self.path.parent)
            self._end = _FILE_HEAD.size
            record_synced_length(self.path, self._end)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        os.lseek(self._fd, self._end, os.SEEK_SET)
        self._synced_end = self._end

    def _scan(self, data: bytes) -> int:
        """Load every record; return the offset where the next one goes."""
        if len(data) < _FILE_HEAD.size:
            if MAGIC[: len(data)] != data[: len(MAGIC)]:
                raise JournalCorrupt(f"{self.path}: {len(data)} bytes that are not a dex journal")
            log.warning("%s: %d bytes, its header cut by a crash at creation: starting it again", self.path, len(data))
            self._write_fresh(self.path, [])
            return _FILE_HEAD.size
        magic, version = _FILE_HEAD.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise JournalCorrupt(f"{self.path}: not a dex journal v{VERSION}")
        at = _FILE_HEAD.size
        size = len(data)
        while at < size:
            problem = None
            if at + _RECORD_HEAD.size > size:
                problem = "a record header cut short"
            else:
                length, crc = _RECORD_HEAD.unpack_from(data, at)
                end = at + _RECORD_HEAD.size + length
                if length < _ENTRY.size or length > RECORD_BYTES_MAX or end > size:
                    problem = f"a record of {length} bytes past the end" if end > size else f"a record of {length} bytes"
                else:
                    payload = data[at + _RECORD_HEAD.size : end]
                    if zlib.crc32(payload) != crc:
                        problem = "a checksum mismatch"
            if problem is not None:
                if at + _RECORD_HEAD.size <= size and not self._is_tail(data, at):
                    raise JournalCorrupt(f"{self.path}: {problem} at offset {at} with records after it: the journal is damaged")
                log.warning("%s: cutting a torn record at offset %d (%s, %d bytes): a crash interrupted its write", self.path, at, problem, size - at)
                self._truncate_file(at)
                return at
            index, term = _ENTRY.unpack_from(payload, 0)
            if self._entries and index != self._entries[-1][1] + 1:
                raise JournalCorrupt(f"{self.path}: entry {index} at offset {at} follows entry {self._entries[-1][1]}: the journal is damaged")
            self._entries.append((payload[_ENTRY.size :], index, term))
            self._offsets.append(at)
            at = end
        return at

    @staticmethod
    def _is_tail(data: bytes, at: int) -> bool:
        """True when the bad record at `at` is the last thing in the file:
        its declared end reaches the end of the file (or past it), or it is
        followed only by zeros (blocks allocated but never written)."""
        length, _ = _RECORD_HEAD.unpack_from(data, at)
        end = at + _RECORD_HEAD.size + length
        return end >= len(data) or length > RECORD_BYTES_MAX or not any(data[end:])

    def _truncate_file(self, size: int) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())

    def _write_fresh(self, path: Path, entries: list) -> list[int]:
        """Write a whole journal to `path` durably; return the record offsets."""
        offsets = []
        at = _FILE_HEAD.size
        chunks = [_FILE_HEAD.pack(MAGIC, VERSION)]
        for command, index, term in entries:
            record = encode_record(command, index, term)
            offsets.append(at)
            at += len(record)
            chunks.append(record)
        with open(path, "wb") as f:
            f.write(b"".join(chunks))
            f.flush()
            os.fsync(f.fileno())
        return offsets

    def _convert_pysyncobj(self) -> None:
        from pysyncobj.journal import FileJournal

        old = FileJournal(str(self.path))
        entries = [old[i] for i in range(len(old))]
        if not self.meta_path.exists():
            self._meta.update(term=old.getCurrentTerm(), votedFor=old.getVotedForNodeId(), commitIndex=old.getRaftCommitIndex())
            self._store_meta()
        old._destroy()
        self._replace(entries)
        Path(f"{self.path}.meta").unlink(missing_ok=True)  # PySyncObj's pickled term and vote, now in .term
        log.warning("%s: converted PySyncObj's journal (%d entries) to the dex journal format", self.path, len(entries))

    def _replace(self, entries: list) -> None:
        """Atomically make `entries` the whole journal (compaction, a dump
        received, conversion)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        offsets = self._write_fresh(tmp, entries)
        if hasattr(self, "_fd"):
            os.close(self._fd)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._entries = list(entries)
        self._offsets = offsets
        self._end = os.path.getsize(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        os.lseek(self._fd, self._end, os.SEEK_SET)
        self._unsynced = False
        self._synced_end = self._end
        self.fsyncs += 1
        record_synced_length(self.path, self._end)

    # ---------------------------------------------------- PySyncObj's interface

    def add(self, command, idx: int, term: int) -> None:
        command = bytes(command)
        if self._entries:
            assert idx == self._entries[-1][1] + 1, (idx, self._entries[-1][1])
        record = encode_record(command, idx, term)
        view = memoryview(record)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._entries.append((command, idx, term))
        self._offsets.append(self._end)
        self._end += len(record)
        self._unsynced = True

    def sync(self) -> None:
        """Make every record added so far durable (durability "fsync")."""
        if self._unsynced and self.durability == "fsync":
            os.fdatasync(self._fd)
            self._unsynced = False
            self._synced_end = self._end
            self.fsyncs += 1
            record_synced_length(self.path, self._end)

    def clear(self) -> None:
        # The dump that replaces these entries was just renamed into place:
        # make that durable before the entries go.
        fsync_dir(self.path.parent)
        self._replace([])

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 (PySyncObj's names)
        if entryFrom >= len(self._entries):
            return
        at = self._offsets[entryFrom]
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]
        os.ftruncate(self._fd, at)
        os.lseek(self._fd, at, os.SEEK_SET)
        self._end = at
        self._unsynced = True  # the cut must be durable before we acknowledge what replaces it

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802
        fsync_dir(self.path.parent)  # the dump that covers these entries, first
        self._replace(self._entries[entryTo:])

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.fsync(self._fd)
            record_synced_length(self.path, self._end)
            os.close(self._fd)
            self._fd = None
        if self._meta_dirty:
            self._store_meta()

    def flush(self) -> None:
        os.fsync(self._fd)
        self._unsynced = False
        self._synced_end = self._end
        record_synced_length(self.path, self._end)

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802
        # Not needed for safety (a restarted node learns it from the leader):
        # stored lazily, once a second.
        self._meta["commitIndex"] = raftCommitIndex
        self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        return self._meta["commitIndex"]

    def setCurrentTerm(self, term: int, votedForNodeId) -> None:  # noqa: N802
        if votedForNodeId is not None and (term, votedForNodeId) != (self._meta["term"], self._meta["votedFor"]):
            log.info(VOTE_LINE, term, votedForNodeId)  # tests check one vote per term, across restarts
        self._meta["term"] = term
        self._meta["votedFor"] = votedForNodeId
        self._store_meta()  # durable before any message reflects it

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._meta["term"]

    def getVotedForNodeId(self):  # noqa: N802
        return self._meta["votedFor"]

    def onOneSecondTimer(self) -> None:  # noqa: N802
        if self._meta_dirty:
            self._store_meta()

    # ----------------------------------------------------------------- meta

    def _load_meta(self) -> None:
        if not self.meta_path.exists():
            return
        try:
            meta = json.loads(self.meta_path.read_text())
            term, voted, commit = meta["term"], meta["votedFor"], meta["commitIndex"]
        except (ValueError, KeyError, TypeError) as e:
            raise JournalCorrupt(f"{self.meta_path}: unreadable ({e}): the node's term and vote are unknown") from None
        if not isinstance(term, int) or not isinstance(commit, int) or not (voted is None or isinstance(voted, str)):
            raise JournalCorrupt(f"{self.meta_path}: bad values {meta!r}")
        self._meta = {"term": term, "votedFor": voted, "commitIndex": commit}

    def _store_meta(self) -> None:
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self._meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.meta_path)
        fsync_dir(self.path.parent)
        self._meta_dirty = False


def install_sync_before_send(syncobj, journal) -> None:
    """Make `journal` durable before the SyncObj sends any message: an entry
    is then on disk before it is acknowledged or counted (group commit)."""
    transport = syncobj._SyncObj__transport
    send = transport.send
    sync = journal.sync

    def send_synced(node, message):
        sync()
        return send(node, message)

    transport.send = send_synced
