"""The replay guard (dex/ledger/replay.py) alone, and inside a block's
state transition (dex/ledger/state.py): a signed request executes once."""

from __future__ import annotations

import pytest

from dex.auth import Keypair, signed_payload
from dex.core.commands import Deposit, PlaceOrder, Withdraw
from dex.core.events import BalanceChanged, OrderRejected
from dex.core.reasons import Reason
from dex.core.types import Side
from dex.engine import Engine
from dex.ledger import replay
from dex.ledger.codec import GENESIS_PARENT, NO_AUTH, Auth, Proposal, decode_proposal, encode_proposal
from dex.ledger.replay import REQUEST_AGE_MS_MAX, REQUEST_LEAD_MS_MAX, ReplayGuard, request_id
from dex.ledger.state import apply_proposal
from tests import kit

T0 = 1_700_000_000_000
ALICE = Keypair.from_private(bytes(range(32)))


def signed(ts: int, body: bytes = b'{"asset":"USDT","amount":"1"}', path: str = "/api/v1/withdraw") -> Auth:
    payload = signed_payload(ts, "POST", path, "", body)
    return Auth(public_key=ALICE.public, timestamp_ms=ts, signature=ALICE.sign(payload), payload=payload)


def admit(guard: ReplayGuard, auth: Auth, block_time_ms: int) -> Reason | None:
    guard.advance(block_time_ms)
    verdict = guard.admit(auth.public_key, auth.timestamp_ms, auth.payload, block_time_ms)
    guard.check_invariants()
    return verdict


# ------------------------------------------------------------------ the guard


def test_a_request_is_admitted_once_then_refused_as_replayed() -> None:
    guard = ReplayGuard()
    auth = signed(T0)

    assert admit(guard, auth, T0 + 10) is None
    assert admit(guard, auth, T0 + 20) is Reason.REPLAYED
    assert guard.used(auth.public_key, auth.payload)
    assert len(guard) == 1


def test_requests_that_differ_in_any_signed_byte_are_different_requests() -> None:
    guard = ReplayGuard()

    assert admit(guard, signed(T0), T0) is None
    assert admit(guard, signed(T0 + 1), T0) is None  # another timestamp
    assert admit(guard, signed(T0, b'{"asset":"USDT","amount":"2"}'), T0) is None
    assert admit(guard, signed(T0, path="/api/v1/deposit"), T0) is None
    assert len(guard) == 4


def test_timestamps_outside_the_window_are_refused_at_both_ends() -> None:
    assert admit(ReplayGuard(), signed(T0), T0 + REQUEST_AGE_MS_MAX + 1) is Reason.EXPIRED_REQUEST
    fresh = ReplayGuard()
    assert admit(fresh, signed(T0 + REQUEST_LEAD_MS_MAX + 1), T0) is Reason.EXPIRED_REQUEST
    assert admit(fresh, signed(T0 + REQUEST_LEAD_MS_MAX), T0) is None
    assert admit(fresh, signed(T0 - REQUEST_AGE_MS_MAX), T0) is None
    assert len(fresh) == 2


def test_an_expired_request_is_forgotten_and_its_replay_is_still_refused() -> None:
    guard = ReplayGuard()
    old, recent = signed(T0), signed(T0 + 50_000)
    assert admit(guard, old, T0) is None
    assert admit(guard, recent, T0 + 50_000) is None

    later = T0 + REQUEST_AGE_MS_MAX + 2_000
    assert admit(guard, old, later) is Reason.EXPIRED_REQUEST

    assert not guard.used(old.public_key, old.payload)  # forgotten: the timestamp refuses it
    assert guard.used(recent.public_key, recent.payload)
    assert len(guard) == 1


def test_a_long_idle_gap_forgets_everything() -> None:
    guard = ReplayGuard()
    for i in range(100):
        assert admit(guard, signed(T0 + i * 1_000), T0 + i * 1_000) is None

    guard.advance(T0 + 10**12)  # years later: no loop over every second in between

    assert len(guard) == 0
    guard.check_invariants()


def test_the_guard_refuses_new_requests_at_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "REQUESTS_REMEMBERED_MAX", 3)
    guard = ReplayGuard()
    for i in range(3):
        assert admit(guard, signed(T0 + i), T0) is None

    assert admit(guard, signed(T0 + 3), T0) is Reason.REQUESTS_WINDOW_FULL
    assert admit(guard, signed(T0), T0) is Reason.REPLAYED  # a replay is still named as one
    later = T0 + REQUEST_AGE_MS_MAX + 1_000
    assert admit(guard, signed(later), later) is None  # the first three expired: room again
    assert len(guard) == 1


def test_the_encoding_round_trips_and_does_not_depend_on_insertion_order() -> None:
    a, b = ReplayGuard(), ReplayGuard()
    auths = [signed(T0 + i * 700) for i in range(20)]
    for auth in auths:
        admit(a, auth, T0 + 14_000)
    for auth in reversed(auths):
        admit(b, auth, T0 + 14_000)

    assert a.encode() == b.encode()
    restored = ReplayGuard.decode(a.encode())
    restored.check_invariants()
    assert restored.encode() == a.encode()
    assert all(restored.used(x.public_key, x.payload) for x in auths)
    assert admit(restored, auths[0], T0 + 15_000) is Reason.REPLAYED


@pytest.mark.parametrize("damage", ["magic", "short", "long"])
def test_a_damaged_encoding_is_refused(damage: str) -> None:
    guard = ReplayGuard()
    admit(guard, signed(T0), T0)
    data = guard.encode()
    data = {"magic": b"XXXX" + data[4:], "short": data[:-1], "long": data + b"\0"}[damage]

    with pytest.raises(ValueError):
        ReplayGuard.decode(data)


def test_the_request_id_covers_the_key_and_every_signed_byte() -> None:
    payload = signed_payload(T0, "POST", "/api/v1/order", "", b"{}")
    other_key = Keypair.from_private(bytes(range(1, 33)))

    assert request_id(ALICE.public, payload) != request_id(other_key.public, payload)
    assert request_id(ALICE.public, payload) != request_id(ALICE.public, payload + b" ")
    assert len(request_id(ALICE.public, payload)) == replay.REQUEST_ID_BYTES


# ------------------------------------------------------- inside a block


class Ledger:
    """An engine and a guard applying proposals as a replica does."""

    def __init__(self) -> None:
        self.engine = Engine(kit.markets())
        self.guard = ReplayGuard()
        self.parent = None
        self.parent_hash = GENESIS_PARENT

    def block(self, time_ms: int, *requests: tuple[Auth | None, list]) -> list[list]:
        auths, commands, indexes = [], [], []
        for auth, cmds in requests:
            index = NO_AUTH
            if auth is not None:
                index = len(auths)
                auths.append(auth)
            commands.extend(cmds)
            indexes.extend([index] * len(cmds))
        raw = encode_proposal(Proposal(leader="n1", term=1, time_ms=time_ms, commands=tuple(commands), auth_index=tuple(indexes), auths=tuple(auths)))
        proposal, leaves = decode_proposal(raw)
        header, _, results = apply_proposal(self.engine, self.guard, self.parent, self.parent_hash, proposal, leaves)
        self.parent, self.parent_hash = header, header.hash
        return results


def test_a_replayed_withdrawal_in_a_later_block_changes_nothing() -> None:
    ledger = Ledger()
    me = ALICE.account
    ledger.block(T0, (None, [Deposit(account=me, asset="USDT", amount=100)]))
    auth = signed(T0 + 5)
    withdraw = [Withdraw(account=me, asset="USDT", amount=1)]

    first = ledger.block(T0 + 10, (auth, withdraw))
    state = ledger.engine.state_hash()
    again = ledger.block(T0 + 20, (auth, withdraw), (auth, withdraw))

    assert first[0][0].__class__ is BalanceChanged and first[0][0].free == 99
    assert again == [[OrderRejected(me, None, None, 0, Reason.REPLAYED)]] * 2
    assert ledger.engine.state_hash() == state
    assert ledger.engine.balances(me)["USDT"] == (99, 0)


def test_a_request_carried_twice_in_one_block_executes_once_and_unsigned_commands_are_untouched() -> None:
    ledger = Ledger()
    me = ALICE.account
    auth = signed(T0, b'{"batch":1}', "/api/v1/batchOrders")
    orders = [PlaceOrder(account=me, symbol=kit.SYMBOL, side=Side.BUY, price=kit.ticks("100.00"), qty=kit.lots("1.0"), client_order_id=f"b{i}") for i in range(2)]

    results = ledger.block(T0, (None, [Deposit(account=me, asset="USDT", amount=10**12)]), (auth, orders), (auth, orders), (None, [Deposit(account=me, asset="USDT", amount=1)]))

    assert [ev[0].__class__.__name__ for ev in results] == ["BalanceChanged", "OrderAccepted", "OrderAccepted", "OrderRejected", "OrderRejected", "BalanceChanged"]
    assert [ev[0].reason for ev in results[3:5]] == [Reason.REPLAYED, Reason.REPLAYED]
    assert [ev[0].client_order_id for ev in results[3:5]] == ["b0", "b1"]
    assert len(ledger.engine.open_orders(me)) == 2


def test_a_request_older_than_the_window_is_refused_by_the_block() -> None:
    ledger = Ledger()
    me = ALICE.account
    ledger.block(T0, (None, [Deposit(account=me, asset="USDT", amount=100)]))

    results = ledger.block(T0 + REQUEST_AGE_MS_MAX + 1, (signed(T0), [Withdraw(account=me, asset="USDT", amount=1)]))

    assert results == [[OrderRejected(me, None, None, 0, Reason.EXPIRED_REQUEST)]]
    assert ledger.engine.balances(me)["USDT"] == (100, 0)


# ------------------------------------------------- the benchmark's switch


def test_the_bench_switch_is_refused_off_loopback_and_turns_the_check_off(monkeypatch) -> None:
    from types import SimpleNamespace

    from dex.node import NO_REPLAY_CHECK_ENV, replay_check

    remote = SimpleNamespace(loopback_only=False, path="cluster.toml")
    local = SimpleNamespace(loopback_only=True, path="cluster.toml")
    assert replay_check(remote) and replay_check(local)  # unset: on
    monkeypatch.setenv(NO_REPLAY_CHECK_ENV, "1")
    with pytest.raises(SystemExit):
        replay_check(remote)
    assert replay_check(local) is False
    monkeypatch.setenv(NO_REPLAY_CHECK_ENV, "yes")
    with pytest.raises(SystemExit):
        replay_check(local)

    guard = ReplayGuard()
    guard.checking = False
    auth = signed(T0)
    assert admit(guard, auth, T0) is None and admit(guard, auth, T0) is None
    assert not guard.used(auth.public_key, auth.payload) and len(guard) == 0
