"""Snapshot, restore and state hash: a restored engine has the same hash and
behaves the same from then on; the hash depends only on the logical state;
a snapshot that does not decode raises SnapshotError."""

import hashlib
import struct

import pytest

from dex.core.commands import CancelAll, Deposit
from dex.core.markets import MarketConfig
from dex.engine import Engine, SnapshotError
from dex.engine.snapshot import MAGIC, VERSION
from tests import kit, streams
from tests.kit import ALICE, BOB, CAROL, EXPIRE_MAKER, IOC, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")

MID_STREAM_SEEDS = (11, 2024, 90210)
MID_STREAM_COUNT = 20_000


def _busy_exchange() -> kit.Exchange:
    """Resting orders on both sides of two markets, partial fills, finished
    orders in the dedup window, an amended order and dead queue entries."""
    ex = kit.funded_exchange()
    ex.sell(BOB, price=P, qty=Q, client_order_id="b1")
    ex.sell(CAROL, price=P, qty=Q)
    ex.sell(BOB, price=P + 100, qty=Q)
    ex.buy(CAROL, price=P - 100, qty=Q, client_order_id="c1")
    ex.buy(ALICE, price=P - 100, qty=Q)
    ex.buy(ALICE, price=P, qty=Q + 300, tif=IOC, client_order_id="a-ioc")
    ex.cancel(CAROL, client_order_id="c1")  # dead at the front of P - 100
    ex.amend(CAROL, order_id=2, qty=Q + 500)  # leaves the queue at P and rejoins it
    ex.sell(ALICE, price=ticks("3000", "ETHUSDT"), qty=lots("1", "ETHUSDT"), symbol="ETHUSDT", client_order_id="e1")
    ex.buy(BOB, price=ticks("2999", "ETHUSDT"), qty=lots("2", "ETHUSDT"), symbol="ETHUSDT")
    return ex


# ---------------------------------------------------------------- round trip


def test_restored_engine_has_the_same_state_hash():
    ex = _busy_exchange()

    restored = Engine.restore(ex.config, ex.engine.snapshot())

    assert restored.state_hash() == ex.state_hash()


def test_restored_engine_snapshots_to_the_same_bytes():
    ex = _busy_exchange()
    data = ex.engine.snapshot()

    restored = Engine.restore(ex.config, data)

    assert restored.snapshot() == data


def test_restored_engine_passes_invariants_and_answers_queries_alike():
    ex = _busy_exchange()

    restored = Engine.restore(ex.config, ex.engine.snapshot())

    restored.check_invariants()
    for account in (ALICE, BOB, CAROL, kit.FEE):
        assert restored.balances(account) == ex.engine.balances(account)
        assert restored.open_orders(account) == ex.engine.open_orders(account)
    for symbol in ex.engine.books:
        assert restored.depth(symbol, 100) == ex.engine.depth(symbol, 100)


def test_empty_engine_round_trips():
    engine = Engine(kit.markets())

    restored = Engine.restore(kit.markets(), engine.snapshot())

    assert restored.state_hash() == engine.state_hash()


def test_snapshot_starts_with_magic_and_version():
    data = Engine(kit.markets()).snapshot()

    assert data[:6] == MAGIC + struct.pack("<H", VERSION)


def test_restored_engine_behaves_the_same_from_then_on():
    original = _busy_exchange()
    restored = original.restored()
    script = [
        kit.limit_order(ALICE, kit.BUY, P + 100, 3 * Q),  # sweeps through the dead entry at P
        kit.limit_order(BOB, kit.SELL, P - 100, Q, stp=EXPIRE_MAKER),
        kit.limit_order(ALICE, kit.BUY, P, Q, client_order_id="a-ioc"),  # a duplicate
        kit.limit_order(CAROL, kit.BUY, P, Q, client_order_id="c1"),  # also still reserved
        kit.market_order(CAROL, kit.SELL, qty=2 * Q),
        kit.market_order(ALICE, kit.BUY, quote_qty=kit.units("30", "USDT"), symbol="ETHUSDT"),
        CancelAll(account=BOB),
    ]

    for command in script:
        assert restored.apply(command) == original.apply(command), command
    assert restored.state_hash() == original.state_hash()


@pytest.mark.parametrize("seed", MID_STREAM_SEEDS)
def test_mid_stream_restore_continues_exactly_like_the_original(seed):
    stream = list(streams.commands(seed, MID_STREAM_COUNT))
    half = len(stream) // 2
    original = Engine(streams.config())
    for command, time_ms in stream[:half]:
        original.apply(command, time_ms)
    restored = Engine.restore(streams.config(), original.snapshot())
    rerun = f"seed {seed}: rerun with tests.streams.commands({seed}, {MID_STREAM_COUNT})"
    assert restored.state_hash() == original.state_hash(), rerun

    for i, (command, time_ms) in enumerate(stream[half:], start=half):
        expected = original.apply(command, time_ms)
        actual = restored.apply(command, time_ms)
        assert actual == expected, f"{rerun}: command {i} {command} diverged"

    assert restored.state_hash() == original.state_hash(), rerun
    restored.check_invariants()
    original.check_invariants()


def test_state_hash_after_every_command_equals_a_fresh_restores():
    # A restored engine has no history and no cached digests: its hash is the
    # logical state's. The running engine's must agree after every command.
    seed, count = 77, 800
    engine = Engine(streams.config())

    for i, (command, time_ms) in enumerate(streams.commands(seed, count)):
        engine.apply(command, time_ms)
        fresh = Engine.restore(streams.config(), engine.snapshot())
        assert engine.state_hash() == fresh.state_hash(), f"seed {seed}: command {i} {command}"


# ------------------------------------------------------------ logical hash


def test_dead_queue_entries_do_not_change_the_hash():
    # Path A leaves BOB's cancelled order dead in the deque at P; path B
    # cancels it from a level of its own, which disappears.
    dead = kit.funded_exchange()
    dead.sell(BOB, price=P, qty=Q)
    dead.sell(CAROL, price=P, qty=Q)
    dead.cancel(BOB, order_id=1)
    clean = kit.funded_exchange()
    clean.sell(BOB, price=P + 1, qty=Q)
    clean.sell(CAROL, price=P, qty=Q)
    clean.cancel(BOB, order_id=1)

    assert len(dead.engine.books["BTCUSDT"].asks[P].orders) == 2, "the scenario must leave a dead entry"
    assert dead.state_hash() == clean.state_hash()


def test_order_of_account_creation_does_not_change_the_hash():
    alice_first = kit.Exchange()
    alice_first.deposit(ALICE, "BTC", 5)
    alice_first.deposit(BOB, "ETH", 7)
    bob_first = kit.Exchange()
    bob_first.deposit(BOB, "ETH", 7)
    bob_first.deposit(ALICE, "BTC", 5)

    assert alice_first.state_hash() == bob_first.state_hash()


def test_hash_changes_with_the_logical_state():
    one = kit.funded_exchange()
    one.sell(BOB, price=P, qty=Q)
    other = kit.funded_exchange()
    other.sell(BOB, price=P, qty=Q + 1)

    assert one.state_hash() != other.state_hash()


def test_hash_changes_when_an_amend_requeues_an_order():
    bob_first = kit.funded_exchange()
    bob_first.sell(BOB, price=P, qty=Q)
    bob_first.sell(CAROL, price=P, qty=Q)
    bob_first.amend(BOB, order_id=1, qty=Q)  # same total: keeps its place
    carol_first = kit.funded_exchange()
    carol_first.sell(BOB, price=P, qty=Q)
    carol_first.sell(CAROL, price=P, qty=Q)
    carol_first.amend(BOB, order_id=1, qty=Q + 1)  # loses its place
    carol_first.amend(BOB, order_id=1, qty=Q)

    assert bob_first.state_hash() != carol_first.state_hash()


def test_state_hash_is_sha256_hex():
    digest = Engine(kit.markets()).state_hash()

    assert len(digest) == 64 and int(digest, 16) >= 0


# ---------------------------------------------------------------- corrupt


@pytest.fixture(scope="module")
def snapshot() -> bytes:
    return _busy_exchange().engine.snapshot()


def test_bad_magic_raises_snapshot_error(snapshot):
    with pytest.raises(SnapshotError):
        Engine.restore(kit.markets(), b"XXXX" + snapshot[4:])


def test_unknown_version_raises_snapshot_error(snapshot):
    with pytest.raises(SnapshotError):
        Engine.restore(kit.markets(), snapshot[:4] + struct.pack("<H", VERSION + 1) + snapshot[6:])


def test_trailing_bytes_raise_snapshot_error(snapshot):
    with pytest.raises(SnapshotError):
        Engine.restore(kit.markets(), snapshot + b"\x00")


def test_every_truncation_raises_snapshot_error(snapshot):
    for length in range(len(snapshot)):
        with pytest.raises(SnapshotError):
            Engine.restore(kit.markets(), snapshot[:length])


def test_every_truncation_with_a_valid_checksum_raises_snapshot_error(snapshot):
    """The reader's own bounds, not the trailer: a body cut anywhere, with
    its checksum recomputed (the compiled reader loads order records with
    unchecked C reads, so it checks each record's length itself)."""
    body = snapshot[:-32]
    for length in range(len(body)):
        with pytest.raises(SnapshotError):
            Engine.restore(kit.markets(), body[:length] + hashlib.sha256(body[:length]).digest())


def test_empty_bytes_raise_snapshot_error():
    with pytest.raises(SnapshotError):
        Engine.restore(kit.markets(), b"")


def test_snapshot_of_other_assets_raises_snapshot_error(snapshot):
    with pytest.raises(SnapshotError):
        Engine.restore(kit.inline_config(), snapshot)


def test_snapshot_of_other_markets_raises_snapshot_error(snapshot):
    btcusdt_only = MarketConfig(assets=kit.markets().assets, markets=kit.markets().markets[:1])

    with pytest.raises(SnapshotError):
        Engine.restore(btcusdt_only, snapshot)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_single_byte_flip_raises_snapshot_error(snapshot, mask):
    for i in range(len(snapshot)):
        damaged = bytearray(snapshot)
        damaged[i] ^= mask
        with pytest.raises(SnapshotError):
            Engine.restore(kit.markets(), bytes(damaged))


def test_snapshot_with_a_flipped_balance_byte_raises_snapshot_error():
    # Regression: without a checksum this restored silently into an engine
    # whose BTC no longer added up.
    engine = Engine(kit.markets())
    engine.apply(Deposit(account=ALICE, asset="BTC", amount=5), 1)
    data = bytearray(engine.snapshot())
    account_record = data.rindex(struct.pack("<Q", ALICE) + struct.pack("<q", 5))
    data[account_record + 8] ^= 0x01  # ALICE's free BTC: 5 -> 4

    with pytest.raises(SnapshotError):
        Engine.restore(kit.markets(), bytes(data))


def _one_resting_order() -> tuple[kit.Exchange, object, object]:
    ex = kit.funded_exchange()
    ex.sell(BOB, price=P, qty=Q)
    book = ex.engine.books["BTCUSDT"]
    level = book.asks[P]
    return ex, book, level


def test_a_snapshot_listing_an_order_twice_raises_snapshot_error():
    """An order's id is its key in its account's index: a second record of
    it is refused (the compiled index would refuse the insert, the pure one
    would overwrite; the reader checks before either)."""
    ex, book, level = _one_resting_order()
    order = level.orders[0]
    level.orders.append(order)  # the encoder writes what the book holds
    level.count += 1
    level.total += order.qty
    book.order_count += 1

    with pytest.raises(SnapshotError, match="listed twice"):
        Engine.restore(ex.config, ex.engine.snapshot())


def test_a_snapshot_listing_one_order_id_under_two_accounts_raises_snapshot_error():
    """Two live orders of different accounts with one id: each account's own
    index would take its copy; the reader's table of every id read refuses
    the second."""
    ex, book, level = _one_resting_order()
    ex.buy(ALICE, price=P - 100, qty=Q)
    bid = book.bids[P - 100].orders[0]
    assert bid.account != level.orders[0].account
    bid.id = level.orders[0].id  # the encoder writes what the book holds

    with pytest.raises(SnapshotError, match="listed twice"):
        Engine.restore(ex.config, ex.engine.snapshot())


def test_a_snapshot_with_a_finished_order_id_that_is_also_live_raises_snapshot_error():
    ex, book, level = _one_resting_order()
    ex.buy(ALICE, price=P - 100, qty=Q, client_order_id="gone")
    ex.cancel(ALICE, client_order_id="gone")
    finished = ex.engine.accounts[ALICE].finished[-1]
    finished.id = level.orders[0].id  # BOB's live order's id, in ALICE's dedup window

    with pytest.raises(SnapshotError, match="listed twice"):
        Engine.restore(ex.config, ex.engine.snapshot())


def test_a_snapshot_order_of_an_unknown_account_raises_snapshot_error():
    ex, _, level = _one_resting_order()
    level.orders[0].account = 2**64 - 1  # no such account in the snapshot

    with pytest.raises(SnapshotError):
        Engine.restore(ex.config, ex.engine.snapshot())


def test_a_snapshot_order_id_the_engine_could_not_have_made_raises_snapshot_error():
    ex, _, _ = _one_resting_order()
    ex.engine.next_order_id = 1  # the resting order's id is 1: not below it

    with pytest.raises(SnapshotError, match="outside"):
        Engine.restore(ex.config, ex.engine.snapshot())


@pytest.mark.parametrize("field", [0, 1])
@pytest.mark.parametrize("value", [0, 2**63, 2**64 - 1])
def test_a_snapshot_next_id_out_of_range_raises_snapshot_error(field, value):
    """The next order and trade ids are i64 counters in the compiled engine:
    both builds refuse what one of them could not hold."""
    ex, _, _ = _one_resting_order()
    body = bytearray(ex.engine.snapshot()[:-32])
    head = struct.Struct("<4sHQQ")  # dex.engine.snapshot._HEAD: magic, version, next order id, next trade id
    fields = list(head.unpack_from(body, 0))
    fields[2 + field] = value
    head.pack_into(body, 0, *fields)

    with pytest.raises(SnapshotError, match="out of range"):
        Engine.restore(ex.config, bytes(body) + hashlib.sha256(body).digest())
