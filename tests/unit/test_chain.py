"""dex.ledger.chain: each node's hash chain of blocks on disk.

The file format is rebuilt here independently (`raw_record`) so the tests pin
it and can write chains that `Chain.append` would refuse to.
"""

from __future__ import annotations

import logging
import os
import random
import struct
import threading
import time
import zlib

import pytest

from dex.ledger.chain import Chain, ChainError, StoredBlock
from dex.ledger.codec import GENESIS_PARENT, BlockHeader

RAW_FILE_HEAD = b"DEXCHAIN" + struct.pack("<I", 1)
KIND_BLOCK, KIND_BASE = 1, 2
RECORD_HEAD_BYTES = 8

# ------------------------------------------------------------------ test kit


def make_header(height: int, parent: bytes, *, time_ms: int | None = None) -> BlockHeader:
    return BlockHeader(
        height=height,
        parent=parent,
        leader="n1",
        term=1,
        time_ms=1_000 * height if time_ms is None else time_ms,
        commands_count=0,
        commands_root=bytes(32),
        results_root=bytes(32),
        state_hash=bytes(32),
    )


def proposal_for(height: int) -> bytes:
    return f"proposal {height}".encode()


def results_for(height: int) -> bytes:
    return f"results {height};".encode() * (height % 3)  # sometimes empty


def append_blocks(chain: Chain, count: int) -> list[bytes]:
    hashes = []
    for _ in range(count):
        height = chain.height + 1
        hashes.append(chain.append(make_header(height, chain.head_hash), proposal_for(height), results_for(height)))
    return hashes


def raw_record(kind: int, header: BlockHeader, proposal: bytes = b"", results: bytes = b"") -> bytes:
    header_bytes = header.encode()
    body = struct.pack("<BI", kind, len(header_bytes)) + header_bytes + struct.pack("<I", len(proposal)) + proposal + results
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def record_offsets(path) -> list[int]:
    """Offset of each record in a chain file, walking the length fields."""
    data = path.read_bytes()
    offsets, at = [], len(RAW_FILE_HEAD)
    while at + RECORD_HEAD_BYTES <= len(data):
        offsets.append(at)
        (length,) = struct.unpack_from("<I", data, at)
        at += RECORD_HEAD_BYTES + length
    return offsets


def flip_byte(path, offset: int) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        (byte,) = os.pread(fd, 1, offset)
        os.pwrite(fd, bytes((byte ^ 0xFF,)), offset)
    finally:
        os.close(fd)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "node1" / "blocks.dat"


@pytest.fixture
def chain(path):
    c = Chain(path)
    yield c
    c.close()


# --------------------------------------------------------------- append, get


def test_a_new_chain_is_empty_and_creates_its_file(chain, path):
    # Arrange: the fixture opened a chain in a directory that did not exist.
    # Act / Assert
    assert path.exists()
    assert chain.height == 0 and chain.base_height == 0
    assert chain.head is None
    assert chain.head_hash == GENESIS_PARENT
    assert chain.get(1) is None and chain.header(0) is None and chain.header(1) is None
    assert chain.verify() == []


def test_append_then_get_returns_the_block(chain):
    # Arrange
    header = make_header(1, GENESIS_PARENT)

    # Act
    block_hash = chain.append(header, b"the proposal", b"the results")

    # Assert
    assert block_hash == header.hash
    assert chain.height == 1
    assert chain.head == header and chain.head_hash == header.hash
    assert chain.get(1) == StoredBlock(header=header, hash=header.hash, proposal=b"the proposal", results=b"the results")
    assert chain.header(1) == header
    assert chain.get(0) is None and chain.get(2) is None
    chain.check_invariants()


def test_blocks_yields_the_heights_that_exist(chain):
    # Arrange
    hashes = append_blocks(chain, 10)

    # Act
    blocks = list(chain.blocks(8, 20))

    # Assert
    assert [b.header.height for b in blocks] == [8, 9, 10]
    assert [b.hash for b in blocks] == hashes[7:]
    assert [b.proposal for b in blocks] == [proposal_for(h) for h in (8, 9, 10)]
    assert [b.results for b in blocks] == [results_for(h) for h in (8, 9, 10)]
    assert list(chain.blocks(-5, 3)) == [chain.get(1), chain.get(2)]
    assert list(chain.blocks(5, 5)) == []


def test_reopening_keeps_every_block(path):
    # Arrange
    chain = Chain(path)
    hashes = append_blocks(chain, 50)
    chain.close()

    # Act
    reopened = Chain(path)

    # Assert
    assert reopened.height == 50
    assert reopened.head_hash == hashes[-1]
    assert [reopened.header(h).hash for h in range(1, 51)] == hashes
    assert [reopened.get(h).results for h in range(1, 51)] == [results_for(h) for h in range(1, 51)]
    assert reopened.verify() == []
    reopened.check_invariants()
    reopened.close()


def test_replaying_a_stored_block_returns_its_hash_and_writes_nothing(chain, path):
    # Arrange
    hashes = append_blocks(chain, 5)
    size_before = path.stat().st_size

    # Act
    replayed = chain.append(make_header(3, hashes[1]), proposal_for(3), results_for(3))

    # Assert
    assert replayed == hashes[2]
    assert path.stat().st_size == size_before
    assert chain.height == 5


def test_replaying_a_different_block_raises(chain):
    # Arrange
    hashes = append_blocks(chain, 5)

    # Act / Assert
    with pytest.raises(ChainError, match="block 3 differs from the stored one.*replicas diverged"):
        chain.append(make_header(3, hashes[1], time_ms=1), b"", b"")
    assert chain.height == 5


def test_a_wrong_parent_raises_naming_both_hashes(chain):
    # Arrange
    hashes = append_blocks(chain, 2)
    wrong = bytes(range(32))

    # Act / Assert
    with pytest.raises(ChainError, match=f"block 3: parent {wrong.hex()} is not the head's hash {hashes[1].hex()}"):
        chain.append(make_header(3, wrong), b"", b"")
    assert chain.height == 2


def test_the_first_block_must_have_the_genesis_parent(chain):
    # Act / Assert
    with pytest.raises(ChainError, match="block 1: parent"):
        chain.append(make_header(1, b"\x01" * 32), b"", b"")


def test_a_gap_raises(chain):
    # Arrange
    hashes = append_blocks(chain, 2)

    # Act / Assert
    with pytest.raises(ChainError, match="block 4: the chain's head is block 2"):
        chain.append(make_header(4, hashes[1]), b"", b"")
    assert chain.height == 2


# ------------------------------------------------------------ crash recovery


def test_a_truncated_tail_is_cut_on_open_and_the_chain_continues(path, caplog):
    # Arrange: the last record cut in its middle, as a SIGKILL mid-write leaves it.
    chain = Chain(path)
    hashes = append_blocks(chain, 5)
    chain.close()
    last = record_offsets(path)[-1]
    os.truncate(path, last + 20)

    # Act
    with caplog.at_level(logging.WARNING, logger="dex.ledger.chain"):
        reopened = Chain(path)

    # Assert
    assert "torn tail" in caplog.text
    assert reopened.height == 4 and reopened.head_hash == hashes[3]
    assert path.stat().st_size == last
    assert reopened.append(make_header(5, hashes[3]), proposal_for(5), results_for(5)) == hashes[4]
    assert reopened.get(5).proposal == proposal_for(5)
    assert reopened.verify() == []
    reopened.check_invariants()
    reopened.close()


def test_a_tail_record_failing_its_crc_is_cut_on_open(path, caplog):
    # Arrange
    chain = Chain(path)
    append_blocks(chain, 3)
    chain.close()
    flip_byte(path, path.stat().st_size - 1)

    # Act
    with caplog.at_level(logging.WARNING, logger="dex.ledger.chain"):
        reopened = Chain(path)

    # Assert
    assert "failing its crc" in caplog.text
    assert reopened.height == 2
    reopened.close()


def test_a_zero_filled_tail_is_cut_on_open(path):
    # Arrange: the file grew but the data never landed (power loss).
    chain = Chain(path)
    append_blocks(chain, 3)
    chain.close()
    with open(path, "ab") as f:
        f.write(bytes(300))

    # Act
    reopened = Chain(path)

    # Assert
    assert reopened.height == 3
    assert reopened.verify() == []
    reopened.close()


def test_a_corrupted_byte_in_a_middle_record_raises_on_open(path):
    # Arrange
    chain = Chain(path)
    append_blocks(chain, 5)
    chain.close()
    third = record_offsets(path)[2]
    flip_byte(path, third + 60)  # inside block 3's header

    # Act / Assert
    with pytest.raises(ChainError, match=f"offset {third} \\(block 3\\): crc mismatch"):
        Chain(path)


def test_a_file_that_is_not_a_chain_raises_on_open(path):
    # Arrange
    path.parent.mkdir(parents=True)
    path.write_bytes(b"something else entirely")

    # Act / Assert
    with pytest.raises(ChainError, match="not a chain file"):
        Chain(path)


# -------------------------------------------------------------------- verify


def test_verify_reports_a_record_altered_after_open(chain, path):
    # Arrange: a byte of block 3's proposal changes on disk under an open chain.
    append_blocks(chain, 5)
    third = record_offsets(path)[2]
    flip_byte(path, third + RECORD_HEAD_BYTES + 5 + len(make_header(3, GENESIS_PARENT).encode()) + 4)

    # Act
    problems = chain.verify()

    # Assert
    assert len(problems) == 1
    assert "block 3" in problems[0] and "crc mismatch" in problems[0]
    with pytest.raises(ChainError, match="block 3.*crc mismatch"):
        chain.get(3)
    assert chain.get(4).header.height == 4  # the others still read


def test_verify_reports_a_broken_parent_link(path, caplog):
    # Arrange: block 3 names a wrong parent, written bypassing append.
    headers = [make_header(1, GENESIS_PARENT)]
    headers.append(make_header(2, headers[0].hash))
    headers.append(make_header(3, b"\xaa" * 32))
    headers.append(make_header(4, headers[2].hash))
    path.parent.mkdir(parents=True)
    path.write_bytes(RAW_FILE_HEAD + b"".join(raw_record(KIND_BLOCK, h, b"p", b"r") for h in headers))
    with caplog.at_level(logging.WARNING, logger="dex.ledger.chain"):
        chain = Chain(path)

    # Act
    problems = chain.verify()

    # Assert
    assert "parent is not the previous block's hash, the first at height 3" in caplog.text
    assert problems == [f"block 3: parent {'aa' * 32} is not the hash of block 2 {headers[1].hash.hex()}"]
    with pytest.raises(AssertionError, match="block 3: broken parent link"):
        chain.check_invariants()
    chain.close()


def test_verify_reports_a_gap_in_heights_on_open(path):
    # Arrange: block 3 missing from the file.
    h1 = make_header(1, GENESIS_PARENT)
    h2 = make_header(2, h1.hash)
    h4 = make_header(4, bytes(32))
    path.parent.mkdir(parents=True)
    path.write_bytes(RAW_FILE_HEAD + raw_record(KIND_BLOCK, h1) + raw_record(KIND_BLOCK, h2) + raw_record(KIND_BLOCK, h4))

    # Act / Assert: heights must be consecutive for the index to exist at all.
    with pytest.raises(ChainError, match="holds block 4, expected block 3"):
        Chain(path)


# ------------------------------------------------------------------ reset_to


def test_reset_to_then_append_continues_from_the_base(chain, path):
    # Arrange
    append_blocks(chain, 3)
    base = make_header(100, b"\x07" * 32)

    # Act
    chain.reset_to(base)
    appended = chain.append(make_header(101, base.hash), proposal_for(101), results_for(101))

    # Assert
    assert chain.height == 101 and chain.base_height == 100
    assert chain.header(100) == base and chain.get(100) is None
    assert chain.get(101).hash == appended and chain.header(101).parent == base.hash
    assert chain.get(3) is None and chain.header(3) is None
    assert [b.header.height for b in chain.blocks(0, 200)] == [101]
    assert chain.verify() == []
    chain.check_invariants()
    chain.close()
    reopened = Chain(path)
    assert (reopened.height, reopened.base_height, reopened.head_hash) == (101, 100, appended)
    assert reopened.header(100) == base
    assert reopened.verify() == []
    reopened.close()


def test_reset_to_leaves_the_chain_at_the_base(chain):
    # Arrange
    append_blocks(chain, 2)
    base = make_header(50, b"\x07" * 32)

    # Act
    chain.reset_to(base)

    # Assert
    assert chain.height == chain.base_height == 50
    assert chain.head == base and chain.head_hash == base.hash
    assert chain.get(50) is None and chain.header(50) == base


def test_reset_to_keeps_the_superseded_file(chain, path):
    # Arrange
    hashes = append_blocks(chain, 3)

    # Act
    chain.reset_to(make_header(10, b"\x07" * 32))
    chain.reset_to(make_header(20, b"\x08" * 32))
    chain.reset_to(make_header(30, b"\x09" * 32))

    # Assert
    superseded = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    assert superseded == ["blocks.dat.superseded-10", "blocks.dat.superseded-20", "blocks.dat.superseded-3"]
    old = Chain(path.parent / "blocks.dat.superseded-3")
    assert old.height == 3 and old.head_hash == hashes[-1]
    old.close()


def test_reset_to_twice_from_the_same_height_keeps_both_files(chain, path):
    # Act
    chain.reset_to(make_header(10, b"\x07" * 32))
    chain.reset_to(make_header(5, b"\x08" * 32))
    chain.reset_to(make_header(10, b"\x09" * 32))

    # Assert
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["blocks.dat", "blocks.dat.superseded-0", "blocks.dat.superseded-10", "blocks.dat.superseded-5"]
    chain.reset_to(make_header(7, b"\x01" * 32))
    assert "blocks.dat.superseded-10.1" in {p.name for p in path.parent.iterdir()}


def test_reset_to_a_block_the_chain_holds_changes_nothing(chain, path):
    # Arrange
    hashes = append_blocks(chain, 5)

    # Act
    chain.reset_to(make_header(3, hashes[1]))

    # Assert: later appends of 4 and 5 are then replays.
    assert chain.height == 5 and chain.base_height == 0
    assert [p.name for p in path.parent.iterdir()] == ["blocks.dat"]
    assert chain.append(make_header(4, hashes[2]), b"", b"") == hashes[3]


def test_appending_below_the_base_returns_the_hash_unchecked(chain):
    # Arrange
    base = make_header(100, b"\x07" * 32)
    chain.reset_to(base)
    old = make_header(42, b"\x01" * 32)

    # Act / Assert
    assert chain.append(old, b"", b"") == old.hash
    assert chain.append(base, b"", b"") == base.hash
    with pytest.raises(ChainError, match="block 100 differs"):
        chain.append(make_header(100, b"\x08" * 32), b"", b"")
    assert chain.height == 100


# --------------------------------------------------------------- concurrency


def test_reads_during_appends_do_not_fail(chain):
    # Arrange
    seed = 20240611
    rng = random.Random(seed)
    errors: list[BaseException] = []
    done = threading.Event()
    reads = 0

    def reader() -> None:
        nonlocal reads
        try:
            while not done.is_set():
                height = chain.height
                if height == 0:
                    continue
                h = rng.randint(1, height)
                block = chain.get(h)
                assert block.header.height == h and block.hash == block.header.hash
                assert block.proposal == proposal_for(h) and block.results == results_for(h)
                assert chain.header(h) == block.header
                assert [b.header.height for b in chain.blocks(h, h + 3)][0] == h
                assert chain.head_hash != GENESIS_PARENT
                reads += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]

    # Act
    for t in threads:
        t.start()
    try:
        append_blocks(chain, 2_000)
        chain.flush()
    finally:
        done.set()
        for t in threads:
            t.join()

    # Assert
    assert errors == [], f"seed {seed}: {errors[0]!r}"
    assert reads > 0
    assert chain.height == 2_000
    assert chain.verify() == []
    chain.check_invariants()


# ---------------------------------------------------------------- open speed


def test_open_time_for_100k_blocks(path, capsys):
    # Arrange: 100,000 small blocks, each with a few bytes of body.
    blocks = 100_000
    chain = Chain(path)
    started = time.perf_counter()
    append_blocks(chain, blocks)
    append_s = time.perf_counter() - started
    chain.close()

    # Act
    started = time.perf_counter()
    reopened = Chain(path)
    open_s = time.perf_counter() - started
    started = time.perf_counter()
    problems = reopened.verify()
    verify_s = time.perf_counter() - started

    # Assert (nothing about speed: the figures are reported)
    assert reopened.height == blocks and problems == []
    assert reopened.get(blocks).proposal == proposal_for(blocks)
    reopened.close()
    with capsys.disabled():
        print(f"\nchain of {blocks:,} blocks ({path.stat().st_size / 1e6:.1f} MB): append {append_s:.2f} s, open {open_s:.3f} s, verify {verify_s:.2f} s")
