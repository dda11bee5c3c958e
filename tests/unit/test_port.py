"""The ledger port (dex/ledger/port.py) in-process: a real engine behind a
stand-in replica (lock, engine, height, quorum) and a stand-in block builder
whose outcome each test chooses. Checks that submit answers Applied with the
block's time or raises the typed ledger exception for each failure, that
waiters are released by on_block and by nothing else, and that the typed
reads agree with the engine."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from dex.core.commands import CancelOrder, Deposit
from dex.core.reasons import Reason
from dex.engine import Engine
from dex.ledger import builder as block_builder
from dex.ledger.codec import CodecError
from dex.ledger.port import Applied, LedgerPort, NoQuorum, NotLeader, OutcomeUnknown, Overloaded, Unrecordable, within
from tests.kit import ALICE, BOB, BUY, SELL, SYMBOL, limit_order, lots, markets, ticks, units


def run_async(coro):
    """asyncio.run on a thread of its own: a session-scoped Playwright (the
    dashboard tests) leaves an event loop marked running on the main thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()

TIME_MS = 1_700_000_000_000


@dataclass
class Header:
    height: int
    time_ms: int


class FakeReplica:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.engine = Engine(markets())
        self.height = 0
        self.hasQuorum = True
        self.node_id = "n1"
        self.leader_id = "n1"
        self.chain = SimpleNamespace(header=lambda height: None)


class FakeBuilder:
    """Applies the commands to the engine as a block would, on another
    thread, and reports through `port.on_block` then `done` (the order the
    replica's listeners and the builder's callback run in); or fails."""

    def __init__(self, replica: FakeReplica, port_box: list) -> None:
        self.replica = replica
        self.port_box = port_box
        self.refuse: Exception | None = None  # raised by submit: nothing queued
        self.fail: Exception | None = None  # passed to done: the block's fate

    def submit(self, commands, auth, done) -> None:
        if self.refuse is not None:
            raise self.refuse

        def run() -> None:
            if self.fail is not None:
                done(None, None, None, self.fail)
                return
            r = self.replica
            with r.lock:
                results = [r.engine.apply(c, TIME_MS + r.height + 1) for c in commands]
                r.height += 1
            self.port_box[0].on_block(Header(r.height, TIME_MS + r.height), b"h" * 32, None, results)
            done(r.height, b"h" * 32, results, None)

        threading.Thread(target=run).start()


def port_with_builder() -> tuple[LedgerPort, FakeReplica, FakeBuilder]:
    replica = FakeReplica()
    box: list = []
    builder = FakeBuilder(replica, box)
    port = LedgerPort(replica, builder, leader_wait_ms=100)
    box.append(port)
    return port, replica, builder


async def submit(port: LedgerPort, commands: list):
    port.bind_loop(asyncio.get_running_loop())
    return await port.submit(commands, None)


def test_submit_answers_the_applied_block_with_its_time_and_each_commands_events() -> None:
    port, replica, _ = port_with_builder()
    deposit = Deposit(account=ALICE, asset="USDT", amount=units("100", "USDT"))
    cancel = CancelOrder(account=ALICE, symbol=SYMBOL, order_id=99)

    applied = run_async(submit(port, [deposit, cancel]))

    assert isinstance(applied, Applied)
    assert (applied.height, applied.block_hash, applied.time_ms) == (1, b"h" * 32, TIME_MS + 1)
    assert len(applied.results) == 2
    assert applied.results[0][0].free == units("100", "USDT")
    assert applied.results[1][0].reason == Reason.UNKNOWN_ORDER


@pytest.mark.parametrize(("refuse", "fail", "raised"), [
    (block_builder.Overloaded("20000 commands already waiting"), None, Overloaded),
    (CodecError("price out of range"), None, Unrecordable),
    (None, block_builder.NotLeader("not committed"), NotLeader),
    (None, block_builder.Unknown("block outcome unknown"), OutcomeUnknown),
])
def test_each_failure_is_its_typed_ledger_exception(refuse, fail, raised) -> None:
    port, replica, builder = port_with_builder()
    builder.refuse, builder.fail = refuse, fail

    with pytest.raises(raised):
        run_async(submit(port, [Deposit(account=ALICE, asset="USDT", amount=1)]))
    assert replica.height == 0


def test_a_leader_without_quorum_queues_nothing() -> None:
    port, replica, builder = port_with_builder()
    replica.hasQuorum = False
    builder.refuse = AssertionError("the builder was called without a quorum")

    with pytest.raises(NoQuorum):
        run_async(submit(port, [Deposit(account=ALICE, asset="USDT", amount=1)]))


def test_a_waiter_is_released_by_its_height_and_not_before() -> None:
    port, replica, _ = port_with_builder()

    async def run():
        port.bind_loop(asyncio.get_running_loop())
        waiting = asyncio.ensure_future(port.wait_applied(2, 5.0))
        await asyncio.sleep(0)  # registered
        replica.height = 1
        port.on_block(Header(1, TIME_MS), b"", None, [])
        for _ in range(20):  # loop iterations enough for a release to reach the waiter (not time)
            await asyncio.sleep(0)
        early = waiting.done()
        replica.height = 2
        threading.Thread(target=port.on_block, args=(Header(2, TIME_MS), b"", None, [])).start()  # the Raft thread
        return early, await waiting, await port.wait_applied(3, 0.05), await port.wait_applied(1, 0.0)

    early, released, not_applied, already = run_async(run())

    assert not early, "released by a lower height"
    assert (released, not_applied, already) == (True, False, True)


def test_wait_leader_gives_up_without_one() -> None:
    port, replica, _ = port_with_builder()
    replica.leader_id = None

    assert run_async(port.wait_leader()) is None
    replica.leader_id = "n2"
    assert run_async(port.wait_leader()) == "n2"


def test_reads_agree_with_the_engine() -> None:
    port, replica, _ = port_with_builder()
    e = replica.engine
    e.apply(Deposit(account=ALICE, asset="USDT", amount=units("100000", "USDT")), TIME_MS)
    e.apply(Deposit(account=BOB, asset="BTC", amount=units("1", "BTC")), TIME_MS)
    e.apply(limit_order(ALICE, BUY, ticks("50000.00"), lots("0.01000")), TIME_MS)
    e.apply(limit_order(BOB, SELL, ticks("51000.00"), lots("0.02000")), TIME_MS)
    e.apply(limit_order(BOB, SELL, ticks("51000.00"), lots("0.03000")), TIME_MS)

    (bob_first, bob_second) = port.open_orders(BOB, SYMBOL)
    assert port.order(BOB, SYMBOL, bob_first.order_id) == e.order(BOB, SYMBOL, bob_first.order_id)
    assert port.balances(ALICE) == e.balances(ALICE)
    bids, asks, height = port.depth(SYMBOL, 10)
    assert (bids, asks, height) == (*e.depth(SYMBOL, 10), replica.height)
    with port.view() as view:
        resting = {oid: (SYMBOL, is_bid, price) for oid, is_bid, price in view.resting_orders(SYMBOL)}
        assert resting[bob_second.order_id] == view.resting_order(BOB, bob_second.order_id) == (SYMBOL, False, ticks("51000.00"))
        assert view.resting_order(ALICE, bob_second.order_id) is None, "another account's order"
        assert view.level_totals(SYMBOL, [(False, ticks("51000.00")), (True, ticks("1.00"))]) == ([(ticks("1.00"), 0)], [(ticks("51000.00"), lots("0.05000"))])
    assert port.resting_counts([SYMBOL]) == {SYMBOL: 3}


def test_the_pre_trade_check_says_what_the_engine_would_and_places_nothing() -> None:
    port, replica, _ = port_with_builder()
    e = replica.engine
    poor = limit_order(ALICE, BUY, ticks("50000.00"), lots("0.01000"))

    assert port.check_place(poor) == Reason.INSUFFICIENT_BALANCE
    assert port.check_place(limit_order(ALICE, BUY, 1, 1, symbol="NOPE")) == Reason.UNKNOWN_SYMBOL
    e.apply(Deposit(account=ALICE, asset="USDT", amount=units("100000", "USDT")), TIME_MS)
    hash_before = e.state_hash()
    assert port.check_place(poor) is None
    assert e.state_hash() == hash_before and port.open_orders(ALICE) == []


def test_apply_latency_is_sampled_only_once_the_replica_has_caught_up() -> None:
    port, replica, _ = port_with_builder()
    ready = [False]
    replica.isReady = lambda: ready[0]  # PySyncObj's: applied up to the commit index a leader first told it
    now_ms = time.time_ns() // 1_000_000
    old = now_ms - 3_600_000  # an hour-old block, replayed while catching up

    port.on_block(Header(1, old), b"", None, [])
    assert list(port.apply_ms_recent) == []
    ready[0] = True
    port.on_block(Header(2, now_ms - 5), b"", None, [])
    (sample,) = port.apply_ms_recent

    assert 5 <= sample < 3_600_000, sample  # this node's clock against the block's time, not the replay's age


# ------------------------------------------------------------------ within

def test_within_returns_the_result_or_times_out_leaving_the_future_settled() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.call_soon(ready.set_result, 7)
        assert await within(ready, 5) == 7

        late = loop.create_future()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await within(late, 0.05)
        assert loop.time() - started >= 0.05
        assert late.done() and isinstance(late.exception(), asyncio.TimeoutError)  # a late answer: _settle skips it

        waited = loop.create_future()
        task = asyncio.ensure_future(within(waited, 0.05))
        await asyncio.sleep(0)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waited.cancelled()
        timers = len(loop._scheduled)  # noqa: SLF001 (the timer went with it: nothing fires later)
        assert timers == 0 or all(h.cancelled() for h in loop._scheduled)  # noqa: SLF001

    run_async(scenario())
