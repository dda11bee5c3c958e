"""A one-node Replica whose chain fails on a chosen block: the child process
of tests/unit/test_replica_fail_stop.py.

    python -m tests.unit.failing_chain_node CONFIG FAIL_AT BLOCKS [TIME_BASE_MS]

Proposes BLOCKS blocks, each one faucet deposit of 1 USDT to account 1,
through Raft (PySyncObj's real apply loop, with its retry on an exception).
The chain's append raises OSError("short write") from block FAIL_AT on
(FAIL_AT 0: never). Prints "applied <height>" each time the engine applies a
block's commands (from the engine, so a repeated application shows), then
"head <height> <usdt free of account 1>" and exits 0 if it is still alive once
every block is applied or after WAIT_S.
"""

from __future__ import annotations

import logging
import sys
import time

from dex.config import load_cluster
from dex.core.commands import Deposit
from dex.ledger.codec import NO_AUTH, assemble_proposal, compress_proposal, encode_command
from dex.ledger.replica import Replica

WAIT_S = 10.0
ACCOUNT = 1
ASSET = "USDT"


class FailingChain:
    """The real chain, but append fails from block `fail_at` on, as on a full disk."""

    def __init__(self, inner, fail_at: int) -> None:
        self._inner = inner
        self._fail_at = fail_at

    def append(self, header, proposal, results):
        if self._fail_at and header.height >= self._fail_at:
            raise OSError(f"short write: 0 of {len(proposal) + len(results)} bytes")
        return self._inner.append(header, proposal, results)

    def __getattr__(self, name):
        return getattr(self._inner, name)


TIME_BASE_MS = 1_000


def proposal(k: int, time_base_ms: int) -> bytes:
    raw = encode_command(Deposit(account=ACCOUNT, asset=ASSET, amount=1))
    return compress_proposal(assemble_proposal(leader="n1", term=1, time_ms=time_base_ms + k, auths=[], commands=[(NO_AUTH, raw)]))


def main(config: str, fail_at: int, blocks: int, time_base_ms: int = TIME_BASE_MS) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    replica = Replica(load_cluster(config), "n1")
    replica.chain = FailingChain(replica.chain, fail_at)
    engine_apply = replica.engine.apply

    def apply(command, block_time_ms):
        # replica.applied moves only after the block is stored: this is its height
        print(f"applied {replica.height + 1}", flush=True)
        return engine_apply(command, block_time_ms)

    replica.engine.apply = apply  # one command per block: one line per application
    deadline = time.monotonic() + WAIT_S
    while not replica._isReady() and time.monotonic() < deadline:
        time.sleep(0.05)
    start = replica.height
    for k in range(blocks):
        replica.apply_block(proposal(k, time_base_ms))
    while replica.height < start + blocks and time.monotonic() < deadline:
        time.sleep(0.01)
    print(f"head {replica.height} {replica.engine.balances(ACCOUNT)[ASSET][0]}", flush=True)
    replica.chain.flush()
    replica.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], *(int(a) for a in sys.argv[2:])))
