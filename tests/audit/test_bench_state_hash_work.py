"""bench/state_hash_work.py counts what the state hash reads a block, on a
chain built in-process (chainkit): every level's record for a book whose
digest is recomputed (a version-1 chain), the level terms replaced (either
version: only the levels a block touched), a level hashed afresh after a fill
at its front, and orders only appended to a level extending its running
hash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dex.auth import Keypair
from tests.audit.chainkit import REPO, Builder

BENCH = REPO / "bench" / "state_hash_work.py"


@pytest.mark.parametrize("version", [1, 2])
def test_it_counts_book_records_level_terms_fresh_levels_and_appends(tmp_path: Path, version: int) -> None:
    path = tmp_path / "blocks.dat"
    b = Builder(path, chain_version=version)
    buyer, seller = Keypair.generate(), Keypair.generate()
    b.block(b.deposit(buyer, "USDT", "100000"), b.deposit(seller, "BTC", "1"))
    # Two bids at 49,000 and one at 48,000: two new levels, hashed from their first record.
    b.block(b.order(buyer, "BTCUSDT", "BUY", "49000.00", "0.01000"), b.order(buyer, "BTCUSDT", "BUY", "49000.00", "0.01000"),
            b.order(buyer, "BTCUSDT", "BUY", "48000.00", "0.01000"))
    # A sell that partly fills the first bid at 49,000: that level is hashed afresh (both orders).
    b.block(b.order(seller, "BTCUSDT", "SELL", "49000.00", "0.00500"))
    # One more bid at 48,000: only its record extends that level's running hash.
    b.block(b.order(buyer, "BTCUSDT", "BUY", "48000.00", "0.01000"))
    b.close()
    resting = [o for book in b.engine.books.values() for level in (*book.bids.values(), *book.asks.values()) for o in level.orders]
    record = {o.id: 52 + len(o.cid or "") for o in resting}  # an order record: 52 bytes and its client order id (one the API derived)

    proc = subprocess.run([sys.executable, str(BENCH), "--chain", str(path), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    totals = out["totals"]
    assert out["blocks"] == 4 and out["levels_at_end"] == 2 and out["resting_orders_at_end"] == 4
    assert out["chain_version"] == version
    # Version 1: blocks 2, 3 and 4 each re-read both levels' records; version 2 reads none.
    assert totals["book_record_bytes"] == (3 * 2 * 40 if version == 1 else 0)
    assert totals["level_terms"] == 2 + 1 + 1  # the levels each block touched: both, then 49,000, then 48,000
    assert (totals["fresh_levels"], totals["fresh_entries"]) == (2 + 1, 3 + 2)
    first, second, third, fourth = sorted(record)
    assert totals["fresh_bytes"] == record[first] + record[second] + record[third] + record[first] + record[second]
    assert totals["appended_bytes"] == record[fourth]
    assert totals["changed_accounts"] >= 2
