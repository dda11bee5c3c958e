"""The ledger's binary codec: commands, proposals, results and block headers.

Nothing here pickles. Every integer is fixed-width little-endian, every string
is a u8 length and ASCII bytes, and each encoding starts with a version or tag
byte so the format can grow. A decoder given bytes it did not produce raises
`CodecError`; it never returns a half-read value.

A *proposal* is what the leader replicates through Raft: one block's worth of
commands, the leader's id and term, and the block time it stamped. Every node
turns a committed proposal into a *block* by applying it: the block's header
adds height, parent hash, the roots over commands and results and the state
hash, which each node computes for itself and must agree on.

    proposal  := u8 version (1 or 3), str leader, u64 term, u64 time_ms,
                 u16 n_auth, auth*, u16 n_commands, (u16 auth_index, command)*
               | u8 version + 1 (2 or 4), deflate(the above without its
                 version byte)  (compress_proposal: what Raft carries for
                 proposals >= PROPOSAL_COMPRESS_MIN_BYTES)
    auth      := bytes32 public_key, u64 timestamp_ms, bytes64 signature,
                 u32 length, signed payload     (who authorized which commands)
    command   := u8 tag, fields      (dex/engine/wire.py)
    results   := per command: u16 n_events, event*      (dex/engine/wire.py)
    header    := u8 version (1 or 2), u64 height, bytes32 parent, str leader,
                 u64 term, u64 time_ms, u32 n_commands, bytes32 commands_root,
                 bytes32 results_root, bytes32 state_hash
    block hash = SHA-256(header)

Chain versions. A header of version v carries the engine's state hash of
version v (dex/engine/snapshot.py; version 2 hashes a book's levels as a set,
so a block no longer re-reads every level's record). A chain keeps the version
of its first block, and its first block takes the version its proposal names:
a proposal of version 1 or 2 begins a version-1 chain, 3 or 4 a version-2
chain. This build proposes version 3 or 4, so new chains are version 2, and it
replays, extends and audits version-1 chains as they are. Past the first block
a proposal's version names only its layout (the same in all four).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

# Proposals are deflated and inflated by ISA-L (the `isal` package, zlib's
# API and format): on a 100-order block (22.8 KB, 2.7 KB deflated) it inflates
# in 18 us where zlib takes 36, on every node, and deflates in 38 us where zlib
# takes 103, on the leader (docs/BENCHMARKS.md). Any inflater reads what
# either wrote: the commands root is over the inflated commands.
from isal import isal_zlib as zlib

from dex.engine import decode_commands as _decode_commands
from dex.engine import decode_events  # noqa: F401 (the codec's API)
from dex.engine import encode_command  # noqa: F401 (the codec's API)
from dex.engine import encode_events
from dex.engine import merkle_root as _engine_merkle_root
from dex.engine import sha256 as _sha256
from dex.engine.shared import CodecError
from dex.engine.wire import EVENTS_PER_COMMAND_MAX, NO_AUTH, decode_command  # noqa: F401 (the codec's API)
from dex.engine.wire import get_str as _get_str
from dex.engine.wire import put_str as _put_str

PROPOSAL_VERSION_V1 = 1  # a version-1 chain's (the chain versions above)
PROPOSAL_VERSION = 3  # the same layout; begins a version-2 chain
PROPOSAL_PLAIN_VERSIONS = (PROPOSAL_VERSION_V1, PROPOSAL_VERSION)
# Each plain version + 1: the same encoding after its version byte, deflated.
PROPOSAL_VERSION_ZLIB = PROPOSAL_VERSION + 1
PROPOSAL_DEFLATED_VERSIONS = (PROPOSAL_VERSION_V1 + 1, PROPOSAL_VERSION_ZLIB)
# Smaller proposals go as they are. A block of single orders carries a
# signature and key (96 random bytes) and a signed query string for every
# order, and deflates only about twofold: on the cluster benchmark's blocks
# (~16 orders, 5.3 KB) deflating cost the leader 139 us and inflating every
# node 29 us, against ~14 us per follower to carry the 2.6 KB it saved
# (Fernet and pickle both ways). A /batchOrders block (one signature, ~200
# bytes of JSON an order, 20 KB and more) deflates tenfold and stays past it.
PROPOSAL_COMPRESS_MIN_BYTES = 8192
PROPOSAL_INFLATED_BYTES_MAX = 1 << 20  # a deflated proposal may not inflate past this
HEADER_VERSIONS = (1, 2)  # = the state hash's versions
HEADER_VERSION = 2  # of new chains
COMMANDS_PER_BLOCK_MAX = 4096
AUTHS_PER_BLOCK_MAX = 4096
SIGNED_PAYLOAD_BYTES_MAX = 64 * 1024


# ------------------------------------------------------------------ primitives

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


# -------------------------------------------------------------------- commands
#
# A command's encoding is dex/engine/wire.py's (the engine's source, compiled
# with it): encode_command, decode_command, and decode_commands for a
# proposal's commands, from the engine that runs.


# ------------------------------------------------------------------- proposals


class Auth(NamedTuple):
    """A signature that authorized some of a block's commands. A NamedTuple
    (immutable, as the commands are): every node makes one for each request
    of every block, where a frozen dataclass's __init__ cost three times as
    much."""

    public_key: bytes  # 32 bytes, Ed25519
    timestamp_ms: int
    signature: bytes  # 64 bytes
    payload: bytes  # exactly the bytes that were signed


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    leader: str
    term: int
    time_ms: int
    commands: tuple  # of commands
    auth_index: tuple[int, ...]  # per command: index into auths, or NO_AUTH
    auths: tuple[Auth, ...] = ()
    # The header version of the chain this proposal would begin (its version
    # byte, 1 for proposals of version 1 or 2): read for a chain's first block only.
    chain_version: int = HEADER_VERSION


_PROPOSAL_HEAD = struct.Struct("<QQ")  # term, time_ms
_AUTH_HEAD = struct.Struct("<32sQ64sI")


def encode_proposal(p: Proposal) -> bytes:
    assert len(p.auth_index) == len(p.commands)
    return assemble_proposal(
        leader=p.leader,
        term=p.term,
        time_ms=p.time_ms,
        auths=p.auths,
        commands=[(index, encode_command(cmd)) for index, cmd in zip(p.auth_index, p.commands)],
        chain_version=p.chain_version,
    )


def encode_auth(a: Auth) -> bytes:
    return _AUTH_HEAD.pack(a.public_key, a.timestamp_ms, a.signature, len(a.payload)) + a.payload


def assemble_proposal(*, leader: str, term: int, time_ms: int, auths, commands: list[tuple[int, bytes]],
                      chain_version: int = HEADER_VERSION) -> bytes:
    """A proposal from commands already encoded (the block builder encodes each
    command once, when it arrives, to know the block's size). `auths` are Auth
    values or their encodings. `chain_version`: the header version of the chain
    it would begin (tests build version-1 chains with 1)."""
    if len(commands) > COMMANDS_PER_BLOCK_MAX or len(auths) > AUTHS_PER_BLOCK_MAX:
        raise CodecError("proposal over its bounds")
    if chain_version not in HEADER_VERSIONS:
        raise CodecError(f"chain version {chain_version}")
    out: list[bytes] = [bytes((PROPOSAL_VERSION if chain_version == 2 else PROPOSAL_VERSION_V1,))]
    _put_str(out, leader)
    out.append(_PROPOSAL_HEAD.pack(term, time_ms))
    out.append(_U16.pack(len(auths)))
    for a in auths:
        out.append(a if isinstance(a, bytes) else encode_auth(a))
    out.append(_U16.pack(len(commands)))
    for index, raw in commands:
        out.append(_U16.pack(index))
        out.append(raw)
    return b"".join(out)


PROPOSAL_OVERHEAD_BYTES = 1 + 256 + _PROPOSAL_HEAD.size + 2 + 2
COMMAND_OVERHEAD_BYTES = 2
AUTH_OVERHEAD_BYTES = _AUTH_HEAD.size


def compress_proposal(raw: bytes) -> bytes:
    """The replicated form of an assembled proposal: deflated when that pays.

    Raft moves entries of a few KB many times faster than entries of 20 KB,
    and a block's signed request bodies (JSON, ~160 bytes an order) deflate
    about tenfold. The commands root is over the inflated commands, so both
    forms make the same block."""
    if len(raw) < PROPOSAL_COMPRESS_MIN_BYTES or raw[0] not in PROPOSAL_PLAIN_VERSIONS:
        return raw
    deflated = zlib.compress(memoryview(raw)[1:], 1)
    if len(deflated) + 1 >= len(raw):
        return raw
    return bytes((raw[0] + 1,)) + deflated


def inflate_proposal(data: bytes) -> bytes:
    """A proposal in its plain form (version 1 or 3), inflating a deflated one
    within PROPOSAL_INFLATED_BYTES_MAX."""
    if not data or data[0] not in PROPOSAL_DEFLATED_VERSIONS:
        return data
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(memoryview(data)[1:], PROPOSAL_INFLATED_BYTES_MAX)
    except zlib.error as e:
        raise CodecError(f"bad deflated proposal: {e}") from e
    if inflater.unconsumed_tail or not inflater.eof:
        raise CodecError(f"deflated proposal inflates past {PROPOSAL_INFLATED_BYTES_MAX} bytes or is cut short")
    if inflater.unused_data:
        raise CodecError(f"{len(inflater.unused_data)} trailing bytes after a deflated proposal")
    return bytes((data[0] - 1,)) + body


def decode_proposal(data: bytes) -> tuple[Proposal, list[bytes]]:
    """Return the proposal and each command's encoded bytes (auth index
    included), which the commands root is computed over. Takes either form
    (plain or deflated, see compress_proposal)."""
    buf = memoryview(inflate_proposal(data))
    try:
        version = buf[0]
        if version not in PROPOSAL_PLAIN_VERSIONS:
            raise CodecError(f"proposal version {version}")
        leader, at = _get_str(buf, 1)
        term, time_ms = _PROPOSAL_HEAD.unpack_from(buf, at)
        at += _PROPOSAL_HEAD.size
        (n_auth,) = _U16.unpack_from(buf, at)
        at += 2
        auths = []
        for _ in range(n_auth):
            key, ts, sig, n = _AUTH_HEAD.unpack_from(buf, at)
            at += _AUTH_HEAD.size
            if n > SIGNED_PAYLOAD_BYTES_MAX or at + n > len(buf):
                raise CodecError("auth payload out of bounds")
            auths.append(Auth(key, ts, sig, bytes(buf[at : at + n])))
            at += n
        (n_cmd,) = _U16.unpack_from(buf, at)
        at += 2
        if n_cmd > COMMANDS_PER_BLOCK_MAX:
            raise CodecError("too many commands")
        commands, indexes, leaves, at = _decode_commands(buf, at, n_cmd, n_auth)
        if at != len(buf):
            raise CodecError(f"{len(buf) - at} trailing bytes")
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise CodecError(f"bad proposal: {e}") from e
    if leader is None:
        raise CodecError("proposal without a leader")
    return (
        Proposal(leader=leader, term=term, time_ms=time_ms, commands=tuple(commands), auth_index=tuple(indexes), auths=tuple(auths),
                 chain_version=2 if version == PROPOSAL_VERSION else 1),
        leaves,
    )


# --------------------------------------------------------------------- results
#
# A command's events as a block's results hold them: dex/engine/wire.py
# (encode_events and decode_events from the engine that runs).


# ---------------------------------------------------------------------- header


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockHeader:
    height: int
    parent: bytes  # 32 bytes; zeros for the first block
    leader: str
    term: int
    time_ms: int
    commands_count: int
    commands_root: bytes
    results_root: bytes
    state_hash: bytes
    version: int = HEADER_VERSION  # its chain's (HEADER_VERSIONS); the state hash's too

    def encode(self) -> bytes:
        out: list[bytes] = [_U8.pack(self.version), _U64.pack(self.height), self.parent]
        _put_str(out, self.leader)
        out.append(_HEADER_TAIL.pack(self.term, self.time_ms, self.commands_count, self.commands_root, self.results_root, self.state_hash))
        return b"".join(out)

    @property
    def hash(self) -> bytes:
        return _sha256(self.encode())


_HEADER_TAIL = struct.Struct("<QQI32s32s32s")
GENESIS_PARENT = bytes(32)


def decode_header(buf, at: int = 0) -> tuple[BlockHeader, int]:
    try:
        version = buf[at]
        if version not in HEADER_VERSIONS:
            raise CodecError(f"header version {version}")
        (height,) = _U64.unpack_from(buf, at + 1)
        parent = bytes(buf[at + 9 : at + 41])
        leader, at = _get_str(buf, at + 41)
        term, time_ms, n, croot, rroot, shash = _HEADER_TAIL.unpack_from(buf, at)
        at += _HEADER_TAIL.size
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise CodecError(f"bad header: {e}") from e
    return BlockHeader(height=height, parent=parent, leader=leader, term=term, time_ms=time_ms, commands_count=n, commands_root=croot, results_root=rroot, state_hash=shash, version=version), at


# The binary Merkle root of each header's commands_root and results_root:
# SHA-256(0x00 + leaf) a leaf, SHA-256(0x01 + left + right) a node, the last
# node of an odd level paired with itself, 32 zero bytes for no leaves. From
# the engine's build (dex/engine/digest.py): one C call a tree when compiled.
merkle_root = _engine_merkle_root
