"""The engine's canonical binary encoding: snapshot, restore and state hash.

The encoding depends only on the engine's logical state, never on how it got
there: accounts are written in id order, books from the best price outwards
in queue order, and dead queue entries are skipped. Two engines that would
behave identically from now on therefore encode to the same bytes.

The state hash covers the same state, arranged so that every block can afford
it (a full encoding costs ~2 µs per resting order). It has two versions, one
per block-header version (dex/ledger/codec.py): a chain keeps the version of
its first block, so chains begun before version 2 still replay and audit.

    state_hash v2 = SHA-256("dex-state-v2", counters, book digest v2 per
                  market, account sum, accounts)
    state_hash v1 = SHA-256(counters, book digest v1 per market, account sum,
                  accounts)
    book digest v2 = SHA-256(u8 2, symbol, u32 bid levels, u32 ask levels,
                  level sum as 32 bytes big-endian)
    level sum   = sum over levels of int(SHA-256(u8 side (0 bid, 1 ask),
                  u64 price, level digest)) mod 2**256
    book digest v1 = SHA-256(symbol, per bid level best first: price, level
                  digest, "|", then the same for asks, "|")
    level digest = SHA-256(its live orders' records, FIFO)
    account sum = sum over accounts of int(SHA-256(id, free, locked,
                  finished_total, window_sum)) mod 2**256
    window_sum = sum over the dedup window of int(SHA-256(position, record))

Level and book digests are cached and dropped when they change; accounts that
change are listed as dirty and their term in the sum is replaced. A book keeps
each level's 40-byte part of its digest's input (price, level digest) in lists
aligned with its price lists and refreshes only the records of levels listed
as stale (dex/engine/book.py, "State-hash records"). Version 1's book digest
then hashes every level's record again, touched or not (O(levels) a block:
34 KB on a 900-level book); version 2's level sum is a set hash, so a block
replaces only the terms of the levels it touched (`book.level_terms`, kept by
the same refresh for either version) and hashes 45 bytes a book. So a block's
work is in proportion to what it touched. `state_hash_from_scratch` recomputes
everything without the caches; `check_invariants` asserts they agree.

Layout (little-endian), version 2:
    magic "DEXS", u16 version
    u64 next_order_id, u64 next_trade_id
    u16 assets; per asset: str name, u128 deposited, u128 withdrawn (lifetime)
    u32 accounts (id order); per account: u64 id, i64 free[assets],
        i64 locked[assets], u32 finished; per finished order: u16 market,
        order record
    u16 markets; per market: str symbol, u32 live orders; per order (bids best
        first, then asks best first, each level FIFO): order record
        (account: ... i64 locked[assets], u64 finished_total, u32 finished)
    order record: u64 id, u64 account, u8 side, u64 price, u64 qty,
        u64 filled, u8 status, u8 kind, i64 time_ms, str client order id
    str: u8 length + ASCII bytes; a client order id of length 0 means none
    trailer: SHA-256 of everything before it (restore refuses a mismatch)
"""

from __future__ import annotations

import gc
import hashlib
import struct
from bisect import bisect_left
from itertools import islice

from dex.engine.shared import SnapshotError

from .book import APPENDED, RECORD_NONE, Account, Level, Order, OrderDict, OrderIndex

MAGIC = b"DEXS"
VERSION = 2  # 2: u128 lifetime totals, finished_total, SHA-256 trailer
# The state hash's versions (the module docstring): a block header of
# version v carries state hash v. New chains use the last.
STATE_HASH_VERSIONS = (1, 2)
STATE_HASH_VERSION = 2
_STATE_V2 = b"dex-state-v2"

_HEAD = struct.Struct("<4sHQQ")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U128x2 = struct.Struct("<QQQQ")  # deposited lo, hi, withdrawn lo, hi
_ORDER = struct.Struct("<QQBQQQBBqB")
_ORDER_SIZE = _ORDER.size  # 52: an order record without its client order id
_LIVE = 1  # highest live OrderStatus (PARTIALLY_FILLED)


def _str(text: str) -> bytes:
    raw = text.encode("ascii")
    assert len(raw) < 256
    return bytes((len(raw),)) + raw


def _order(o: Order, pack=_ORDER.pack) -> bytes:
    cid = o.cid
    if cid is None:
        return pack(o.id, o.account, (o.kind >> 6), o.price, o.qty, o.filled, o.status, o.kind, o.time_ms, 0)
    raw = cid.encode("ascii")
    return pack(o.id, o.account, (o.kind >> 6), o.price, o.qty, o.filled, o.status, o.kind, o.time_ms, len(raw)) + raw


# This module compiled by Cython (its __file__ is then the extension's): the
# order records of a level are written byte by byte into one buffer, C stores
# on typed fields (snapshot.pxd), instead of one struct.pack per order, which
# boxes nine integers and parses a format. Same bytes (tests/unit/
# test_snapshot_records.py runs the byte writer in Python against _order).
_COMPILED = not __file__.endswith(".py")
# Compiled with OpenSSL (setup.py, dex_sha256.h): an account's term is hashed
# by one C call. The names guarded by it exist only in that build.
_C_SHA256 = _COMPILED and _have_c_sha256()  # noqa: F821


def _orders_bytes(orders, start: int, live_only: bool):
    """The order records of `orders` from position `start` on (only the live
    ones when `live_only`), joined: bytes, or a bytearray when compiled."""
    if not _COMPILED:
        picked = islice(orders, start, None) if start else orders
        if live_only:
            return b"".join([_order(o) for o in picked if o.status <= _LIVE])
        return b"".join([_order(o) for o in picked])
    # From `start` on by index when it is past the front: a level only
    # appended to since its last hash is extended by its new entries at the
    # back, and a deque reaches an entry near either end in a step, where
    # iterating from the front walked the whole level (2.6 entries for
    # every one hashed, on the block benchmark).
    picked = [orders[i] for i in range(start, len(orders))] if start else orders
    size = 0
    for o in picked:
        if o.status <= _LIVE or not live_only:
            size += _ORDER_SIZE if o.cid is None else _ORDER_SIZE + len(o.cid)
    buf = bytearray(size)
    if not size:
        return buf
    view = buf  # compiled, a pointer to its bytes (snapshot.pxd): the stores are plain C stores
    at = 0
    for o in picked:
        if o.status <= _LIVE or not live_only:
            at = _put_order(view, at, o)
    return buf


def _put_order(buf, at: int, o: Order) -> int:
    """Write `_order(o)` into `buf` (a bytearray; compiled, a pointer into
    one sized for it) at `at`; return the offset after it."""
    kind = o.kind
    _put_u64(buf, at, o.id)
    _put_u64(buf, at + 8, o.account)
    buf[at + 16] = kind >> 6
    _put_u64(buf, at + 17, o.price)
    _put_u64(buf, at + 25, o.qty)
    _put_u64(buf, at + 33, o.filled)
    buf[at + 41] = o.status
    buf[at + 42] = kind
    _put_u64(buf, at + 43, o.time_ms)  # i64: the same bytes as its u64 two's complement
    at += _ORDER_SIZE
    cid = o.cid
    if cid is None:
        buf[at - 1] = 0
        return at
    raw = cid.encode("ascii")
    n = len(raw)
    if n > 255:
        raise ValueError(f"client order id of {n} bytes")
    buf[at - 1] = n
    for k in range(n):
        buf[at + k] = raw[k]
    return at + n


def _put_u64(buf, at: int, v: int) -> None:
    """`buf[at:at + 8] = v` as a little-endian u64."""
    buf[at] = v & 0xFF
    buf[at + 1] = (v >> 8) & 0xFF
    buf[at + 2] = (v >> 16) & 0xFF
    buf[at + 3] = (v >> 24) & 0xFF
    buf[at + 4] = (v >> 32) & 0xFF
    buf[at + 5] = (v >> 40) & 0xFF
    buf[at + 6] = (v >> 48) & 0xFF
    buf[at + 7] = (v >> 56) & 0xFF


def encode(engine) -> bytes:
    parts = [_HEAD.pack(MAGIC, VERSION, engine.next_order_id, engine.next_trade_id)]
    parts.append(_U16.pack(len(engine.assets)))
    for i, name in enumerate(engine.assets):
        parts.append(_str(name))
        parts.append(_totals(engine, i))
    n_assets = len(engine.assets)
    balances = struct.Struct(f"<Q{2 * n_assets}qQI")
    parts.append(_U32.pack(len(engine.accounts)))
    for account_id in sorted(engine.accounts):
        acct = engine.accounts[account_id]
        parts.append(balances.pack(account_id, *acct.free, *acct.locked, acct.finished_total, len(acct.finished)))
        for o in acct.finished:
            parts.append(_U16.pack(o.market))
            parts.append(_order(o))
    parts.append(_U16.pack(len(engine.books)))
    for symbol, book in engine.books.items():
        parts.append(_str(symbol))
        parts.append(_U32.pack(book.order_count))
        count = 0
        for prices, levels, sign in ((book.bid_prices, book.bids, 1), (book.ask_keys, book.asks, -1)):
            for i in range(len(prices) - 1, -1, -1):
                level = levels[sign * prices[i]]
                parts.append(_orders_bytes(level.orders, 0, True))
                count += level.count
        assert count == book.order_count, (symbol, count, book.order_count)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def _totals(engine, i: int) -> bytes:
    d, w = engine.deposited[i], engine.withdrawn[i]
    return _U128x2.pack(d & _MASK64, d >> 64, w & _MASK64, w >> 64)


_MASK64 = 2**64 - 1
_MASK256 = 2**256 - 1
_sha256 = hashlib.sha256


def window_term(position: int, order: Order) -> int:
    """An order's term in its account's dedup-window sum: int(SHA-256(u64
    position + the order's record))."""
    if _C_SHA256:
        # Every finished order with a client id pays one or two of these (two
        # once the window is full); through struct and hashlib (whose
        # constructor fetches the algorithm from OpenSSL) each cost ~1.4 us.
        return _c_sha256_int(_window_record(position, order))  # noqa: F821
    return int.from_bytes(_sha256(_U64.pack(position) + _order(order)).digest(), "big")


def _window_record(position: int, order: Order) -> bytearray:
    """u64 position + the order's record, written with C stores (compiled)."""
    cid = order.cid
    buf = bytearray(8 + _ORDER_SIZE + (0 if cid is None else len(cid)))
    view = buf  # compiled, a pointer to its bytes (snapshot.pxd)
    _put_u64(view, 0, position)
    _put_order(view, 8, order)
    return buf


def window_fold(acct, position: int, order: Order, add: bool) -> None:
    """Add `order`'s term at `position` to `acct.window_sum`, or take it out
    (`add` false). The sum is an int in the pure build and, compiled, its 32
    big-endian bytes in a bytearray (book.Account), which with OpenSSL one C
    call hashes the record into and folds in place: no 256-bit Python int is
    made (an int from the hash, a sum and a mask cost ~1,100 instructions a
    term, one or two for every finished order with a client id)."""
    if _C_SHA256:
        _c_window_fold(acct.window_sum, _window_record(position, order), add)  # noqa: F821
        return
    term = window_term(position, order)
    window = _as_int(acct.window_sum)
    window = (window + term if add else window - term) & _MASK256
    acct.window_sum = window if isinstance(acct.window_sum, int) else bytearray(window.to_bytes(32, "big"))


def _u256_bytes(v) -> bytes:
    """A 256-bit sum as its 32 big-endian bytes: an int, or (a compiled window
    sum) a bytearray of them."""
    return v.to_bytes(32, "big") if isinstance(v, int) else bytes(v)


def _level_digest(level) -> bytes:
    return _sha256(_orders_bytes(level.orders, 0, True)).digest()


def _cache_level_digest(level) -> bytes:
    """`_level_digest(level)`, extending the level's running hash when orders
    were only queued at its back since the last call (the common change to a
    level away from the touch), else hashing it afresh."""
    orders = level.orders
    if _C_SHA256:  # the running hash is a SHA256_CTX in a bytearray, fed in C (dex_sha256.h)
        if level.digest is APPENDED:
            _c_ctx_update(level.hasher, _orders_bytes(orders, level.hashed, False))  # noqa: F821
        else:
            level.hasher = _c_ctx_new(_orders_bytes(orders, 0, True))  # noqa: F821
        level.hashed = len(orders)
        level.digest = digest = _c_ctx_digest(level.hasher)  # noqa: F821
        return digest
    if level.digest is APPENDED:
        hasher = level.hasher
        # Every entry queued since is live: any later change to one (a fill, a
        # cancel) would have made the digest None, not APPENDED.
        hasher.update(_orders_bytes(orders, level.hashed, False))
    else:
        hasher = level.hasher = _sha256(_orders_bytes(orders, 0, True))
    level.hashed = len(orders)
    level.digest = digest = hasher.digest()
    return digest


def _record(level) -> bytes:
    """A level's part of its book digest's input, from its cached digest."""
    digest = level.digest
    if digest is None or digest is APPENDED:
        digest = _cache_level_digest(level)
    if _COMPILED:  # the same 40 bytes, written by one C call (dex_sha256.h)
        return _c_level_record(level.price, digest)  # noqa: F821
    return _U64.pack(level.price) + digest


def _level_term(side: int, record: bytes) -> int:
    """A level's term in its book's level sum (state hash v2): int(SHA-256(u8
    side, its record: u64 price, level digest))."""
    if _C_SHA256:
        return _c_sha256_int(bytes((side,)) + record)  # noqa: F821
    return int.from_bytes(_sha256(bytes((side,)) + record).digest(), "big")


def _as_int(term) -> int:
    """A level term or sum as an int: the compiled build keeps them as their
    32 big-endian bytes (one C call folds a level, dex_sha256.h), the pure
    build as ints."""
    return term if isinstance(term, int) else int.from_bytes(term, "big")


def refresh_records(book) -> None:
    """Bring `book.bid_records` and `ask_records` up to date: the records of
    the levels listed stale since the last call, or every record when the
    list overflowed (or the book was restored). The level terms of state hash
    v2 (`book.level_terms`, keyed like the stale list) and their sum follow
    the records: a record that changed has its term replaced, a removed
    level's term leaves the sum."""
    bids, asks = book.bids, book.asks
    if book.records_rebuild:
        book.bid_records[:] = [_record(bids[price]) for price in book.bid_prices]
        book.ask_records[:] = [_record(asks[-key]) for key in book.ask_keys]
        book.level_terms = {}
        book.levels_sum = bytearray(32) if _C_SHA256 else 0
        for key, record in zip(book.bid_prices, book.bid_records):
            _fold_level(book, key, 0, record)
        for key, record in zip(book.ask_keys, book.ask_records):
            _fold_level(book, key, 1, record)
        book.records_rebuild = False
    else:
        for key in book.stale_keys:  # a key listed twice is refreshed twice, to the same record
            if key > 0:
                level = bids.get(key)
                if level is None:  # removed after it was listed: no record, no term
                    _fold_level(book, key, 0, None)
                    continue
                records = book.bid_records
                # Compiled, C compares over the price keys (dex_sha256.h).
                i = _c_bisect(book.bid_prices, key) if _COMPILED else bisect_left(book.bid_prices, key)  # noqa: F821
            else:
                level = asks.get(-key)
                if level is None:
                    _fold_level(book, key, 1, None)
                    continue
                records = book.ask_records
                i = _c_bisect(book.ask_keys, key) if _COMPILED else bisect_left(book.ask_keys, key)  # noqa: F821
            record = _record(level)
            if records[i] != record or key not in book.level_terms:  # else unchanged (listed twice, or changed back)
                records[i] = record
                _fold_level(book, key, 0 if key > 0 else 1, record)
    book.stale_keys.clear()


def _fold_level(book, key: int, side: int, record) -> None:
    """Replace the term of the level at `key` in its book's level sum with the
    term of `record` (None: the level is gone, its term leaves the sum)."""
    terms = book.level_terms
    old = terms.pop(key, None)
    if _C_SHA256:  # the sum a bytearray of 32 bytes, folded in C (dex_sha256.h)
        total = book.levels_sum
        if not isinstance(total, bytearray):  # a new book's 0
            total = book.levels_sum = bytearray(_as_int(total).to_bytes(32, "big"))
        term = _c_level_fold(total, old, side, record)  # noqa: F821
        if term is not None:
            terms[key] = term
        return
    total = book.levels_sum
    if old is not None:
        total -= old
    if record is not None:
        term = terms[key] = _level_term(side, record)
        total += term
    book.levels_sum = total & _MASK256


def _book_digest(book) -> bytes:
    """SHA-256(symbol, bid records best first, "|", ask records best first,
    "|"): the records are kept worst first, beside the price lists."""
    refresh_records(book)
    if _C_SHA256:  # the same bytes hashed in C, without joining them (dex_sha256.h)
        return _c_book_digest(_str(book.symbol), book.bid_records, book.ask_records)  # noqa: F821
    hasher = _sha256(_str(book.symbol))
    hasher.update(b"".join(reversed(book.bid_records)))
    hasher.update(b"|")
    hasher.update(b"".join(reversed(book.ask_records)))
    hasher.update(b"|")
    return hasher.digest()


def _book_digest_v2(book) -> bytes:
    """A book's digest of state hash v2, from its cached level terms."""
    refresh_records(book)
    return _book_digest_v2_of(book, _as_int(book.levels_sum))


def _book_digest_v2_of(book, levels_sum: int) -> bytes:
    """SHA-256(u8 2, symbol, u32 bid levels, u32 ask levels, level sum)."""
    return _sha256(b"\x02" + _str(book.symbol) + _U32.pack(len(book.bid_prices)) + _U32.pack(len(book.ask_keys))
                   + levels_sum.to_bytes(32, "big")).digest()


def _book_digest_from_scratch(book) -> bytes:
    """`_book_digest(book)` from the orders alone, touching no cache."""
    parts = [_str(book.symbol)]
    for prices, levels, sign in ((book.bid_prices, book.bids, 1), (book.ask_keys, book.asks, -1)):
        for i in range(len(prices) - 1, -1, -1):
            price = sign * prices[i]
            parts.append(_U64.pack(price))
            parts.append(_level_digest(levels[price]))
        parts.append(b"|")
    return _sha256(b"".join(parts)).digest()


def _book_digest_v2_from_scratch(book) -> bytes:
    """`_book_digest_v2(book)` from the orders alone, touching no cache."""
    total = 0
    for prices, levels, sign, side in ((book.bid_prices, book.bids, 1, 0), (book.ask_keys, book.asks, -1, 1)):
        for key in prices:
            price = sign * key
            total += _level_term(side, _U64.pack(price) + _level_digest(levels[price]))
    return _book_digest_v2_of(book, total & _MASK256)


def _account_term(acct, balances) -> int:
    """int(SHA-256(u64 id, i64 free[assets], i64 locked[assets], u64
    finished_total, u32 finished, 32-byte big-endian window_sum))."""
    if _C_SHA256:  # compiled with OpenSSL: packed and hashed in C (dex_sha256.h), the same bytes
        assets = (balances.size - 20) // 16
        _check_balances(acct, assets)
        return _c_account_term(acct.id, acct.free.data.as_longlongs, acct.locked.data.as_longlongs, assets,  # noqa: F821
                               acct.finished_total, len(acct.finished), acct.window_sum)
    raw = balances.pack(acct.id, *acct.free, *acct.locked, acct.finished_total, len(acct.finished))
    return int.from_bytes(_sha256(raw + _u256_bytes(acct.window_sum)).digest(), "big")


def _check_balances(acct, assets: int) -> None:
    """Compiled: the C code reads `assets` balances through pointers into the
    account's arrays, so their length is checked first (struct.pack refuses
    other lengths in the pure build)."""
    if len(acct.free) != assets or len(acct.locked) != assets:
        raise ValueError(f"account {acct.id}: its balances are not one per asset")


def _counters(engine) -> bytes:
    parts = [_HEAD.pack(MAGIC, VERSION, engine.next_order_id, engine.next_trade_id)]
    for i in range(len(engine.assets)):
        parts.append(_totals(engine, i))
    return b"".join(parts)


def state_hash(engine, version: int = STATE_HASH_VERSION) -> str:
    """The state hash (of `version`, the module docstring), recomputing only
    what changed since the last call."""
    if version != 1 and version != 2:
        raise ValueError(f"state hash version {version}: this build knows {STATE_HASH_VERSIONS}")
    total = engine.accounts_sum
    fee = engine.fee_account
    if not fee.dirty:  # fees change with every trade: always recompute
        fee.dirty = True
        engine.dirty_accounts.append(fee)
    if _C_SHA256:
        # Each changed account's term hashed and folded into the sum in one C
        # call (dex_sha256.h, dex_account_fold), the sum held as its 32 bytes
        # for the block: the same arithmetic mod 2^256 without three Python
        # 256-bit ints an account (with the hash, ~630 ns an account before).
        assets = len(engine.assets)
        folded = bytearray(total.to_bytes(32, "big"))
        for acct in engine.dirty_accounts:
            _check_balances(acct, assets)
            acct.digest = _c_account_fold(folded, acct.digest, acct.id, acct.free.data.as_longlongs,  # noqa: F821
                                          acct.locked.data.as_longlongs, assets, acct.finished_total,
                                          len(acct.finished), acct.window_sum)
            acct.dirty = False
        total = int.from_bytes(folded, "big")
    else:
        balances = struct.Struct(f"<Q{2 * len(engine.assets)}qQI")
        for acct in engine.dirty_accounts:
            term = _account_term(acct, balances)
            total = (total - acct.digest + term) & _MASK256
            acct.digest = term
            acct.dirty = False
    engine.dirty_accounts.clear()
    engine.accounts_sum = total
    parts = [_counters(engine)] if version == 1 else [_STATE_V2, _counters(engine)]
    for book in engine.books.values():
        # A book's cached digest is of one version: another is computed afresh.
        if book.digest is None or book.digest_version != version:
            book.digest = _book_digest(book) if version == 1 else _book_digest_v2(book)
            book.digest_version = version
        parts.append(book.digest)
    parts.append(total.to_bytes(32, "big"))
    parts.append(_U32.pack(len(engine.accounts)))
    return _sha256(b"".join(parts)).hexdigest()


def state_hash_from_scratch(engine, version: int = STATE_HASH_VERSION) -> str:
    """The same value as `state_hash`, ignoring and leaving every cache."""
    if version != 1 and version != 2:
        raise ValueError(f"state hash version {version}: this build knows {STATE_HASH_VERSIONS}")
    balances = struct.Struct(f"<Q{2 * len(engine.assets)}qQI")
    total = 0
    for acct in engine.accounts.values():
        window = 0
        for i, o in enumerate(acct.finished):
            window = (window + window_term(acct.finished_total - len(acct.finished) + i, o)) & _MASK256
        assert window == _as_int(acct.window_sum), f"account {acct.id}: dedup window digest is stale"
        total = (total + _account_term(acct, balances)) & _MASK256
    parts = [_counters(engine)] if version == 1 else [_STATE_V2, _counters(engine)]
    book_digest = _book_digest_from_scratch if version == 1 else _book_digest_v2_from_scratch
    parts.extend(book_digest(book) for book in engine.books.values())
    parts.append(total.to_bytes(32, "big"))
    parts.append(_U32.pack(len(engine.accounts)))
    return _sha256(b"".join(parts)).hexdigest()


def decode(engine, data: bytes):
    """Load `data` into a freshly constructed `engine` and return it."""
    # Restoring makes millions of long-lived objects and frees none: the
    # cyclic collector would only rescan them (measured: restore 2.3x slower).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode(engine, memoryview(data))
    except (struct.error, IndexError, UnicodeDecodeError, KeyError) as e:
        raise SnapshotError(f"corrupt snapshot: {e}") from e
    finally:
        if gc_was_enabled:
            gc.enable()


def _read_str(data, at: int) -> tuple[str, int]:
    n = data[at]
    return bytes(data[at + 1 : at + 1 + n]).decode("ascii"), at + 1 + n


def _read_order(data, at: int, book, next_order_id: int) -> Order:
    """The order record at `at` (it ends at at + _ORDER_SIZE + its last fixed
    byte, the client order id's length), in `book`. An id the engine could
    not have made (0, or not below the snapshot's next order id) is refused;
    the caller checks the account id the record names."""
    if not _COMPILED:
        oid, account_id, side, price, qty, filled, status, kind, time_ms, n = _ORDER.unpack_from(data, at)
        cid = None if n == 0 else bytes(data[at + _ORDER_SIZE : at + _ORDER_SIZE + n]).decode("ascii")
        if side != kind >> 6:
            raise SnapshotError(f"order {oid}: side {side} disagrees with its kind {kind}")
        if not 0 < oid < next_order_id:
            raise SnapshotError(f"order id {oid} outside 1..{next_order_id - 1}")
        return Order(oid, account_id, book.index, price, qty, filled, cid, time_ms, status, kind)
    # Compiled: read with C loads (as _orders_bytes writes), bounds checked
    # here because the compiled module does not check indexes.
    if at < 0 or at + _ORDER_SIZE > len(data):
        raise IndexError("order record past the end")
    n = data[at + _ORDER_SIZE - 1]
    if at + _ORDER_SIZE + n > len(data):
        raise IndexError("client order id past the end")
    kind = data[at + 42]
    oid = _get_u64(data, at)
    if data[at + 16] != kind >> 6:
        raise SnapshotError(f"order {oid}: side {data[at + 16]} disagrees with its kind {kind}")
    if not 0 < oid < next_order_id:
        raise SnapshotError(f"order id {oid} outside 1..{next_order_id - 1}")
    o = Order.__new__(Order)
    o.id = oid
    o.account = _get_u64(data, at + 8)
    o.market = book.index
    o.price = _get_u64(data, at + 17)
    o.qty = _get_u64(data, at + 25)
    o.filled = _get_u64(data, at + 33)
    o.cid = None if n == 0 else bytes(data[at + _ORDER_SIZE : at + _ORDER_SIZE + n]).decode("ascii")
    o.time_ms = _get_i64(data, at + 43)
    o.status = data[at + 41]
    o.kind = kind
    return o


def _get_u64(data, at: int) -> int:
    """The little-endian u64 at data[at:at + 8]."""
    v = 0
    for k in range(7, -1, -1):
        v = (v << 8) | data[at + k]
    return v


def _get_i64(data, at: int) -> int:
    """The little-endian i64 at data[at:at + 8]."""
    v = _get_u64(data, at)
    if v >> 63:
        return v - _TWO64
    return v


_TWO64 = 2**64
_INT64_MAX = 2**63 - 1


def _claim_id(seen, order: Order) -> None:
    """Add `order` to `seen`, the orders a restore has read by id; an id
    already there (its order is kept: put's rule) is refused."""
    read = len(seen)
    seen.put(order.id, order)
    if len(seen) == read:
        raise SnapshotError(f"order {order.id} listed twice")


def _read_books(data, at: int, books: list, accounts: dict, next_order_id: int, seen) -> int:
    """Read each book's live orders into its levels; return the offset after.
    An order of an account the snapshot does not hold (KeyError) is refused,
    and so is an id already in `seen` (every id read so far, live or
    finished, in any account): an engine makes each id once."""
    for book in books:
        symbol, at = _read_str(data, at)
        if symbol != book.symbol:
            raise SnapshotError(f"snapshot market {symbol} differs from config {book.symbol}")
        (n_orders,) = _U32.unpack_from(data, at)
        at += 4
        level = None
        side = -1
        for _ in range(n_orders):
            order = _read_order(data, at, book, next_order_id)
            at += _ORDER_SIZE + data[at + _ORDER_SIZE - 1]  # read by _read_order: a record cut short is refused there (compiled) or ends past the data (pure)
            # A level's orders are written together: look it up once.
            if level is None or order.price != level.price or (order.kind >> 6) != side:
                side = order.kind >> 6
                levels = book.bids if side == 0 else book.asks
                level = levels.get(order.price)
                if level is None:
                    level = levels[order.price] = Level(order.price)
                    if side == 0:
                        book.bid_prices.append(order.price)
                        book.bid_levels.append(level)
                    else:
                        book.ask_keys.append(-order.price)
                        book.ask_levels.append(level)
                orders = level.orders
            order.price = level.price
            orders.append(order)
            level.total += order.qty
            level.count += 1
            acct = accounts[order.account]
            order.account = acct.id  # pure Python: one int object per account, not one per order
            _claim_id(seen, order)
            acct.open.put(order.id, order)
            if order.cid is not None:
                acct.cids[order.cid] = order
        book.order_count = n_orders
        book.bid_prices.reverse()  # written best first; kept best last
        book.ask_keys.reverse()
        book.bid_levels.reverse()
        book.ask_levels.reverse()
        # Placeholders at the right length; the next state hash builds them.
        book.bid_records = [RECORD_NONE] * len(book.bid_prices)
        book.ask_records = [RECORD_NONE] * len(book.ask_keys)
        book.stale_keys = []
        book.records_rebuild = True
    return at


def _decode(engine, data):
    if len(data) < 32 or hashlib.sha256(data[:-32]).digest() != bytes(data[-32:]):
        raise SnapshotError("snapshot checksum mismatch: the bytes are corrupt or truncated")
    data = data[:-32]
    magic, version, next_order_id, next_trade_id = _HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise SnapshotError(f"not a dex snapshot v{VERSION}: {bytes(magic)!r} v{version}")
    if not (0 < next_order_id <= _INT64_MAX and 0 < next_trade_id <= _INT64_MAX):
        # Ids the engine makes are 1..2^63 - 1 (the compiled engine's counters are i64).
        raise SnapshotError(f"next order id {next_order_id} or trade id {next_trade_id} out of range")
    at = _HEAD.size
    engine.next_order_id = next_order_id
    engine.next_trade_id = next_trade_id
    (n_assets,) = _U16.unpack_from(data, at)
    at += 2
    names = []
    for i in range(n_assets):
        name, at = _read_str(data, at)
        names.append(name)
        if i < len(engine.deposited):
            dlo, dhi, wlo, whi = _U128x2.unpack_from(data, at)
            engine.deposited[i], engine.withdrawn[i] = dlo | dhi << 64, wlo | whi << 64
        at += _U128x2.size
    if tuple(names) != engine.assets:
        raise SnapshotError(f"snapshot assets {names} differ from config {list(engine.assets)}")
    balances = struct.Struct(f"<Q{2 * n_assets}qQI")
    books = list(engine.books.values())
    engine.accounts.clear()
    engine._accounts_replaced()
    (n_accounts,) = _U32.unpack_from(data, at)
    at += 4
    # Every order id read, live or finished, in any account: a second record
    # of one is refused (a writer bug or a forged snapshot with a matching
    # trailer; the engine makes each id once). Dropped after the read.
    seen = OrderIndex() if _COMPILED else OrderDict()
    pending_finished = []
    for _ in range(n_accounts):
        fields = balances.unpack_from(data, at)
        at += balances.size
        acct = Account(fields[0], n_assets)
        for i in range(n_assets):  # into its lists (pure) or arrays (compiled): book.Account
            acct.free[i] = fields[1 + i]
            acct.locked[i] = fields[1 + n_assets + i]
        acct.finished_total = fields[-2]
        engine.accounts[acct.id] = acct
        pending_finished.append((acct, fields[-1]))
        for _ in range(fields[-1]):
            (m,) = _U16.unpack_from(data, at)
            at += 2
            order = _read_order(data, at, books[m], next_order_id)
            at += _ORDER_SIZE + data[at + _ORDER_SIZE - 1]  # read by _read_order: a record cut short is refused there (compiled) or ends past the data (pure)
            if order.account != acct.id:
                raise SnapshotError(f"finished order {order.id} of account {order.account} listed under account {acct.id}")
            _claim_id(seen, order)
            order.account = acct.id  # pure Python: one int object per account
            position = acct.finished_total - fields[-1] + len(acct.finished)
            window_fold(acct, position, order, True)
            acct.finished.append(order)
            acct.cids[order.cid] = order
    engine.fee_account = engine.accounts[0]
    accounts = engine.accounts
    (n_markets,) = _U16.unpack_from(data, at)
    at += 2
    if n_markets != len(books):
        raise SnapshotError("snapshot markets differ from config")
    at = _read_books(data, at, books, accounts, next_order_id, seen)
    if at != len(data):
        raise SnapshotError(f"{len(data) - at} trailing bytes")
    engine.dirty_accounts = list(engine.accounts.values())
    for acct in engine.dirty_accounts:
        acct.dirty = True
    engine.accounts_sum = 0
    return engine
