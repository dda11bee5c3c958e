"""One block's state transition: a committed proposal applied to an engine.

This is the whole of what a block *means*, shared by the Raft state machine
(`Replica.apply_block`, on every node) and the auditor (`dex.audit`, which
replays a stored chain through a fresh engine): both must compute exactly the
same header from the same parent and proposal, so there is one function.

A block's state is the engine and the replay guard (dex/ledger/replay.py):
each signed request is admitted by the guard before its commands reach the
engine; a request the guard refuses has each of its commands rejected whole.
A deposit or withdrawal with a client transfer id goes through the guard's
`transfers`, which applies it once per (account, id).

Deterministic: the block time is the proposal's, raised to the parent's when
the leader's clock went back; nothing here reads a clock, a random source or
anything but its arguments and the engine.
"""

from __future__ import annotations

from dex.core.commands import Deposit, Withdraw
from dex.ledger.codec import GENESIS_PARENT, NO_AUTH, BlockHeader, Proposal, encode_events, merkle_root
from dex.ledger.replay import ReplayGuard, rejected

_TRANSFERS = (Deposit, Withdraw)


def block_time_ms(parent: BlockHeader | None, proposal: Proposal) -> int:
    """The block's time: the leader's stamp, never before the parent's."""
    return proposal.time_ms if parent is None else max(proposal.time_ms, parent.time_ms)


def block_version(parent: BlockHeader | None, proposal: Proposal) -> int:
    """The block's header version: a chain keeps its first block's, which its
    proposal names (dex/ledger/codec.py, "Chain versions")."""
    return proposal.chain_version if parent is None else parent.version


def apply_proposal(engine, guard: ReplayGuard, parent: BlockHeader | None, parent_hash: bytes, proposal: Proposal, leaves: list[bytes]) -> tuple[BlockHeader, list[bytes], list]:
    """Apply every command of `proposal` to `engine` (mutating it and
    `guard`) at the block's time and return (header, each command's encoded events, each
    command's events). `leaves` are the commands' encodings from
    `decode_proposal`; `parent` is None for the first block, whose
    `parent_hash` is GENESIS_PARENT."""
    assert len(leaves) == len(proposal.commands), (len(leaves), len(proposal.commands))
    assert parent is not None or parent_hash == GENESIS_PARENT, parent_hash.hex()
    assert len(parent_hash) == 32
    time_ms = block_time_ms(parent, proposal)
    height = 1 if parent is None else parent.height + 1
    version = block_version(parent, proposal)
    guard.advance(time_ms)
    verdicts = [guard.admit(a.public_key, a.timestamp_ms, a.payload, time_ms) for a in proposal.auths]
    engine_apply = engine.apply
    transfers = guard.transfers

    def apply(cmd, time_ms):
        if cmd.__class__ in _TRANSFERS and cmd.transfer_id is not None:
            return transfers.apply(engine, cmd, time_ms, height)
        return engine_apply(cmd, time_ms)

    if not any(verdicts):
        # Every command but a transfer (places and cancels: nearly all)
        # straight to the engine: no Python frame of `apply` a command; map()
        # calls the compiled encoder without one either.
        results = [engine_apply(cmd, time_ms) if cmd.__class__ not in _TRANSFERS else apply(cmd, time_ms)
                   for cmd in proposal.commands]
    else:
        results = [
            apply(cmd, time_ms) if index == NO_AUTH or verdicts[index] is None else [rejected(cmd, verdicts[index])]
            for cmd, index in zip(proposal.commands, proposal.auth_index)
        ]
    encoded = list(map(encode_events, results))
    header = BlockHeader(
        height=height,
        parent=parent_hash,
        leader=proposal.leader,
        term=proposal.term,
        time_ms=time_ms,
        commands_count=len(proposal.commands),
        commands_root=merkle_root(leaves),
        results_root=merkle_root(encoded),
        state_hash=bytes.fromhex(engine.state_hash(version)),
        version=version,
    )
    return header, encoded, results
