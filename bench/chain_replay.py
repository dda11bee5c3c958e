"""A node's chain replayed with the engine dex runs, each phase of a block's
apply timed (CPU µs a block and a command), optionally with the state hash of
another version than the chain's (docs/BENCHMARKS.md, "State hash version 2").

Replays `blocks.dat` (e.g. of a run kept with `bench/cluster.py --keep`) the
way dex.ledger.state.apply_proposal does, phase by phase, as
`bench/engine.py --block-apply` does for its own blocks. With the chain's
own version every replayed header is checked against the stored one; with
`--state-hash-version` the other version's hash is computed from the same
commands instead (the headers then differ, by design).

    .venv/bin/python bench/chain_replay.py --chain /tmp/dex-bench-XXXX/data/n2/blocks.dat [--state-hash-version 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from dex.core.markets import load_markets  # noqa: E402
from dex.engine import IMPLEMENTATION, Engine  # noqa: E402
from dex.ledger.chain import Chain  # noqa: E402
from dex.ledger.codec import GENESIS_PARENT, HEADER_VERSIONS  # noqa: E402
from dex.ledger.replay import ReplayGuard  # noqa: E402

from engine import PHASES, timed_block  # noqa: E402 (bench/engine.py, beside this script)


def replay(path: Path, markets, version: int | None) -> dict:
    engine = Engine(markets)
    guard = ReplayGuard()
    parent, parent_hash = None, GENESIS_PARENT
    with Chain(path, read_only=True) as chain:
        blocks = [(b.proposal, b.header) for b in chain.blocks(1, chain.height + 1)]
    if not blocks:
        raise SystemExit("the chain holds no block")
    phases = dict.fromkeys(PHASES, 0.0)
    commands = 0
    gc.collect()
    for raw, stored in blocks:
        parent, n = timed_block(engine, guard, parent, parent_hash, raw, phases, version)
        parent_hash = parent.hash
        if version is None and parent != stored:
            raise SystemExit(f"block {stored.height}: the replayed header differs from the stored one")
        commands += n
    n = len(blocks)
    return {
        "chain": str(path),
        "implementation": IMPLEMENTATION,
        "chain_version": blocks[0][1].version,
        "state_hash_version": version or blocks[0][1].version,
        "blocks": n,
        "commands": commands,
        "us_per_block": {k: round(v * 1e6 / n, 2) for k, v in phases.items()},
        "us_per_block_total": round(sum(phases.values()) * 1e6 / n, 2),
        "us_per_command": {k: round(v * 1e6 / commands, 3) for k, v in phases.items()} if commands else {},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chain", required=True, help="a node's blocks.dat")
    p.add_argument("--markets", default=str(REPO / "configs" / "markets.toml"))
    p.add_argument("--state-hash-version", type=int, choices=HEADER_VERSIONS,
                   help="compute this version's state hash instead of the chain's (headers are then not checked)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = replay(Path(args.chain), load_markets(args.markets), args.state_hash_version)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['blocks']:,} blocks, {r['commands']:,} commands (chain version {r['chain_version']}, "
              f"state hash v{r['state_hash_version']}, {r['implementation']} engine)")
        print("  µs a block: " + ", ".join(f"{k} {v:.1f}" for k, v in r["us_per_block"].items()) + f"; total {r['us_per_block_total']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
