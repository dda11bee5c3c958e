"""What the state hash reads a block, on a real chain (docs/BENCHMARKS.md,
"The state hash on the cluster's own blocks").

Replays a node's chain (`blocks.dat`, e.g. of a run kept with
`bench/cluster.py --keep`) with the pure engine, checking every header
against the stored one, and counts per block what the state hash hashed:
on a version-1 chain the bytes of level records that go into the book
digests (every level's, touched or not, for each book the block changed), on
a version-2 chain the level terms replaced in the books' level sums (the
levels the block touched; dex/engine/snapshot.py), the levels hashed from
their first order (new levels, and levels changed other than at the back)
with the queue entries walked and the bytes hashed, the bytes appended to
running level hashes, and the changed accounts. Counts, not
times: they do not depend on the machine.

    .venv/bin/python bench/state_hash_work.py --chain /tmp/dex-bench-XXXX/data/n2/blocks.dat
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["DEX_PURE_PYTHON"] = "1"  # the pure module's functions are the ones that can be wrapped
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dex.core.markets import load_markets  # noqa: E402
from dex.engine import IMPLEMENTATION, Engine  # noqa: E402
from dex.engine import snapshot  # noqa: E402
from dex.ledger.chain import Chain  # noqa: E402
from dex.ledger.codec import GENESIS_PARENT, decode_proposal  # noqa: E402
from dex.ledger.replay import ReplayGuard  # noqa: E402
from dex.ledger.state import apply_proposal  # noqa: E402

RECORD_BYTES = 40  # a level's part of its book digest's input: u64 price + its 32-byte digest


class Counts:
    def __init__(self) -> None:
        self.book_record_bytes = 0  # version 1
        self.level_terms = 0  # version 2 (and version 1's refresh keeps them too)
        self.fresh_levels = 0
        self.fresh_entries = 0  # queue entries walked, dead ones included
        self.fresh_bytes = 0
        self.appended_bytes = 0
        self.changed_accounts = 0

    def wrap(self) -> None:
        orders_bytes, book_digest, state_hash = snapshot._orders_bytes, snapshot._book_digest, snapshot.state_hash
        level_term = snapshot._level_term

        def counted_orders_bytes(orders, start, live_only):
            out = orders_bytes(orders, start, live_only)
            if start == 0 and live_only:  # a level hashed from its first order (_cache_level_digest)
                self.fresh_levels += 1
                self.fresh_entries += len(orders)
                self.fresh_bytes += len(out)
            else:
                self.appended_bytes += len(out)
            return out

        def counted_book_digest(book):
            out = book_digest(book)
            self.book_record_bytes += RECORD_BYTES * (len(book.bid_records) + len(book.ask_records))
            return out

        def counted_level_term(side, record):
            self.level_terms += 1
            return level_term(side, record)

        def counted_state_hash(engine, version=snapshot.STATE_HASH_VERSION):
            self.changed_accounts += len(engine.dirty_accounts)
            return state_hash(engine, version)

        snapshot._orders_bytes, snapshot._book_digest, snapshot.state_hash = counted_orders_bytes, counted_book_digest, counted_state_hash
        snapshot._level_term = counted_level_term


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chain", required=True, help="a node's blocks.dat")
    p.add_argument("--markets", default=str(REPO / "configs" / "markets.toml"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    assert IMPLEMENTATION == "pure", IMPLEMENTATION
    counts = Counts()
    counts.wrap()
    engine = Engine(load_markets(args.markets))
    guard = ReplayGuard()
    parent, parent_hash, blocks, commands, version = None, GENESIS_PARENT, 0, 0, None
    with Chain(Path(args.chain), read_only=True) as chain:
        for block in chain.blocks(1, chain.height + 1):
            proposal, leaves = decode_proposal(block.proposal)
            parent, _, _ = apply_proposal(engine, guard, parent, parent_hash, proposal, leaves)
            if parent != block.header:
                raise SystemExit(f"block {block.header.height}: the replayed header differs from the stored one")
            parent_hash = parent.hash
            version = parent.version
            blocks += 1
            commands += len(proposal.commands)
    if not blocks:
        raise SystemExit("the chain holds no block")
    per_block = {k: round(v / blocks, 1) for k, v in vars(counts).items()}
    result = {
        "chain": args.chain,
        "chain_version": version,
        "blocks": blocks,
        "commands_per_block": round(commands / blocks, 1),
        "per_block": per_block,
        "totals": vars(counts),
        "resting_orders_at_end": sum(b.order_count for b in engine.books.values()),
        "levels_at_end": sum(len(b.bids) + len(b.asks) for b in engine.books.values()),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{blocks:,} blocks (chain version {version}), {result['commands_per_block']} commands a block; at the end "
              f"{result['resting_orders_at_end']:,} resting orders on {result['levels_at_end']:,} levels")
        print("a block, on average:")
        for k, v in per_block.items():
            print(f"  {k.replace('_', ' '):<20} {v:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
