"""Each node's ledger: a hash chain of blocks in one append-only file.

The chain outlives Raft's log: PySyncObj compacts its journal into snapshots,
but a node keeps every block it applied here, so history and the block
explorer survive restarts and compaction.

File layout (all integers little-endian):

    file    := magic "DEXCHAIN", u32 version, record*
    record  := u32 body_length, u32 crc32(body), body
    body    := u8 kind, u32 header_length, header, u32 proposal_length,
               proposal, results (the rest of the body)

kind 1 is a block. kind 2 is a *base*: only the first record of a file may be
one; it holds the header of the block the chain continues from after
`reset_to` (its proposal and results are empty: they are not held). Heights
in a file are consecutive from the base's (or from 1 when there is no base).

Durability. Each record goes out in one os.write on a file opened O_APPEND, so
a SIGKILL loses at most the record being written; nothing is fsynced per
record (the owner calls `flush` periodically). On open a torn tail (a last
record cut short or failing its crc) is cut off with a warning; a bad record
with good records after it is an error, never silently dropped history.
`reset_to` never deletes a file: the old one is kept as
`<name>.superseded-<height>`.

Memory. The index holds every header, but packed: per block, its record
offset (8 bytes), hash (32) and encoded header (~170), about 220 bytes rather
than the ~650 a BlockHeader object and its fields cost in CPython. `header()`
decodes on demand (a few microseconds); the head is kept decoded.

Read-only. `Chain(path, read_only=True)` (an auditor's view of a node's file,
the node perhaps still running) opens no write descriptor, never creates,
truncates or appends, and leaves a torn tail in the file: the index stops
before it and `torn_tail` says where and why.

Threads. Appends (and `reset_to`) come from one thread, reads from many. One
lock guards the index and the file descriptors; record bodies are read with
os.pread on a read-only descriptor, so reads never move the append position.
`flush` fsyncs a dup of the write descriptor outside the lock, so a slow disk
does not stall readers.

Invariants (`check_invariants`): heights consecutive from base_height + 1;
each stored header's parent is the previous hash (the base's hash for the
first block); offsets increase; the file ends where the index does.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import struct
import threading
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dex.ledger.durable import fsync_dir, record_synced_length
from dex.ledger.codec import GENESIS_PARENT, HEADER_VERSIONS, BlockHeader, CodecError, decode_header

log = logging.getLogger("dex.ledger.chain")

FILE_MAGIC = b"DEXCHAIN"
FILE_VERSION = 1
KIND_BLOCK = 1
KIND_BASE = 2
HASH_BYTES = 32

_FILE_HEAD = struct.Struct("<8sI")  # magic, version
_RECORD_HEAD = struct.Struct("<II")  # body length, crc32 of the body
_BODY_HEAD = struct.Struct("<BI")  # kind, header length
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
FILE_HEAD = _FILE_HEAD.pack(FILE_MAGIC, FILE_VERSION)

# An encoded header: version, height, parent, leader (u8 length + ASCII, a
# single 0 byte when absent), term, time_ms, n_commands and three roots.
HEADER_BYTES_MIN = 1 + 8 + HASH_BYTES + 1 + 8 + 8 + 4 + 3 * HASH_BYTES
HEADER_BYTES_MAX = HEADER_BYTES_MIN + 255
_HEADER_HEIGHT_AT = 1
_HEADER_PARENT_AT = _HEADER_HEIGHT_AT + 8
BODY_BYTES_MIN = _BODY_HEAD.size + HEADER_BYTES_MIN + _U32.size
# Not 1 MiB: one block's results can legitimately exceed it (a single taker
# may make TRADES_PER_ORDER_MAX = 10,000 trades, about 2 MB of events). A
# length above this is corruption on read and a refused block on append.
BODY_BYTES_MAX = 64 * 1024 * 1024
PROBLEMS_MAX = 1000  # verify() stops listing after this many
SUPERSEDED_COPIES_MAX = 1000  # .superseded-<h>, .superseded-<h>.1, ...

assert HEADER_BYTES_MIN < HEADER_BYTES_MAX < BODY_BYTES_MAX < 2**32
assert len(FILE_HEAD) == 12


class ChainError(Exception):
    """A block that does not extend or agree with the chain, or a chain file
    that cannot be trusted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBlock:
    header: BlockHeader
    hash: bytes  # sha256 of header.encode() == header.hash
    proposal: bytes  # the encoded proposal (commands + auths), opaque here
    results: bytes  # the encoded results, opaque here


def encode_record(kind: int, header_bytes: bytes, proposal: bytes, results: bytes) -> bytes:
    """One record, ready for a single os.write."""
    assert kind in (KIND_BLOCK, KIND_BASE)
    assert HEADER_BYTES_MIN <= len(header_bytes) <= HEADER_BYTES_MAX
    body = b"".join((_BODY_HEAD.pack(kind, len(header_bytes)), header_bytes, _U32.pack(len(proposal)), proposal, results))
    return _RECORD_HEAD.pack(len(body), zlib.crc32(body)) + body


def _short(h: bytes | None) -> str:
    return "?" if h is None else h.hex()


def _body_parts(body) -> tuple[int, int, int] | None:
    """(kind, header_length, proposal_length) if the body's lengths fit in it."""
    kind, header_length = _BODY_HEAD.unpack_from(body, 0)
    if not HEADER_BYTES_MIN <= header_length <= HEADER_BYTES_MAX:
        return None
    at = _BODY_HEAD.size + header_length
    if at + _U32.size > len(body):
        return None
    (proposal_length,) = _U32.unpack_from(body, at)
    if at + _U32.size + proposal_length > len(body):
        return None
    return kind, header_length, proposal_length


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written != len(data):  # a regular file writes short only when the disk is full
        raise OSError(f"short write: {written} of {len(data)} bytes")


def _mapped(fd: int, size: int, read):
    """read(memoryview of the file's first `size` bytes), through mmap.

    An exception's traceback keeps the reader's frames, and their slices of
    the map, alive; the map cannot close under them. So the tracebacks are
    dropped before the map closes and the exception is raised after."""
    failure: BaseException | None = None
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            result = read(buf)
        except Exception as e:
            failure = e
            chained: BaseException | None = e
            for _ in range(16):  # a bounded walk down __cause__/__context__
                if chained is None:
                    break
                chained.__traceback__ = None
                chained = chained.__cause__ or chained.__context__
            del e
        finally:
            buf.release()
    if failure is not None:
        raise failure
    return result


class _Index:
    """What open learns from a file: the packed index and where it ends."""

    __slots__ = ("base_header", "base_hash", "offsets", "hashes", "headers", "header_ends", "end", "links_broken")

    def __init__(self) -> None:
        self.base_header: BlockHeader | None = None
        self.base_hash = GENESIS_PARENT
        self.offsets = array("Q")  # record offset per block
        self.hashes = bytearray()  # 32 bytes per block
        self.headers = bytearray()  # encoded headers, back to back
        self.header_ends = array("Q")  # end of each header in `headers`
        self.end = len(FILE_HEAD)  # offset after the last good record
        self.links_broken: list[int] = []  # heights whose parent is not the previous hash


def _scan(buf: memoryview, size: int) -> tuple[_Index, str | None]:
    """Index the records in buf[:size]. Returns the index and, if the file
    ends in a torn record, why (the caller cuts the file at index.end).
    Raises ChainError for a bad record that is not the last."""
    index = _Index()
    crc32 = zlib.crc32
    sha256 = hashlib.sha256
    unpack_record_head = _RECORD_HEAD.unpack_from
    offsets_append = index.offsets.append
    header_ends_append = index.header_ends.append
    hashes = index.hashes
    headers = index.headers
    at = len(FILE_HEAD)
    height_expected = 1
    hash_previous = GENESIS_PARENT
    while at < size:
        if size - at < _RECORD_HEAD.size:
            index.end = at
            return index, f"{size - at} bytes, less than a record head"
        length, crc = unpack_record_head(buf, at)
        stop = at + _RECORD_HEAD.size + length
        if not BODY_BYTES_MIN <= length <= BODY_BYTES_MAX:
            # A torn append leaves zeros (the file grew, the data never
            # landed); anything else is damage we must not cut away.
            if size - at <= _RECORD_HEAD.size + BODY_BYTES_MAX and not buf[at:size].tobytes().strip(b"\0"):
                index.end = at
                return index, f"{size - at} zero bytes"
            raise ChainError(f"record at offset {at} (block {height_expected}): length {length} out of bounds")
        if stop > size:
            index.end = at
            return index, f"a record of {length} bytes cut at {size - at - _RECORD_HEAD.size}"
        body = buf[at + _RECORD_HEAD.size : stop]
        if crc32(body) != crc:
            if stop == size:
                index.end = at
                return index, f"a record of {length} bytes failing its crc"
            raise ChainError(f"record at offset {at} (block {height_expected}): crc mismatch, and records follow it")
        parts = _body_parts(body)
        if parts is None:
            raise ChainError(f"record at offset {at} (block {height_expected}): lengths inside the body do not fit")
        kind, header_length, _ = parts
        header_bytes = body[_BODY_HEAD.size : _BODY_HEAD.size + header_length]
        if header_bytes[0] not in HEADER_VERSIONS:
            raise ChainError(f"record at offset {at} (block {height_expected}): header version {header_bytes[0]}")
        (height,) = _U64.unpack_from(header_bytes, _HEADER_HEIGHT_AT)
        block_hash = sha256(header_bytes).digest()
        if kind == KIND_BASE:
            if at != len(FILE_HEAD) or height == 0:
                raise ChainError(f"record at offset {at}: a base record (height {height}) that is not the first record")
            try:
                index.base_header = decode_header(header_bytes)[0]
            except CodecError as e:
                raise ChainError(f"record at offset {at}: base header undecodable: {e}") from e
            index.base_hash = block_hash
        elif kind == KIND_BLOCK:
            if height != height_expected:
                raise ChainError(f"record at offset {at}: holds block {height}, expected block {height_expected}")
            if header_bytes[_HEADER_PARENT_AT : _HEADER_PARENT_AT + HASH_BYTES] != hash_previous:
                index.links_broken.append(height)
            offsets_append(at)
            hashes += block_hash
            headers += header_bytes
            header_ends_append(len(headers))
        else:
            raise ChainError(f"record at offset {at} (block {height_expected}): unknown kind {kind}")
        height_expected = height + 1
        hash_previous = block_hash
        at = stop
    index.end = at
    return index, None


class Chain:
    """One node's chain of blocks, in the file at `path` (see the module
    docstring for the format and the guarantees)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        self.read_only = read_only
        self.torn_tail: tuple[int, str] | None = None  # read-only: (offset, why) of a tail left in place
        if read_only:
            self._write_fd = -1
            self._read_fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)  # FileNotFoundError if none
            try:
                self._load(False)
            except BaseException:
                os.close(self._read_fd)
                raise
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        created = not self._path.exists()
        self._write_fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._read_fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(self._write_fd)
            raise
        try:
            self._load(created)
            os.fsync(self._write_fd)  # what a previous run left in the page cache, durable from here on
            record_synced_length(self._path, self._size_locked())
        except BaseException:
            os.close(self._read_fd)
            os.close(self._write_fd)
            raise

    # ------------------------------------------------------------------ open

    def _load(self, created: bool) -> None:
        size = os.fstat(self._read_fd).st_size
        if size < len(FILE_HEAD) and self.read_only:
            raise ChainError(f"{self._path}: {size} bytes, not a chain file (no file head)")
        if size < len(FILE_HEAD):
            if FILE_HEAD[:size] != os.pread(self._read_fd, size, 0):
                raise ChainError(f"{self._path}: {size} bytes that are not a chain file")
            if size:
                log.warning("%s: file head cut at %d bytes; rewriting it", self._path, size)
                os.ftruncate(self._write_fd, 0)
            _write_all(self._write_fd, FILE_HEAD)
            os.fsync(self._write_fd)
            if created:
                fsync_dir(self._path.parent)
            self._install(_Index())
            return
        head = os.pread(self._read_fd, len(FILE_HEAD), 0)
        magic, version = _FILE_HEAD.unpack(head)
        if magic != FILE_MAGIC:
            raise ChainError(f"{self._path}: not a chain file (magic {magic!r})")
        if version != FILE_VERSION:
            raise ChainError(f"{self._path}: chain file version {version}, this code reads {FILE_VERSION}")
        index, torn = _mapped(self._read_fd, size, lambda buf: _scan(buf, size))
        if torn is not None and self.read_only:
            self.torn_tail = (index.end, torn)
        elif torn is not None:
            log.warning("%s: cut a torn tail at offset %d (%d bytes: %s); the chain continues from block %d", self._path, index.end, size - index.end, torn, (index.base_header.height if index.base_header else 0) + len(index.offsets))
            os.ftruncate(self._write_fd, index.end)
        if index.links_broken:
            log.warning("%s: %d blocks whose parent is not the previous block's hash, the first at height %d; run verify()", self._path, len(index.links_broken), index.links_broken[0])
        self._install(index)

    def _install(self, index: _Index) -> None:
        self._base_header = index.base_header
        self._base_hash = index.base_hash
        self._base_height = index.base_header.height if index.base_header else 0
        self._offsets = index.offsets
        self._hashes = index.hashes
        self._headers = index.headers
        self._header_ends = index.header_ends
        self._end = index.end
        self._head = self._decode_header_at(len(self._offsets) - 1) if self._offsets else self._base_header

    def _decode_header_at(self, i: int) -> BlockHeader:
        start = self._header_ends[i - 1] if i else 0
        return decode_header(bytes(self._headers[start : self._header_ends[i]]))[0]

    # ----------------------------------------------------------------- reads

    @property
    def path(self) -> Path:
        return self._path

    @property
    def height(self) -> int:
        with self._lock:
            return self._base_height + len(self._offsets)

    @property
    def base_height(self) -> int:
        with self._lock:
            return self._base_height

    @property
    def head(self) -> BlockHeader | None:
        with self._lock:
            return self._head

    @property
    def head_hash(self) -> bytes:
        with self._lock:
            return self._head_hash_locked()

    def _head_hash_locked(self) -> bytes:
        n = len(self._offsets)
        return bytes(self._hashes[(n - 1) * HASH_BYTES : n * HASH_BYTES]) if n else self._base_hash

    def _hash_locked(self, height: int) -> bytes | None:
        """The stored hash at `height`, the base's included; None if not held."""
        if height == self._base_height and self._base_header is not None:
            return self._base_hash
        i = height - self._base_height - 1
        if not 0 <= i < len(self._offsets):
            return None
        return bytes(self._hashes[i * HASH_BYTES : (i + 1) * HASH_BYTES])

    def hash_at(self, height: int) -> bytes | None:
        """The hash of the block at `height` (the base's included), None if not held."""
        with self._lock:
            return self._hash_locked(height)

    def header(self, height: int) -> BlockHeader | None:
        with self._lock:
            if height == self._base_height and self._base_header is not None:
                return self._base_header
            i = height - self._base_height - 1
            n = len(self._offsets)
            if not 0 <= i < n:
                return None
            if i == n - 1:
                return self._head
            start = self._header_ends[i - 1] if i else 0
            raw = bytes(self._headers[start : self._header_ends[i]])
        return decode_header(raw)[0]

    def get(self, height: int) -> StoredBlock | None:
        with self._lock:
            self._check_open()
            i = height - self._base_height - 1
            n = len(self._offsets)
            if not 0 <= i < n:
                return None
            offset = self._offsets[i]
            stop = self._offsets[i + 1] if i + 1 < n else self._end
            block_hash = bytes(self._hashes[i * HASH_BYTES : (i + 1) * HASH_BYTES])
            # Under the lock: reset_to closes this descriptor, and a closed
            # number can be reused by another file.
            record = os.pread(self._read_fd, stop - offset, offset)
        return self._decode_record(height, offset, record, block_hash)

    def _decode_record(self, height: int, offset: int, record: bytes, block_hash: bytes) -> StoredBlock:
        where = f"block {height} (offset {offset}) in {self._path}"
        if len(record) < _RECORD_HEAD.size + BODY_BYTES_MIN:
            raise ChainError(f"{where}: the file ends {len(record)} bytes into the record")
        length, crc = _RECORD_HEAD.unpack_from(record, 0)
        body = memoryview(record)[_RECORD_HEAD.size :]
        if length != len(body) or zlib.crc32(body) != crc:
            raise ChainError(f"{where}: crc mismatch on read (the file changed after it was opened)")
        parts = _body_parts(body)
        assert parts is not None and parts[0] == KIND_BLOCK, where  # its crc is good: we wrote it
        _, header_length, proposal_length = parts
        header_bytes = body[_BODY_HEAD.size : _BODY_HEAD.size + header_length]
        if hashlib.sha256(header_bytes).digest() != block_hash:
            raise ChainError(f"{where}: the stored header is not the indexed one (the file was replaced?)")
        header = decode_header(header_bytes)[0]
        assert header.height == height, where
        at = _BODY_HEAD.size + header_length + _U32.size
        return StoredBlock(header=header, hash=block_hash, proposal=bytes(body[at : at + proposal_length]), results=bytes(body[at + proposal_length :]))

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]:
        """Blocks at heights start..stop-1 that the chain holds, in order."""
        height = max(start, self.base_height + 1)
        while height < stop:
            block = self.get(height)
            if block is None:  # past the head (or a reset_to moved the base)
                return
            yield block
            height += 1

    # ---------------------------------------------------------------- writes

    def append(self, header: BlockHeader, proposal: bytes, results: bytes) -> bytes:
        """Store a block that extends the head, or confirm a replay of one
        already stored. Returns the block's hash."""
        assert header.height >= 1, header.height
        assert isinstance(proposal, (bytes, bytearray)) and isinstance(results, (bytes, bytearray))
        header_bytes = header.encode()
        block_hash = hashlib.sha256(header_bytes).digest()
        with self._lock:
            self._check_writable()
            height = self._base_height + len(self._offsets)
            if header.height == height + 1:
                head_hash = self._head_hash_locked()
                if header.parent != head_hash:
                    raise ChainError(f"block {header.height}: parent {header.parent.hex()} is not the head's hash {head_hash.hex()} (block {height})")
                record = encode_record(KIND_BLOCK, header_bytes, proposal, results)
                if len(record) - _RECORD_HEAD.size > BODY_BYTES_MAX:
                    raise ChainError(f"block {header.height}: {len(record)} bytes, over the record bound of {BODY_BYTES_MAX}")
                offset = self._end
                try:
                    _write_all(self._write_fd, record)
                except OSError:
                    os.ftruncate(self._write_fd, offset)  # no half record for the next append to follow
                    raise
                self._end = offset + len(record)
                self._offsets.append(offset)
                self._hashes += block_hash
                self._headers += header_bytes
                self._header_ends.append(len(self._headers))
                self._head = header
                return block_hash
            if header.height > height:
                raise ChainError(f"block {header.height}: the chain's head is block {height}; blocks {height + 1}..{header.height - 1} are missing")
            if header.height < self._base_height:
                return block_hash  # history before the base is not kept
            stored = self._hash_locked(header.height)
            assert stored is not None
            if stored != block_hash:
                raise ChainError(f"block {header.height} differs from the stored one: {block_hash.hex()} != stored {stored.hex()} — replicas diverged")
            return block_hash

    def reset_to(self, header: BlockHeader) -> None:
        """Continue the chain from `header` (a Raft snapshot's block, ahead of
        this chain). If the chain already holds exactly that block nothing
        changes; otherwise the file is kept as `<name>.superseded-<height>` and
        a new one starts with a base record holding `header`."""
        assert header.height >= 1, header.height
        header_bytes = header.encode()
        block_hash = hashlib.sha256(header_bytes).digest()
        with self._lock:
            self._check_writable()
            height = self._base_height + len(self._offsets)
            stored = self._hash_locked(header.height)
            if stored == block_hash:
                log.info("%s: reset_to block %d, which the chain holds (head %d): nothing to do", self._path, header.height, height)
                return
            if stored is not None:
                log.error("%s: reset_to block %d %s, but the chain holds %s there — replicas diverged; superseding the chain", self._path, header.height, block_hash.hex(), stored.hex())
            fresh = self._path.with_name(self._path.name + ".new")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                _write_all(fd, FILE_HEAD + encode_record(KIND_BASE, header_bytes, b"", b""))
                os.fsync(fd)
            finally:
                os.close(fd)
            superseded = self._superseded_path(height)
            os.fsync(self._write_fd)  # the old tail is history now: make it durable
            try:
                # A link then an atomic replace: a crash leaves either the old
                # chain or the new one at `path`, never no file.
                os.link(self._path, superseded)
                os.replace(fresh, self._path)
            except OSError:
                if superseded.exists() or not self._path.exists():
                    raise
                os.rename(self._path, superseded)  # a filesystem without hard links
                os.replace(fresh, self._path)
            fsync_dir(self._path.parent)
            os.close(self._read_fd)
            os.close(self._write_fd)
            self._write_fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            self._read_fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            index = _Index()
            index.base_header = header
            index.base_hash = block_hash
            index.end = len(FILE_HEAD) + len(encode_record(KIND_BASE, header_bytes, b"", b""))
            self._install(index)
            log.warning("%s: chain reset to block %d (was at %d); the old file is kept as %s", self._path, header.height, height, superseded.name)

    def _superseded_path(self, height: int) -> Path:
        name = f"{self._path.name}.superseded-{height}"
        for copy in range(SUPERSEDED_COPIES_MAX):
            candidate = self._path.with_name(name if copy == 0 else f"{name}.{copy}")
            if not candidate.exists():
                return candidate
        raise ChainError(f"{self._path}: {SUPERSEDED_COPIES_MAX} superseded copies at height {height} already")

    def flush(self) -> None:
        """Make every appended block durable (os.fsync)."""
        with self._lock:
            self._check_writable()
            fd = os.dup(self._write_fd)  # fsync outside the lock: readers need not wait for the disk
            size = self._size_locked()
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        record_synced_length(self._path, size)

    def _size_locked(self) -> int:
        return os.fstat(self._write_fd).st_size

    def close(self) -> None:
        """fsync and close; a second close does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.read_only:
                os.close(self._read_fd)
                return
            try:
                os.fsync(self._write_fd)
                record_synced_length(self._path, self._size_locked())
            finally:
                os.close(self._read_fd)
                os.close(self._write_fd)

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self._path}: chain is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ValueError(f"{self._path}: chain is open read-only")

    # ---------------------------------------------------------------- checks

    def verify(self) -> list[str]:
        """Re-read the whole file and check every record: its crc, that it
        decodes, that heights are consecutive, that each header's parent is
        the previous block's hash, and that it is what the index holds.
        Returns the problems found, each naming a height; empty means sound."""
        with self._lock:
            self._check_open()
            end = self._end  # appends may be landing past it: not ours to judge
            base_height = self._base_height
            offsets = array("Q", self._offsets)
            hashes = bytes(self._hashes)
        problems: list[str] = []
        with open(self._path, "rb") as f:
            size = min(os.fstat(f.fileno()).st_size, end)
            if size < end:
                problems.append(f"block {base_height + 1}+: the file is {size} bytes, the index expects {end}")
            if size < len(FILE_HEAD):
                problems.append("block 0: the file head is missing")
                return problems
            _mapped(f.fileno(), size, lambda buf: _verify_records(buf, size, base_height, offsets, hashes, problems))
        if len(problems) > PROBLEMS_MAX:
            problems[PROBLEMS_MAX:] = [f"... and {len(problems) - PROBLEMS_MAX} more problems"]
        return problems

    def check_invariants(self) -> None:
        """The index's promises, in memory (O(height)); raises AssertionError."""
        with self._lock:
            n = len(self._offsets)
            assert len(self._hashes) == n * HASH_BYTES
            assert len(self._header_ends) == n
            assert self._base_height == (self._base_header.height if self._base_header else 0)
            assert self._base_header is None or self._base_header.hash == self._base_hash
            previous = self._base_hash
            for i in range(n):
                header = self._decode_header_at(i)
                assert header.height == self._base_height + 1 + i, (i, header.height)
                assert header.parent == previous, f"block {header.height}: broken parent link"
                previous = self._hashes[i * HASH_BYTES : (i + 1) * HASH_BYTES]
                assert header.hash == previous, f"block {header.height}: indexed hash"
                assert i == 0 or self._offsets[i - 1] < self._offsets[i]
            assert n == 0 or self._offsets[-1] < self._end
            assert self._head == (self._decode_header_at(n - 1) if n else self._base_header)
            if self.read_only:
                assert self._closed or os.fstat(self._read_fd).st_size >= self._end
            else:
                assert self._closed or os.fstat(self._write_fd).st_size == self._end


def _verify_records(buf: memoryview, size: int, base_height: int, offsets: array, hashes: bytes, problems: list[str]) -> None:
    magic, version = _FILE_HEAD.unpack_from(buf, 0)
    if magic != FILE_MAGIC or version != FILE_VERSION:
        problems.append(f"block 0: file head {magic!r} version {version}")
    at = len(FILE_HEAD)
    height = 1  # the height the next record should hold
    hash_previous: bytes | None = GENESIS_PARENT  # None: unknown, after a bad record
    blocks = 0
    while at < size and len(problems) <= PROBLEMS_MAX:
        where = f"block {height} (offset {at})"
        if size - at < _RECORD_HEAD.size:
            problems.append(f"{where}: {size - at} bytes, less than a record head")
            return
        length, crc = _RECORD_HEAD.unpack_from(buf, at)
        stop = at + _RECORD_HEAD.size + length
        if not BODY_BYTES_MIN <= length <= BODY_BYTES_MAX or stop > size:
            problems.append(f"{where}: record length {length} does not fit; the rest of the file is unreadable")
            return
        body = buf[at + _RECORD_HEAD.size : stop]
        at, record_at = stop, at
        if zlib.crc32(body) != crc:
            problems.append(f"{where}: crc mismatch")
            height, hash_previous = height + 1, None
            blocks += 1  # most likely a block: keep the count aligned with the index
            continue
        parts = _body_parts(body)
        header = None
        if parts is not None:
            header_bytes = bytes(body[_BODY_HEAD.size : _BODY_HEAD.size + parts[1]])
            try:
                header, used = decode_header(header_bytes)
            except CodecError as e:
                problems.append(f"{where}: header undecodable: {e}")
            else:
                if used != len(header_bytes) or header.encode() != header_bytes:
                    problems.append(f"{where}: header is not in its canonical encoding")
        else:
            problems.append(f"{where}: lengths inside the record do not fit")
        if header is None:
            height, hash_previous = height + 1, None
            blocks += 1
            continue
        block_hash = hashlib.sha256(header_bytes).digest()
        kind = parts[0]
        if kind == KIND_BASE:
            if record_at != len(FILE_HEAD):
                problems.append(f"block {header.height} (offset {record_at}): a base record that is not the first")
            elif header.height != base_height:
                problems.append(f"block {header.height}: base record, but the index's base is {base_height}")
        elif kind == KIND_BLOCK:
            if header.height != height:
                problems.append(f"block {height} (offset {record_at}): the record holds block {header.height}")
            if hash_previous is not None and header.parent != hash_previous:
                problems.append(f"block {header.height}: parent {header.parent.hex()} is not the hash of block {header.height - 1} {hash_previous.hex()}")
            i = header.height - base_height - 1
            if not 0 <= i < len(offsets):
                problems.append(f"block {header.height} (offset {record_at}): not in the index (heights {base_height + 1}..{base_height + len(offsets)})")
            elif offsets[i] != record_at or hashes[i * HASH_BYTES : (i + 1) * HASH_BYTES] != block_hash:
                problems.append(f"block {header.height} (offset {record_at}): differs from the copy in the index")
            blocks += 1
        else:
            problems.append(f"block {header.height} (offset {record_at}): unknown record kind {kind}")
        height, hash_previous = header.height + 1, block_hash
    if blocks != len(offsets):
        problems.append(f"block {base_height + blocks + 1}: the file holds {blocks} blocks, the index {len(offsets)}")
