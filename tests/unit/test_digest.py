"""SHA-256 in the compiled engine (dex/engine/dex_sha256.h): the block's
Merkle roots (dex/engine/digest.py) and an account's term in the state hash
(snapshot._account_term) hashed by one C call into OpenSSL, held to the pure
modules' hashlib code byte for byte.

tests/unit/test_merkle.py holds the root to its definition; here the two
builds are held to each other on the same inputs, and the compiled build is
held to having taken its C path on a machine where OpenSSL links.
"""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

import dex.engine
from dex.engine import book as pure_book
from dex.engine import digest as pure_digest
from dex.engine import snapshot as pure_snapshot
from tests import kit


def _compiled():
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    from dex.engine._compiled import book, digest, snapshot

    return book, digest, snapshot


def _leaves(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(rng.choice((0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 300))) for _ in range(count)]


def test_the_compiled_build_hashes_in_c_where_openssl_links():
    _, digest, snapshot = _compiled()
    if not Path("/usr/include/openssl/sha.h").exists():
        pytest.skip("*** no OpenSSL headers on this machine: the compiled engine hashes through hashlib ***")

    assert digest.C_SHA256 is True
    assert pure_digest.C_SHA256 is False
    book = _compiled()[0]
    # The C path packs the fields itself: it reads only the struct's size,
    # never its pack, which the hashlib path calls.
    unpackable = SimpleNamespace(size=struct.calcsize("<Q4qQI"), pack=None)
    assert snapshot._account_term(book.Account(1, 2), unpackable) == pure_snapshot._account_term(pure_book.Account(1, 2), struct.Struct("<Q4qQI"))


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 101, 256])
def test_both_builds_give_the_same_merkle_root(count):
    _, digest, _ = _compiled()
    leaves = _leaves(random.Random(count), count)

    root = pure_digest.merkle_root(leaves)
    assert digest.merkle_root(leaves) == root
    assert digest.merkle_root(tuple(leaves)) == root  # any sequence, as the pure one takes
    assert digest.merkle_root([bytearray(x) for x in leaves]) == root  # bytes-like leaves
    assert digest.merkle_root([memoryview(x) for x in leaves]) == root


def test_the_compiled_root_matches_a_pinned_one():
    _, digest, _ = _compiled()
    # tests/unit/test_merkle.py pins the same root for the chain's implementation.
    assert digest.merkle_root([bytes([i]) * i for i in range(7)]).hex() == "9db7679b94e310094f42678ae7dd3e23517f27d29846ca06467cec427f686797"
    assert digest.merkle_root([b"x"]) == hashlib.sha256(b"\x00x").digest()


def test_a_leaf_that_is_not_bytes_like_is_refused_by_both_builds():
    _, digest, _ = _compiled()
    for merkle_root in (pure_digest.merkle_root, digest.merkle_root):
        with pytest.raises(TypeError):
            merkle_root([b"a", 1])


def _account(book_module, rng: random.Random, assets: int):
    acct = book_module.Account(rng.choice((0, 1, 2**63, 2**64 - 1, rng.getrandbits(64))), assets)
    # Item by item: the pure Account's balances are lists, the compiled one's arrays.
    for i in range(assets):
        acct.free[i] = rng.choice((0, 1, 2**62, rng.getrandbits(62), -rng.getrandbits(62), 2**63 - 1, -(2**63)))
    for i in range(assets):
        acct.locked[i] = rng.getrandbits(rng.choice((0, 8, 62)))
    acct.finished_total = rng.choice((0, 5, 2**40, 2**63 - 1))
    acct.window_sum = rng.choice((0, 1, rng.getrandbits(256), 2**256 - 1))
    acct.finished.extend([None] * rng.choice((0, 1, 300)))
    return acct


@pytest.mark.parametrize("assets", [1, 2, 3, 40])  # 40: past the C writer's stack buffer
def test_both_builds_give_an_account_the_same_term(assets):
    compiled_book, _, compiled_snapshot = _compiled()
    balances = struct.Struct(f"<Q{2 * assets}qQI")
    for seed in range(300):
        pure = _account(pure_book, random.Random(seed), assets)
        compiled = _account(compiled_book, random.Random(seed), assets)

        assert compiled_snapshot._account_term(compiled, balances) == pure_snapshot._account_term(pure, balances), seed


def _window_order(book_module, rng: random.Random):
    cid = rng.choice((None, "", "a", "x" * 36, "b-" + str(rng.getrandbits(40))))
    return book_module.Order(
        rng.getrandbits(63) or 1, rng.choice((0, 2**64 - 1, rng.getrandbits(64))), rng.randrange(4),
        rng.getrandbits(40), rng.getrandbits(40), rng.getrandbits(40), cid, rng.getrandbits(62), rng.randrange(5),
        rng.getrandbits(7),
    )


def test_both_builds_fold_a_dedup_window_sum_alike():
    """The compiled build keeps an account's window sum as its 32 bytes and
    folds a term in or out in place (snapshot.window_fold, dex_window_fold);
    the pure build as an int: the same value mod 2^256 after every fold,
    across both ends of the range."""
    compiled_book, _, compiled_snapshot = _compiled()
    for seed in range(200):
        rng = random.Random(seed)
        start = rng.choice((0, 1, 2**256 - 1, rng.getrandbits(256)))
        pure = pure_book.Account(1, 1)
        compiled = compiled_book.Account(1, 1)
        assert isinstance(compiled.window_sum, bytearray) and bytes(compiled.window_sum) == bytes(32)
        pure.window_sum = start
        compiled.window_sum[:] = start.to_bytes(32, "big")
        for _ in range(rng.choice((1, 5, 20))):
            position = rng.choice((0, 1, 2**64 - 1, rng.getrandbits(64)))
            add = rng.random() < 0.6
            order_seed = rng.getrandbits(64)  # the same order in each build
            pure_snapshot.window_fold(pure, position, _window_order(pure_book, random.Random(order_seed)), add)
            compiled_snapshot.window_fold(compiled, position, _window_order(compiled_book, random.Random(order_seed)), add)
        assert isinstance(compiled.window_sum, bytearray), seed
        assert int.from_bytes(compiled.window_sum, "big") == pure.window_sum, seed


def test_the_account_term_is_sha256_of_its_fields():
    compiled_book, _, compiled_snapshot = _compiled()
    acct = compiled_book.Account(7, 2)
    acct.free[0], acct.free[1] = 100, -1
    acct.locked[0], acct.locked[1] = 3, 0
    acct.finished_total = 9
    acct.window_sum = 2**255 + 5
    acct.finished.extend([None, None])
    raw = struct.pack("<Q4qQI", 7, 100, -1, 3, 0, 9, 2) + (2**255 + 5).to_bytes(32, "big")

    assert compiled_snapshot._account_term(acct, struct.Struct("<Q4qQI")) == int.from_bytes(hashlib.sha256(raw).digest(), "big")


def test_leaves_the_c_path_does_not_take_get_the_same_root():
    _, digest, _ = _compiled()
    leaves = [b"a", bytearray(b"b"), memoryview(b"c"), b"d"]  # C takes a list of bytes only; hashlib the rest

    assert digest.merkle_root(leaves) == pure_digest.merkle_root(leaves) == pure_digest.merkle_root([b"a", b"b", b"c", b"d"])
    assert digest.merkle_root(tuple(leaves)) == pure_digest.merkle_root(leaves)


@pytest.mark.parametrize("change", [
    lambda a: setattr(a, "id", 1.5),  # not an int: struct refuses it, so must C
    lambda a: setattr(a, "id", -1),
    lambda a: setattr(a, "id", 2**64),
    lambda a: setattr(a, "free", None),
    lambda a: a.free.append(0),  # not one balance per asset
    lambda a: a.locked.pop(),
    lambda a: a.free.__setitem__(0, 2.0),
    lambda a: a.locked.__setitem__(1, 2**63),
    lambda a: setattr(a, "finished_total", -1),
])
def test_fields_struct_would_refuse_are_refused_by_the_c_path_too(change):
    compiled_book, _, compiled_snapshot = _compiled()
    balances = struct.Struct("<Q4qQI")
    for book_module, snapshot in ((pure_book, pure_snapshot), (compiled_book, compiled_snapshot)):
        acct = book_module.Account(7, 2)
        try:
            change(acct)
        except (TypeError, OverflowError, AttributeError):  # the compiled Account's typed fields refuse it already
            assert book_module is compiled_book
            continue
        with pytest.raises((struct.error, TypeError, ValueError, OverflowError)):
            snapshot._account_term(acct, balances)


def _level_orders(book_module, rng: random.Random, count: int, first_id: int, statuses=(0, 1, 3)) -> list:
    return [
        book_module.Order(first_id + i, rng.getrandbits(64), 0, rng.randrange(1, 2**40), rng.randrange(1, 2**40),
                          0, rng.choice((None, "c%d" % i, "x" * 36)), rng.getrandbits(40), rng.choice(statuses), rng.randrange(256))
        for i in range(count)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_a_levels_running_hash_in_c_gives_what_hashlib_gives(seed):
    """The compiled level digest keeps its running hash as a SHA256_CTX in a
    bytearray: after a fresh hash, after orders appended and after a change
    in the middle, it equals the pure build's hashlib digest and the digest
    of the level's live records from scratch."""
    compiled_book, _, compiled_snapshot = _compiled()
    c_sha256 = _compiled()[1].C_SHA256  # False: the compiled build hashes through hashlib (no OpenSSL headers)
    rng = random.Random(seed)
    levels = []
    first = rng.randrange(0, 40)
    for book_module in (pure_book, compiled_book):
        level = book_module.Level(1000)
        level.orders.extend(_level_orders(book_module, random.Random(seed), first, 1))
        levels.append(level)
    pure, compiled = levels
    for step in range(6):
        want = pure_snapshot._cache_level_digest(pure)
        assert compiled_snapshot._cache_level_digest(compiled) == want
        assert want == hashlib.sha256(b"".join(pure_snapshot._order(o) for o in pure.orders if o.status <= 1)).digest()
        if step % 2 == 0:  # live orders queued at the back: the running hash is extended
            count = rng.randrange(0, 5)
            for level, book_module in ((pure, pure_book), (compiled, compiled_book)):
                level.orders.extend(_level_orders(book_module, random.Random(seed * 100 + step), count, 1000 + 10 * step, (0,)))
                level.digest = book_module.APPENDED
            if c_sha256:
                assert type(compiled.hasher) is bytearray  # extended in C, not through hashlib
        else:  # a change anywhere: hashed afresh
            for o in (pure.orders[0], compiled.orders[0]) if pure.orders else ():
                o.filled += 1
            pure.digest = compiled.digest = None


def _book(book_module, bids: int, asks: int, rng: random.Random):
    """A book of the real BTCUSDT market with `bids` and `asks` random level records."""
    market = kit.markets().market("BTCUSDT")
    book = book_module.Book(market, 0, 0, 1)
    book.bid_records[:] = [rng.randbytes(40) for _ in range(bids)]
    book.ask_records[:] = [rng.randbytes(40) for _ in range(asks)]
    return book


def test_a_book_digest_in_c_gives_what_hashlib_gives():
    compiled_book, _, compiled_snapshot = _compiled()
    for bids, asks in ((0, 0), (1, 0), (0, 1), (3, 7), (200, 150)):
        pure = _book(pure_book, bids, asks, random.Random(bids * 1000 + asks))
        compiled = _book(compiled_book, bids, asks, random.Random(bids * 1000 + asks))
        want = hashlib.sha256(b"\x07BTCUSDT" + b"".join(reversed(pure.bid_records)) + b"|"
                              + b"".join(reversed(pure.ask_records)) + b"|").digest()

        assert pure_snapshot._book_digest(pure) == want
        assert compiled_snapshot._book_digest(compiled) == want


def test_the_c_hash_helpers_refuse_what_they_cannot_read():
    compiled_book, compiled_digest, compiled_snapshot = _compiled()
    if not compiled_digest.C_SHA256:
        pytest.skip("*** no OpenSSL headers on this machine: the compiled engine hashes through hashlib ***")
    book = _book(compiled_book, 0, 0, random.Random(1))
    book.bid_records[:] = [b"x" * 40, "not bytes"]
    with pytest.raises(TypeError):
        compiled_snapshot._book_digest(book)
    level = compiled_book.Level(5)
    level.orders.append(_level_orders(compiled_book, random.Random(1), 1, 1)[0])
    compiled_snapshot._cache_level_digest(level)
    level.hasher = bytearray(3)  # not a SHA256_CTX's size: refused, not read past its end
    level.digest = compiled_book.APPENDED
    with pytest.raises(TypeError):
        compiled_snapshot._cache_level_digest(level)


def _engines_with_terms(rng_seed: int, total: int, digests: list[int]):
    """Both builds' engines after the same deposits, their account sum set to
    `total` and their accounts' previous terms to `digests` (as if a block
    had left them there), every account marked changed."""
    from tests import engines
    from dex.core.commands import Deposit

    out = []
    for module in engines.available():
        engine = module.Engine(kit.markets())
        rng = random.Random(rng_seed)
        for account in range(1, len(digests)):
            engine.apply(Deposit(account=account, asset="USDT", amount=rng.getrandbits(40) + 1), 1)
        engine.state_hash()
        accounts = sorted(engine.accounts.values(), key=lambda a: a.id)
        assert len(accounts) == len(digests)
        for acct, digest in zip(accounts, digests):
            acct.digest = digest
            if not acct.dirty:
                acct.dirty = True
                engine.dirty_accounts.append(acct)
        engine.accounts_sum = total
        out.append(engine)
    return out


@pytest.mark.parametrize("total, digest", [
    (0, 2**256 - 1),  # sum - old borrows through every limb
    (2**256 - 1, 0),  # sum + term carries out of the top limb
    (2**64, 1),  # a borrow from the second limb
    (2**64, 2**64 + 1),  # a borrow into a limb that equals the one taken from it
    (2**128, 1),  # a borrow through a zero limb
    (2**192 - 1, 2**192 - 1),
    (12345, 12345),
])
def test_the_compiled_account_sum_folds_as_the_pure_arithmetic_does(total, digest):
    _compiled()
    rng = random.Random(total ^ digest)
    digests = [digest] + [rng.choice((0, digest, rng.getrandbits(256))) for _ in range(5)]
    engines = _engines_with_terms(7, total, digests)

    hashes = {e.state_hash() for e in engines}
    assert len(hashes) == 1
    # and the sum each build kept is the same int, mod 2^256
    assert len({e.accounts_sum for e in engines}) == 1
    pure = engines[0]
    expected = (total - sum(digests) + sum(a.digest for a in pure.accounts.values())) % 2**256
    assert pure.accounts_sum == expected


def _orders_of_both_builds(seed: int):
    """The same order built by each build's engine module."""
    from dex.engine import engine as pure_engine

    compiled_engine = dex.engine.load_compiled()[0]
    rng = random.Random(seed)
    fields = dict(
        id=rng.choice((1, 2**40, 2**63 - 1)),
        price=rng.choice((1, 10_500_000, 2**40 - 1)),
        qty=rng.choice((0, 1, 2**40 - 1)),
        filled=rng.choice((0, 7, 2**40 - 1)),
        cid=rng.choice((None, "", "a", "my-client-order-0001", "x" * 36)),
        time_ms=rng.choice((0, 1_700_000_000_000, 2**62)),
        status=rng.choice((0, 1, 2, 3, 4)),
        kind=rng.randrange(256),
    )
    account = rng.choice((5, 2**63, 2**64 - 1))
    out = []
    for book_module, engine_module in ((pure_book, pure_engine), (_compiled()[0], compiled_engine)):
        engine = engine_module.Engine(kit.markets())
        acct = book_module.Account(account, len(engine.assets))
        out.append(engine_module._order(fields["id"], acct, engine.book_list[0], fields["price"], fields["qty"], fields["filled"],
                                        fields["cid"], fields["time_ms"], fields["status"], fields["kind"]))
    return out


def test_both_builds_give_an_order_the_same_dedup_window_term():
    _, _, compiled_snapshot = _compiled()
    for seed in range(200):
        pure, compiled = _orders_of_both_builds(seed)
        position = random.Random(seed).choice((0, 1, 2**32, 2**63 - 1))

        term = pure_snapshot.window_term(position, pure)
        assert compiled_snapshot.window_term(position, compiled) == term, seed
        assert term == int.from_bytes(hashlib.sha256(struct.pack("<Q", position) + pure_snapshot._order(pure)).digest(), "big")
