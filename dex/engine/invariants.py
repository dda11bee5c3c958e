"""`check_invariants`: the engine's promises, checked over the whole state.

O(state): tests call it after every step; production code never does. A
violation is a programmer error and raises AssertionError naming it.
"""

from __future__ import annotations

from dex.core.types import FEE_ACCOUNT, Side
from dex.engine.book import O_ACCOUNT, O_BOOK, O_CID, O_ID, O_KIND, O_PRICE, O_QTY, O_STATUS, O_TIME

_LIVE = 1  # highest live OrderStatus


def check(engine) -> None:
    n_assets = len(engine.assets)
    expected_locked: dict[int, list[int]] = {a: [0] * n_assets for a in engine.accounts}
    live_ids: dict[int, set[int]] = {a: set() for a in engine.accounts}
    for symbol, book in engine.books.items():
        assert book.bid_prices == sorted(book.bid_prices), f"{symbol}: bid prices unsorted"
        assert book.ask_keys == sorted(book.ask_keys), f"{symbol}: ask prices unsorted"
        assert len(set(book.bid_prices)) == len(book.bid_prices), f"{symbol}: duplicate bid level"
        assert len(set(book.ask_keys)) == len(book.ask_keys), f"{symbol}: duplicate ask level"
        assert sorted(book.bids) == book.bid_prices, f"{symbol}: bid levels and prices disagree"
        assert sorted(-k for k in book.asks) == book.ask_keys, f"{symbol}: ask levels and prices disagree"
        if book.bid_prices and book.ask_keys:
            assert book.bid_prices[-1] < -book.ask_keys[-1], f"{symbol}: book crossed at rest"
        count = 0
        for side, levels in ((Side.BUY, book.bids), (Side.SELL, book.asks)):
            for price, level in levels.items():
                live = [o for o in level.orders if o[O_STATUS] <= _LIVE]
                assert live, f"{symbol}: empty level {price}"
                assert level.count == len(live), f"{symbol}@{price}: count {level.count} != {len(live)}"
                assert level.total == sum(o[O_QTY] for o in live), f"{symbol}@{price}: total != sum of orders"
                times = [o[O_TIME] for o in live]
                assert times == sorted(times), f"{symbol}@{price}: queue not in time order"
                for o in live:
                    assert o[O_QTY] > 0 and o[O_PRICE] == price and (o[O_KIND] >> 6) == side and o[O_BOOK] is book, (
                        f"order {o[O_ID]} misplaced"
                    )
                    assert o[O_ACCOUNT].open.get(o[O_ID]) is o, f"order {o[O_ID]} missing from its account"
                    if o[O_CID] is not None:
                        assert o[O_ACCOUNT].cids.get(o[O_CID]) is o, f"order {o[O_ID]} missing from cid index"
                    live_ids[o[O_ACCOUNT].id].add(o[O_ID])
                    if side == Side.BUY:
                        expected_locked[o[O_ACCOUNT].id][book.quote] += o[O_PRICE] * o[O_QTY] * book.notional_units
                    else:
                        expected_locked[o[O_ACCOUNT].id][book.base] += o[O_QTY] * book.lot_units
                count += len(live)
        assert count == book.order_count, f"{symbol}: order_count {book.order_count} != {count}"
    totals = [0] * n_assets
    for account_id, acct in engine.accounts.items():
        assert acct.id == account_id
        assert set(acct.open) == live_ids[account_id], f"account {account_id}: open orders disagree with books"
        assert acct.locked == expected_locked[account_id], (
            f"account {account_id}: locked {acct.locked} != reserved {expected_locked[account_id]}"
        )
        for i in range(n_assets):
            assert acct.free[i] >= 0, f"account {account_id}: negative free {engine.assets[i]}"
            totals[i] += acct.free[i] + acct.locked[i]
        for o in acct.finished:
            assert o[O_STATUS] > _LIVE, f"finished order {o[O_ID]} is live"
    assert engine.fee_account is engine.accounts[FEE_ACCOUNT]
    assert not any(engine.fee_account.locked), "fee account has locked funds"
    from dex.engine.snapshot import state_hash, state_hash_from_scratch

    assert state_hash(engine) == state_hash_from_scratch(engine), "cached state hash disagrees with a full recomputation"
    for i, name in enumerate(engine.assets):
        assert totals[i] == engine.deposited[i] - engine.withdrawn[i], (
            f"{name}: free + locked + fees {totals[i]} != deposits - withdrawals "
            f"{engine.deposited[i] - engine.withdrawn[i]}"
        )
