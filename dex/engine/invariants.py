"""`check_invariants`: the engine's promises, checked over the whole state.

O(state): tests call it after every step; production code never does. A
violation is a programmer error and raises AssertionError naming it.
"""

from __future__ import annotations

from dex.core.types import FEE_ACCOUNT, Side

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
        for ordered, by_price, side in ((book.bid_levels, [book.bids[p] for p in book.bid_prices], "bid"),
                                        (book.ask_levels, [book.asks[-k] for k in book.ask_keys], "ask")):
            assert len(ordered) == len(by_price) and all(a is b for a, b in zip(ordered, by_price)), (
                f"{symbol}: {side} levels by index disagree with the prices"
            )
        if book.bid_prices and book.ask_keys:
            assert book.bid_prices[-1] < -book.ask_keys[-1], f"{symbol}: book crossed at rest"
        count = 0
        for side, levels in ((Side.BUY, book.bids), (Side.SELL, book.asks)):
            for price, level in levels.items():
                live = [o for o in level.orders if o.status <= _LIVE]
                assert live, f"{symbol}: empty level {price}"
                assert level.count == len(live), f"{symbol}@{price}: count {level.count} != {len(live)}"
                assert level.total == sum(o.qty for o in live), f"{symbol}@{price}: total != sum of orders"
                times = [o.time_ms for o in live]
                assert times == sorted(times), f"{symbol}@{price}: queue not in time order"
                for o in live:
                    assert o.qty > 0 and o.price == price and (o.kind >> 6) == side and o.market == book.index, (
                        f"order {o.id} misplaced"
                    )
                    owner = engine.accounts[o.account]
                    assert owner.open.get(o.id) is o, f"order {o.id} missing from its account"
                    if o.cid is not None:
                        assert owner.cids.get(o.cid) is o, f"order {o.id} missing from cid index"
                    live_ids[o.account].add(o.id)
                    if side == Side.BUY:
                        expected_locked[o.account][book.quote] += o.price * o.qty * book.notional_units
                    else:
                        expected_locked[o.account][book.base] += o.qty * book.lot_units
                count += len(live)
        assert count == book.order_count, f"{symbol}: order_count {book.order_count} != {count}"
        in_book = {id(level) for level in book.bids.values()} | {id(level) for level in book.asks.values()}
        for level in book.spare_levels:
            assert id(level) not in in_book, f"{symbol}: a spare level is in the book"
            assert not level.orders and level.count == 0 and level.total == 0, f"{symbol}: a spare level is not empty"
            assert level.digest is None and level.hasher is None and level.hashed == 0, f"{symbol}: a spare level keeps a digest"
    totals = [0] * n_assets
    for account_id, acct in engine.accounts.items():
        assert acct.id == account_id
        assert acct.open.ids() == sorted(live_ids[account_id]), f"account {account_id}: open orders disagree with books"
        assert list(acct.locked) == expected_locked[account_id], (  # a list, or an array compiled
            f"account {account_id}: locked {list(acct.locked)} != reserved {expected_locked[account_id]}"
        )
        for i in range(n_assets):
            assert acct.free[i] >= 0, f"account {account_id}: negative free {engine.assets[i]}"
            totals[i] += acct.free[i] + acct.locked[i]
        for o in acct.finished:
            assert o.status > _LIVE, f"finished order {o.id} is live"
    assert engine.fee_account is engine.accounts[FEE_ACCOUNT]
    assert not any(engine.fee_account.locked), "fee account has locked funds"
    from .snapshot import state_hash, state_hash_from_scratch

    for version in (2, 1):  # the chains' versions, new and old (dex.engine.snapshot)
        assert state_hash(engine, version) == state_hash_from_scratch(engine, version), (
            f"cached state hash v{version} disagrees with a full recomputation"
        )
    for book in engine.books.values():
        _check_records(book)
    for i, name in enumerate(engine.assets):
        assert totals[i] == engine.deposited[i] - engine.withdrawn[i], (
            f"{name}: free + locked + fees {totals[i]} != deposits - withdrawals "
            f"{engine.deposited[i] - engine.withdrawn[i]}"
        )


def _check_records(book) -> None:
    """Just after a state hash: every level's digest and record are current."""
    from .snapshot import _MASK256, _U64, _as_int, _level_digest, _level_term

    symbol = book.symbol
    assert not book.stale_keys and not book.records_rebuild, f"{symbol}: records not refreshed"
    for keys, records, levels, sign in ((book.bid_prices, book.bid_records, book.bids, 1),
                                        (book.ask_keys, book.ask_records, book.asks, -1)):
        assert len(records) == len(keys), f"{symbol}: {len(records)} records for {len(keys)} levels"
        for key, record in zip(keys, records):
            level = levels[sign * key]
            digest = _level_digest(level)
            assert level.digest == digest, f"{symbol}@{level.price}: cached level digest is stale"
            assert record == _U64.pack(level.price) + digest, f"{symbol}@{level.price}: level record is stale"
            assert _as_int(book.level_terms.get(key, 0)) == _level_term(0 if sign == 1 else 1, record), f"{symbol}@{level.price}: level term is stale"
    assert len(book.level_terms) == len(book.bid_prices) + len(book.ask_keys), f"{symbol}: level terms of removed levels"
    assert _as_int(book.levels_sum) == sum(map(_as_int, book.level_terms.values())) & _MASK256, f"{symbol}: level sum disagrees with its terms"
