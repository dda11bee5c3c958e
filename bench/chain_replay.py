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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dex.core.markets import load_markets  # noqa: E402
from dex.engine import IMPLEMENTATION, Engine  # noqa: E402
from dex.ledger.chain import Chain  # noqa: E402
from dex.ledger.codec import GENESIS_PARENT, HEADER_VERSIONS, NO_AUTH, BlockHeader, decode_proposal, encode_events, merkle_root  # noqa: E402
from dex.ledger.replay import ReplayGuard, rejected  # noqa: E402
from dex.ledger.state import block_time_ms  # noqa: E402

PHASES = ("decode", "guard", "engine", "encode", "roots", "state_hash", "header")


def replay(path: Path, markets, version: int | None) -> dict:
    engine = Engine(markets)
    apply = engine.apply
    guard = ReplayGuard()
    parent, parent_hash = None, GENESIS_PARENT
    with Chain(path, read_only=True) as chain:
        blocks = [(b.proposal, b.header) for b in chain.blocks(1, chain.height + 1)]
    if not blocks:
        raise SystemExit("the chain holds no block")
    phases = dict.fromkeys(PHASES, 0.0)
    clock = time.thread_time
    commands = 0
    gc.collect()
    for raw, stored in blocks:
        c0 = clock()
        proposal, leaves = decode_proposal(raw)
        c1 = clock()
        t = block_time_ms(parent, proposal)
        guard.advance(t)
        verdicts = [guard.admit(a.public_key, a.timestamp_ms, a.payload, t) for a in proposal.auths]
        c2 = clock()
        results = [apply(cmd, t) if index == NO_AUTH or verdicts[index] is None else [rejected(cmd, verdicts[index])]
                   for cmd, index in zip(proposal.commands, proposal.auth_index)]
        c3 = clock()
        encoded = [encode_events(events) for events in results]
        c4 = clock()
        commands_root, results_root = merkle_root(leaves), merkle_root(encoded)
        c5 = clock()
        v = version or stored.version
        state_hash = bytes.fromhex(engine.state_hash(v))
        c6 = clock()
        parent = BlockHeader(height=1 if parent is None else parent.height + 1, parent=parent_hash, leader=proposal.leader,
                             term=proposal.term, time_ms=t, commands_count=len(proposal.commands),
                             commands_root=commands_root, results_root=results_root, state_hash=state_hash, version=v)
        parent_hash = parent.hash
        c7 = clock()
        if version is None and parent != stored:
            raise SystemExit(f"block {stored.height}: the replayed header differs from the stored one")
        commands += len(proposal.commands)
        for name, (a, b) in zip(PHASES, ((c0, c1), (c1, c2), (c2, c3), (c3, c4), (c4, c5), (c5, c6), (c6, c7))):
            phases[name] += b - a
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
