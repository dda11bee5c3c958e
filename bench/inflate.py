"""Deflating and inflating the block benchmark's proposals: the standard
library's zlib against ISA-L (the `isal` package dex/ledger/codec.py uses),
in µs a block (docs/BENCHMARKS.md).

    .venv/bin/python bench/inflate.py [--orders 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from isal import isal_zlib  # noqa: E402

import engine as engine_bench  # noqa: E402 (bench/engine.py: the block benchmark's workload)
from dex.ledger.codec import PROPOSAL_DEFLATED_VERSIONS, inflate_proposal  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=20_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    config = engine_bench.load_markets(str(REPO / "configs" / "markets.toml"))
    funding = engine_bench.deposits(config, config.market("BTCUSDT"), engine_bench.ACCOUNTS)
    workload = engine_bench.generate(config, "BTCUSDT", args.orders, 1, funding, None)
    blocks = [b for b in engine_bench.proposals(workload.cmds, 100) if b[0] in PROPOSAL_DEFLATED_VERSIONS]
    if not blocks:
        raise SystemExit("no block of the workload is deflated")
    raws = [inflate_proposal(b)[1:] for b in blocks]
    out = {"blocks": len(blocks), "raw_bytes": sum(map(len, raws)) // len(raws)}
    for name, mod in (("zlib", zlib), ("isal", isal_zlib)):
        packed = [mod.compress(r, 1) for r in raws]
        for p_, r in zip(packed, raws):
            assert zlib.decompress(p_) == r and isal_zlib.decompress(p_) == r  # either reads the other's

        def deflate(mod=mod):
            for r in raws:
                mod.compress(r, 1)

        def inflate(mod=mod, packed=packed):
            for d in packed:
                mod.decompressobj().decompress(d, 1 << 20)

        out[name] = {
            "deflated_bytes": sum(map(len, packed)) // len(packed),
            "deflate_us": min(timeit.repeat(deflate, number=3, repeat=5)) / 3 / len(raws) * 1e6,
            "inflate_us": min(timeit.repeat(inflate, number=3, repeat=5)) / 3 / len(raws) * 1e6,
        }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['blocks']} blocks of 100 orders, {out['raw_bytes']:,} bytes each on average")
        for name in ("zlib", "isal"):
            r = out[name]
            print(f"  {name:<5} deflate {r['deflate_us']:6.1f} us a block ({r['deflated_bytes']:,} bytes), inflate {r['inflate_us']:5.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
