"""The store against a node's chain: every block's trades, row by row.

`compare_store(database_url, chain)` walks the chain's blocks from its base
to min(chain head, store cursor) and, per block, compares what the ledger
says with what the store holds: the block row (hash, parent, trades count),
and the trades (count, quantity sum, SHA-256 over the canonical trade tuples
in trade-id order). Where a block's digest differs it names each deleted,
altered or extra trade row by table, block height and trade id. Rows above
the cursor (which no writer should have left) are reported too. Returns
human-readable mismatch messages; empty means the store agrees.

Reads pages of PAGE_BLOCKS blocks at a time; lists at most MISMATCHES_MAX
messages.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from sqlalchemy import select

from dex.core.events import Trade
from dex.store import db
from dex.store.models import CURSOR_ID, Block, StoreCursor, TradeRow, signed64
from dex.store.rows import decode_block

PAGE_BLOCKS = 1000
MISMATCHES_MAX = 1000
EXTRA_ROWS_LISTED_MAX = 20
_SIDE = ("BUY", "SELL")


def _ledger_tuple(ev: Trade, height: int, block_hash: str, time_ms: int, market) -> tuple:
    price = None if market is None else (ev.price * market.tick_size).normalize()
    qty = None if market is None else (ev.qty * market.step_size).normalize()
    return (
        ev.trade_id, height, block_hash, time_ms, ev.symbol, ev.price, ev.qty, price, qty, _SIDE[ev.taker_side],
        ev.maker_order_id, ev.taker_order_id, signed64(ev.maker_account), signed64(ev.taker_account), ev.maker_fee, ev.taker_fee,
    )


def _store_tuple(r, decimals: bool) -> tuple:
    return (
        r.trade_id, r.height, r.block_hash, r.time_ms, r.symbol, r.price_ticks, r.qty_lots,
        r.price.normalize() if decimals else None, r.qty.normalize() if decimals else None, r.taker_side,
        r.maker_order_id, r.taker_order_id, r.maker_account, r.taker_account, r.maker_fee_units, r.taker_fee_units,
    )


_FIELDS = (
    "trade_id", "height", "block_hash", "time_ms", "symbol", "price_ticks", "qty_lots", "price", "qty", "taker_side",
    "maker_order_id", "taker_order_id", "maker_account", "taker_account", "maker_fee_units", "taker_fee_units",
)


def _digest(rows: list[tuple]) -> tuple[int, int, str]:
    h = hashlib.sha256()
    for t in rows:
        h.update(repr(t).encode())
    return len(rows), sum(t[6] for t in rows), h.hexdigest()


def compare_store(database_url: str, chain, *, progress=None, markets=None) -> list[str]:
    """Mismatches between the store at `database_url` and `chain` (a
    dex.ledger.chain.Chain). Pass `markets` (the cluster's MarketConfig) to
    check the decimal price and qty columns too; without it they are not
    compared (the integer ticks and lots always are). `progress(height,
    through)` is called after each page."""
    by_symbol = None if markets is None else {m.symbol: m for m in markets.markets}
    engine = db.make_engine(database_url, pool_size=1)
    problems: list[str] = []

    def report(message: str) -> bool:
        problems.append(message)
        return len(problems) < MISMATCHES_MAX

    try:
        with db.read_only(engine) as conn:
            cursor = conn.execute(select(StoreCursor.height).where(StoreCursor.id == CURSOR_ID)).scalar_one()
            base, head = chain.base_height, chain.height
            through = min(cursor, head)
            if cursor < base:
                report(f"store_cursor: the store is at block {cursor}, below this chain's base {base}: nothing to compare")
                return problems
            start = base + 1
            while start <= through and len(problems) < MISMATCHES_MAX:
                stop = min(through, start + PAGE_BLOCKS - 1)
                if not _compare_page(conn, chain, by_symbol, start, stop, report):
                    break
                if progress is not None:
                    progress(stop, through)
                start = stop + 1
            for height in conn.execute(
                select(Block.height).where(Block.height > cursor).order_by(Block.height).limit(EXTRA_ROWS_LISTED_MAX)
            ).scalars():
                report(f"blocks: block {height}: row above the store's cursor {cursor} (extra row)")
            for height, trade_id in conn.execute(
                select(TradeRow.height, TradeRow.trade_id).where(TradeRow.height > cursor)
                .order_by(TradeRow.height, TradeRow.trade_id).limit(EXTRA_ROWS_LISTED_MAX)
            ).all():
                report(f"trades: block {height}: trade {trade_id} above the store's cursor {cursor} (extra row)")
    finally:
        engine.dispose()
    if len(problems) >= MISMATCHES_MAX:
        problems[MISMATCHES_MAX - 1 :] = [f"... stopped after {MISMATCHES_MAX - 1} mismatches"]
    return problems


def _compare_page(conn, chain, by_symbol: dict, start: int, stop: int, report) -> bool:
    blocks = {r.height: r for r in conn.execute(select(Block.__table__).where(Block.height.between(start, stop))).all()}
    stored: dict[int, list[tuple]] = defaultdict(list)
    for r in conn.execute(
        select(TradeRow.__table__).where(TradeRow.height.between(start, stop)).order_by(TradeRow.height, TradeRow.trade_id)
    ).all():
        stored[r.height].append(_store_tuple(r, by_symbol is not None))
    for block in chain.blocks(start, stop + 1):
        h = block.header
        height, block_hash = h.height, block.hash.hex()
        ledger = sorted(
            _ledger_tuple(ev, height, block_hash, h.time_ms, None if by_symbol is None else by_symbol[ev.symbol])
            for events in decode_block(block) for ev in events if ev.__class__ is Trade
        )
        row = blocks.get(height)
        if row is None:
            if not report(f"blocks: block {height}: row missing (deleted)"):
                return False
        elif (row.hash, row.parent, row.trades_count, row.time_ms) != (block_hash, h.parent.hex(), len(ledger), h.time_ms):
            if not report(
                f"blocks: block {height}: row differs (store hash {row.hash[:16]}…, {row.trades_count} trades; "
                f"ledger {block_hash[:16]}…, {len(ledger)} trades)"
            ):
                return False
        mine = stored.pop(height, [])
        if _digest(ledger) == _digest(mine):
            continue
        n_l, q_l, _ = _digest(ledger)
        n_s, q_s, _ = _digest(mine)
        if not report(f"trades: block {height}: ledger has {n_l} trades ({q_l} lots), store {n_s} ({q_s} lots); digests differ"):
            return False
        for message in _row_diffs(height, ledger, mine):
            if not report(message):
                return False
    for height, rows in sorted(stored.items()):  # heights the chain does not hold (below its base, or a gap)
        for t in rows[:EXTRA_ROWS_LISTED_MAX]:
            if not report(f"trades: block {height}: trade {t[0]} is in the store but the chain holds no block {height} (extra row)"):
                return False
    return True


def _row_diffs(height: int, ledger: list[tuple], mine: list[tuple]) -> list[str]:
    want = {t[0]: t for t in ledger}
    have = {t[0]: t for t in mine}
    out = []
    counts: dict[int, int] = defaultdict(int)
    for t in mine:
        counts[t[0]] += 1
    for trade_id, t in want.items():
        if trade_id not in have:
            out.append(f"trades: block {height}: trade {trade_id} missing (deleted)")
        elif have[trade_id] != t:
            fields = [f"{name} {s!r} != ledger {l!r}" for name, s, l in zip(_FIELDS, have[trade_id], t) if s != l]
            out.append(f"trades: block {height}: trade {trade_id} altered: {'; '.join(fields)}")
    for trade_id in have:
        if trade_id not in want:
            out.append(f"trades: block {height}: trade {trade_id} is not in the ledger's block (extra row)")
        elif counts[trade_id] > 1:
            out.append(f"trades: block {height}: trade {trade_id} stored {counts[trade_id]} times (duplicate)")
    return out
