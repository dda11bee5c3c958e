"""An attacker's edits to a chain file: records rewritten in place with a
valid crc, so the file still opens and only the content is wrong.

The record layout is rebuilt here from the format in dex/ledger/chain.py's
docstring (not imported), so these edits do not trust the code under test:

    file    := magic "DEXCHAIN", u32 version, record*
    record  := u32 body_length, u32 crc32(body), body
    body    := u8 kind, u32 header_length, header, u32 proposal_length,
               proposal, results
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

FILE_HEAD_BYTES = 12
RECORD_HEAD = struct.Struct("<II")
HASH_BYTES = 32


def records(data: bytes) -> list[tuple[int, int]]:
    """(offset, body length) of each record, walking the length fields."""
    out, at = [], FILE_HEAD_BYTES
    while at + RECORD_HEAD.size <= len(data):
        (length,) = struct.unpack_from("<I", data, at)
        out.append((at, length))
        at += RECORD_HEAD.size + length
    return out


def rewrite_body(path: Path, height: int, edit: Callable[[bytearray, int, int], None]) -> None:
    """Apply `edit(body, header_at, proposal_at)` to block `height`'s record
    (the chain must have no base record) and fix up its crc."""
    data = bytearray(path.read_bytes())
    at, length = records(bytes(data))[height - 1]
    body = bytearray(data[at + RECORD_HEAD.size : at + RECORD_HEAD.size + length])
    (header_length,) = struct.unpack_from("<I", body, 1)
    header_at = 5
    proposal_at = header_at + header_length + 4
    (stored_height,) = struct.unpack_from("<Q", body, header_at + 1)
    assert stored_height == height, (stored_height, height)
    edit(body, header_at, proposal_at)
    assert len(body) == length, "an edit must keep the record's length"
    data[at : at + RECORD_HEAD.size] = RECORD_HEAD.pack(length, zlib.crc32(body))
    data[at + RECORD_HEAD.size : at + RECORD_HEAD.size + length] = body
    path.write_bytes(bytes(data))


def proposal_bytes(path: Path, height: int) -> bytes:
    data = path.read_bytes()
    at, _ = records(data)[height - 1]
    body = data[at + RECORD_HEAD.size :]
    (header_length,) = struct.unpack_from("<I", body, 1)
    proposal_at = 5 + header_length + 4
    (proposal_length,) = struct.unpack_from("<I", body, 5 + header_length)
    return body[proposal_at : proposal_at + proposal_length]


def flip_proposal_byte(path: Path, height: int, offset_in_proposal: int) -> None:
    def edit(body: bytearray, header_at: int, proposal_at: int) -> None:
        body[proposal_at + offset_in_proposal] ^= 0x01

    rewrite_body(path, height, edit)


def replace_in_proposal(path: Path, height: int, old: bytes, new: bytes) -> None:
    """Replace the first `old` in block `height`'s proposal by `new` (same length)."""
    assert len(old) == len(new)

    def edit(body: bytearray, header_at: int, proposal_at: int) -> None:
        at = body.find(old, proposal_at)
        assert at >= 0, f"{old!r} not in block {height}'s proposal"
        body[at : at + len(old)] = new

    rewrite_body(path, height, edit)


def alter_state_hash(path: Path, height: int) -> None:
    """Flip a bit of the state hash, the last 32 bytes of the header."""

    def edit(body: bytearray, header_at: int, proposal_at: int) -> None:
        header_end = proposal_at - 4
        body[header_end - 1] ^= 0x01

    rewrite_body(path, height, edit)
