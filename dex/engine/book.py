"""The mutable structures of the engine: orders, price levels, books, accounts.

They are slotted classes with no methods on the hot path; `dex.engine.engine`
manipulates them directly because a method call per fill costs more than the
fill itself in CPython. Compiled, `book.pxd` makes them extension types with
64-bit integer fields (docs/ENGINE.md, "Two implementations").

Book layout. Each side keeps a dict price -> Level and a sorted list of prices
whose *last* element is the best: `bid_prices` ascending, `ask_keys` holding
negated ask prices ascending. Taking the best level and removing it are then
`[-1]` and `pop()`, both O(1). Beside each price list, `bid_levels` and
`ask_levels` hold the Level at the same index: the matching loops reach the
best level as `[-1]` too, without a dict lookup of its price.

Level layout. A level is a FIFO deque of orders. A cancelled order is not
removed from the middle of the deque (O(n)); its `qty` is set to 0 and it is
skipped and dropped when it reaches the front. `count` and `total` cover live
orders only; a level whose `count` falls to 0 is taken out of the book (and,
emptied, kept in `Book.spare_levels` for the book's next new level, up to
SPARE_LEVELS_MAX), and a deque holding many more dead entries than live ones is
compacted.

State-hash records. Beside each sorted price list a book keeps the list of its
levels' 40-byte records in the book digest, pack(price) + level digest, at the
same indices (`bid_records` with `bid_prices`, `ask_records` with `ask_keys`):
whoever inserts or removes a price inserts or removes its record there too. A
level whose digest goes stale (set to None or APPENDED from a current digest)
or that is created has its key (its price for a bid, the negated price for an
ask) listed on `book.stale_keys`; the state hash refreshes just those records
(a key whose level is gone is skipped) and, for state hash v1, hashes the
joined lists; beside them it keeps each level's term in state hash v2's level
sum (`level_terms`, `levels_sum`; dex.engine.snapshot). The list holds at most
STALE_LEVELS_MAX keys: past that it is dropped and `records_rebuild` set, and
the next state hash rebuilds every record and term (an engine that is never
hashed, a benchmark's, does not grow).
"""

from __future__ import annotations

from array import array
from collections import deque

from dex.core.markets import Market

try:  # OrderIndex and Account's compiled branch use it; the pure engine runs neither
    import cython
except ImportError:  # pragma: no cover - Cython is a build dependency
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False)  # all the pure module reads of it

# Order.kind packs what a finished order needs to describe itself.
KIND_TYPE_SHIFT = 0  # 1 bit: OrderType
KIND_TIF_SHIFT = 1  # 2 bits: TimeInForce
KIND_POST_ONLY_SHIFT = 3  # 1 bit
KIND_STP_SHIFT = 4  # 2 bits: SelfTradePrevention
KIND_SIDE_SHIFT = 6  # 1 bit: Side (kept here rather than in a field of its own: 8 bytes an order)


def pack_kind(order_type: int, tif: int, post_only: bool, stp: int, side: int = 0) -> int:
    return (
        (order_type << KIND_TYPE_SHIFT)
        | (tif << KIND_TIF_SHIFT)
        | (int(post_only) << KIND_POST_ONLY_SHIFT)
        | (stp << KIND_STP_SHIFT)
        | (side << KIND_SIDE_SHIFT)
    )


def kind_side(kind: int) -> int:
    return kind >> KIND_SIDE_SHIFT


def kind_type(kind: int) -> int:
    return (kind >> KIND_TYPE_SHIFT) & 1


def kind_tif(kind: int) -> int:
    return (kind >> KIND_TIF_SHIFT) & 3


def kind_post_only(kind: int) -> bool:
    return bool((kind >> KIND_POST_ONLY_SHIFT) & 1)


def kind_stp(kind: int) -> int:
    return (kind >> KIND_STP_SHIFT) & 3


# The fields of an order, by position: `order[O_PRICE]` reads `order.price`.
# Kept for readers outside the engine that index orders (dex/ledger/port.py);
# the engine itself reads the attributes.
O_ID, O_ACCOUNT, O_MARKET, O_PRICE, O_QTY, O_FILLED, O_CID, O_TIME, O_STATUS, O_KIND = range(10)
O_FIELDS = 10


class Order:
    """A live order, or a finished one still in its account's dedup window.

    An object with typed 64-bit fields rather than a list of Python ints: the
    compiled engine (docs/ENGINE.md, "Two implementations") reads and writes
    them as C integers. Fields:

      id       order id
      account  the account's id (u64)
      market   the book's index (`Book.index`, the market's place in the config)
      price    ticks
      qty      lots still open; for a finished order, the lots it never filled
      filled   lots traded
      cid      client order id or None
      time_ms  block time it was placed (or re-queued by an amend)
      status   OrderStatus; NEW and PARTIALLY_FILLED are live, the rest are
               finished (a cancelled order stays dead in its queue until it
               reaches the front)
      kind     packed side, type, tif, post-only and stp (pack_kind)

    It names its account and book by number, not by reference, and holds no
    other object than its client order id (a str): compiled, an order can then
    never be part of a reference cycle, so the type is not tracked by the
    cyclic garbage collector and carries no GC header (80 bytes an order
    instead of 112: docs/ENGINE.md, "Memory per resting order").
    """

    __slots__ = ("id", "account", "market", "price", "qty", "filled", "cid", "time_ms", "status", "kind")

    def __init__(self, id, account, market, price, qty, filled, cid, time_ms, status, kind) -> None:
        self.id = id
        self.account = account
        self.market = market
        self.price = price
        self.qty = qty
        self.filled = filled
        self.cid = cid
        self.time_ms = time_ms
        self.status = status
        self.kind = kind

    def __getitem__(self, index: int):
        """`order[O_PRICE]`: the field at that position (see O_*)."""
        return (
            self.id, self.account, self.market, self.price, self.qty, self.filled, self.cid, self.time_ms, self.status, self.kind
        )[index]


# This module compiled by Cython (its __file__ is then the extension's): an
# account's live orders are then an OrderIndex (C arrays), else an OrderDict.
_COMPILED = not __file__.endswith(".py")

# OrderIndex's multiplicative hash (2^64 / the golden ratio): consecutive and
# strided order ids spread over the table.
_FIB = 0x9E3779B97F4A7C15
_INDEX_MIN = 8  # slots of a table's first allocation
_U64_MAX = 2**64 - 1


class OrderIndex:
    """An account's live orders by order id, compiled: an open-addressing
    table (linear probing, backward-shift deletion) of C u64 keys beside a
    list of the orders. 16 bytes a slot at a load of 3/8 to 3/4, where a dict
    costs its entry plus a boxed int key (about 70 bytes an order). Order ids
    are never 0, which marks an empty slot; `ids()` is sorted, so nothing
    depends on the table's layout.

    The pure engine uses OrderDict, the same methods on a dict (book.py runs
    as plain Python only through it; this class's bodies are C code). Ids are
    ints: `get` of anything else is None here, where a dict would also find
    an equal float; nothing in dex passes one.

    No table until the first put (an account without orders costs no slots):
    a new index has _keys NULL, _count 0 and _orders None, as made, so
    __init__ sets nothing (calling it again cannot detach the table).
    """

    def __init__(self) -> None:
        pass

    def __dealloc__(self) -> None:
        free(self._keys)  # noqa: F821

    def __len__(self) -> int:
        return self._count

    def get(self, order_id):
        """The order with this id, or None (for any value, also one that is
        not a u64)."""
        if self._count == 0 or not isinstance(order_id, int) or not 0 < order_id <= _U64_MAX:
            return None
        i = self._slot(order_id)
        return None if self._keys[i] == 0 else self._orders[i]

    def put(self, order_id, order) -> None:
        """Add an order under its id; an id already there keeps its order
        (dict.setdefault's rule, which OrderDict uses: the engine never adds
        an id twice, and the snapshot reader refuses one listed twice)."""
        if order_id == 0:
            raise ValueError("order id 0")  # the empty-slot mark; the engine's ids start at 1
        if self._keys == cython.NULL:  # noqa: F821
            self._resize(_INDEX_MIN)
        elif (self._count + 1) * 4 > (self._mask + 1) * 3:
            self._resize((self._mask + 1) * 2)
        i = self._slot(order_id)
        if self._keys[i] == 0:
            self._keys[i] = order_id
            self._orders[i] = order
            self._count += 1

    def remove(self, order_id) -> None:
        """Take an order out by id (KeyError when it is not in the index)."""
        if order_id == 0 or self._count == 0:
            raise KeyError(order_id)
        i = self._slot(order_id)
        if self._keys[i] == 0:
            raise KeyError(order_id)
        # Backward shift: move each later entry of the run whose home slot is
        # not cyclically within (i, j] into the hole, so no tombstones.
        mask = self._mask
        j = i
        while True:
            j = (j + 1) & mask
            key = self._keys[j]
            if key == 0:
                break
            home = (key * _FIB) >> self._shift
            if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            self._keys[i] = key
            self._orders[i] = self._orders[j]
            i = j
        self._keys[i] = 0
        self._orders[i] = None
        self._count -= 1
        if self._count * 8 < mask + 1 and mask + 1 > _INDEX_MIN:
            try:
                self._resize((mask + 1) // 2)
            except MemoryError:  # shrinking is optional: keep the table it has
                pass

    def ids(self) -> list:
        """The order ids, ascending."""
        if self._keys == cython.NULL:  # noqa: F821
            return []
        found = [self._keys[i] for i in range(self._mask + 1) if self._keys[i] != 0]
        found.sort()
        return found

    def _slot(self, order_id):
        """The slot holding `order_id`, or the empty slot ending its run."""
        mask = self._mask
        i = (order_id * _FIB) >> self._shift
        while True:
            key = self._keys[i]
            if key == order_id or key == 0:
                return i
            i = (i + 1) & mask

    def _resize(self, size) -> None:
        """Rehash into `size` slots (a power of two, >= _INDEX_MIN). Both new
        arrays are made before anything changes: a MemoryError leaves the
        table as it was."""
        orders = [None] * size
        keys = calloc(size, 8)  # noqa: F821
        if keys == cython.NULL:  # noqa: F821
            raise MemoryError()
        old_keys = self._keys
        old_orders = self._orders
        old_size = 0 if old_keys == cython.NULL else self._mask + 1  # noqa: F821
        self._keys = cython.cast(cython.p_ulonglong, keys)  # noqa: F821
        self._orders = orders
        self._mask = size - 1
        bits = 0
        while (1 << bits) < size:
            bits += 1
        self._shift = 64 - bits
        for k in range(old_size):
            key = old_keys[k]
            if key != 0:
                i = self._slot(key)
                self._keys[i] = key
                self._orders[i] = old_orders[k]
        free(old_keys)  # noqa: F821


class OrderDict(dict):
    """OrderIndex's methods on a dict: an account's live orders in the pure
    engine. `put` is dict.setdefault (about the cost of `d[k] = v`, where
    dict.__setitem__ called as a method costs twice that), `remove` dict.pop
    (KeyError when absent), `get` dict.get: C methods, no Python frame. Use only these
    and `len` and `ids`: iterating it, `in` and pickling work on a dict but
    not on the compiled OrderIndex."""

    __slots__ = ()
    put = dict.setdefault
    remove = dict.pop

    def ids(self) -> list:
        """The order ids, ascending."""
        return sorted(self)


# `Level.digest` when the only changes since it was computed are orders
# queued at the back: the state hash then extends `Level.hasher` with them
# instead of re-encoding the whole level (see dex.engine.snapshot).
APPENDED = b"appended"

# The record of a level created since the last state hash (its key is on
# `Book.stale_keys`, so it never reaches a digest).
RECORD_NONE = b""
# Keys listed on `Book.stale_keys` before the book falls back to
# rebuilding every record at its next state hash. A node hashes after every
# block, and a block touches a few levels per command; only an engine left
# unhashed for many commands reaches it.
STALE_LEVELS_MAX = 4096
# Emptied levels a book keeps for reuse (engine.py, `_spare`).
SPARE_LEVELS_MAX = 32


class Level:
    __slots__ = ("price", "total", "count", "orders", "digest", "hasher", "hashed")

    def __init__(self, price: int) -> None:
        self.price = price
        # The cached hash of its live orders: None when stale, APPENDED when
        # orders were only queued at the back since `hasher` (a SHA-256 over
        # the first `hashed` entries of `orders`, dead ones skipped) was taken.
        # `hasher` is a hashlib object, or in the compiled build with OpenSSL
        # a SHA256_CTX in a bytearray (dex/engine/dex_sha256.h).
        self.digest: bytes | None = None
        self.hasher = None
        self.hashed = 0
        self.total = 0  # lots open across live orders
        self.count = 0  # live orders
        self.orders: deque[Order] = deque()


class Account:
    """Balances per asset index, live orders by id (`open`: an OrderIndex
    compiled, an OrderDict in pure Python), and the dedup window.

    `free` and `locked` hold one balance per asset: lists of ints in pure
    Python, `array("q")` compiled, where the engine reads and writes them
    through a C pointer (a fill's eight updates are C adds, not eight new
    ints). Every balance fits a signed 64-bit integer: an asset's total is at
    most limits.BALANCE_UNITS_MAX (2^62), and the state hash packs them as
    i64 in both builds. Compiled, the two fields are read-only (the arrays
    are made here, with that type code) and nothing outside the engine
    changes their length.

    `cids` maps a client order id to its order while the order is live and,
    after it finishes, until DEDUP_FINISHED_ORDERS_MAX later finished orders
    of this account have pushed it out of `finished`.
    """

    __slots__ = ("id", "free", "locked", "open", "cids", "finished", "finished_total", "window_sum", "dirty", "digest")

    def __init__(self, id: int, assets_count: int) -> None:
        self.id = id
        self.finished_total = 0  # orders with a client id that ever finished
        # Sum of H(position, order) over `finished`, mod 2**256: an int in pure
        # Python, its 32 big-endian bytes in a bytearray compiled, folded in
        # place by C (snapshot.window_fold).
        self.window_sum = bytearray(32) if cython.compiled else 0
        self.dirty = False  # changed since its digest was last computed
        self.digest = 0  # its term in the engine's account sum: an int (pure build), its 32 big-endian bytes (compiled)
        # `cython.compiled` is decided when Cython compiles the module: the other arm is dropped.
        self.free = array("q", bytes(8 * assets_count)) if cython.compiled else [0] * assets_count
        self.locked = array("q", bytes(8 * assets_count)) if cython.compiled else [0] * assets_count
        self.open = OrderIndex() if _COMPILED else OrderDict()
        self.cids: dict[str, Order] = {}
        self.finished: deque[Order] = deque()


class Book:
    """One market's two sides plus the market's integer parameters."""

    __slots__ = (
        "market",
        "symbol",
        "index",
        "base",
        "quote",
        "lot_units",
        "notional_units",
        "min_qty",
        "max_qty",
        "max_price",
        "min_notional",
        "maker_bps",
        "taker_bps",
        "bids",
        "asks",
        "bid_prices",
        "ask_keys",
        "bid_levels",
        "ask_levels",
        "order_count",
        "digest",
        "bid_records",
        "ask_records",
        "stale_keys",
        "records_rebuild",
        "level_terms",
        "levels_sum",
        "digest_version",
        "spare_levels",
    )

    def __init__(self, market: Market, index: int, base: int, quote: int) -> None:
        self.market = market
        self.symbol = market.symbol
        self.index = index
        self.base = base  # asset index
        self.quote = quote  # asset index
        self.lot_units = market.lot_units
        self.notional_units = market.notional_units
        self.min_qty = market.min_qty_lots
        self.max_qty = market.max_qty_lots
        self.max_price = market.max_price_ticks
        self.min_notional = market.min_notional_units
        self.maker_bps = market.maker_fee_bps
        self.taker_bps = market.taker_fee_bps
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_prices: list[int] = []  # ascending; best bid last
        self.ask_keys: list[int] = []  # negated ask prices ascending; best ask last
        # The Level at each index of those lists (bid_levels[i] is
        # bids[bid_prices[i]]): the matching loops take the best level by
        # index, not by a dict lookup of its price.
        self.bid_levels: list[Level] = []
        self.ask_levels: list[Level] = []
        self.order_count = 0  # live orders on both sides
        self.digest: bytes | None = None  # cached hash of both sides; None when stale
        # The state hash's per-level records, aligned with the price lists
        # (see the module docstring), and the keys of levels whose record is
        # stale (a bid's price, an ask's negated price).
        self.bid_records: list[bytes] = []
        self.ask_records: list[bytes] = []
        self.stale_keys: list[int] = []
        self.records_rebuild = False  # every record stale: rebuild them all
        # State hash v2: each level's term in the level sum, by the level's
        # key, and their sum mod 2**256, kept by the same refresh (snapshot.py).
        # (ints in the pure build, their 32 big-endian bytes compiled).
        self.level_terms: dict[int, int | bytes] = {}
        self.levels_sum: int | bytearray = 0
        self.digest_version = 0  # the state-hash version `digest` is of
        # Levels taken out of the book, emptied, for its next new levels
        # (engine.py, `_spare`): no live order, in neither side's dict.
        self.spare_levels: list[Level] = []
