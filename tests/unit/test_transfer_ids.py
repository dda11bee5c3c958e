"""Client transfer ids (TransferIds in dex/ledger/replay.py) inside a block's
state transition: a deposit or withdrawal executes once per (account, id),
bounded, and the memory survives its encoding (and a version 1 guard)."""

from __future__ import annotations

import struct

import pytest

from dex.core.commands import Deposit, Withdraw
from dex.core.events import BalanceChanged, OrderRejected
from dex.core.reasons import Reason
from dex.engine import Engine
from dex.ledger import replay
from dex.ledger.codec import decode_command, encode_command
from dex.ledger.replay import DEPOSIT, WITHDRAWAL, ReplayGuard
from tests import kit
from tests.unit.test_replay_guard import ALICE, T0, Ledger

ME = ALICE.account
OTHER = ME + 1


def dep(amount: int, tid: str | None, account: int = ME) -> Deposit:
    return Deposit(account=account, asset="USDT", amount=amount, transfer_id=tid)


def wd(amount: int, tid: str | None, account: int = ME) -> Withdraw:
    return Withdraw(account=account, asset="USDT", amount=amount, transfer_id=tid)


def free(ledger: Ledger, account: int = ME) -> int:
    return ledger.engine.balances(account)["USDT"][0]


def duplicate(tid: str, account: int = ME) -> list:
    return [OrderRejected(account, None, tid, 0, Reason.DUPLICATE_TRANSFER)]


def test_a_transfer_id_executes_once_and_remembers_its_outcome() -> None:
    ledger = Ledger()
    [first] = ledger.block(T0, (None, [dep(100, "d-1")]))
    [again, other] = ledger.block(T0 + 10, (None, [dep(100, "d-1"), dep(7, "d-1", OTHER)]))

    assert first == [BalanceChanged(ME, "USDT", 100, 100)]
    assert again == duplicate("d-1")
    assert other == [BalanceChanged(OTHER, "USDT", 7, 7)]  # ids are per account
    assert free(ledger) == 100
    t = ledger.guard.transfers.get(ME, "d-1")
    assert (t.kind, t.asset, t.amount, t.free, t.height, t.time_ms) == (DEPOSIT, "USDT", 100, 100, 1, T0)
    assert t.type_name == "DEPOSIT"
    ledger.guard.check_invariants()


def test_the_same_id_twice_in_one_block_and_across_deposit_and_withdrawal() -> None:
    ledger = Ledger()
    results = ledger.block(T0, (None, [dep(100, "x"), wd(40, "w"), wd(40, "w"), dep(5, "w")]))

    assert results[1] == [BalanceChanged(ME, "USDT", -40, 60)]
    assert results[2] == duplicate("w") and results[3] == duplicate("w")
    assert free(ledger) == 60
    assert ledger.guard.transfers.get(ME, "w").kind == WITHDRAWAL
    assert ledger.guard.transfers.get(ME, "w").type_name == "WITHDRAW"


def test_a_refused_transfer_is_not_remembered_so_its_id_can_be_retried() -> None:
    ledger = Ledger()
    [refused] = ledger.block(T0, (None, [wd(50, "w-1")]))
    ledger.block(T0 + 1, (None, [dep(80, "d")]))
    [done] = ledger.block(T0 + 2, (None, [wd(50, "w-1")]))

    assert refused[0].reason == Reason.WITHDRAW_INSUFFICIENT
    assert done == [BalanceChanged(ME, "USDT", -50, 30)]


def test_transfers_without_an_id_are_not_deduplicated() -> None:
    ledger = Ledger()
    ledger.block(T0, (None, [dep(10, None), dep(10, None)]))

    assert free(ledger) == 20
    assert len(ledger.guard.transfers) == 0


def test_each_account_keeps_its_newest_ids_and_the_whole_memory_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(replay, "TRANSFER_IDS_PER_ACCOUNT_MAX", 3)
    monkeypatch.setattr(replay, "TRANSFER_IDS_MAX", 5)
    ledger = Ledger()
    ledger.block(T0, (None, [dep(1, f"a{i}") for i in range(4)]))  # a0 falls out of ME's window
    ids = ledger.guard.transfers

    assert ids.get(ME, "a0") is None and ids.get(ME, "a1") is not None
    ledger.block(T0 + 1, (None, [dep(1, f"b{i}", OTHER) for i in range(3)]))  # 6 > 5: the oldest (a1) goes
    assert ids.get(ME, "a1") is None and ids.get(ME, "a2") is not None
    assert len(ids) == 5
    ids.check_invariants()
    [again] = ledger.block(T0 + 2, (None, [dep(1, "a0")]))  # forgotten: executes again
    assert again[0].__class__ is BalanceChanged


def test_the_memory_encodes_in_order_and_a_restored_copy_evicts_the_same(monkeypatch) -> None:
    monkeypatch.setattr(replay, "TRANSFER_IDS_PER_ACCOUNT_MAX", 4)
    monkeypatch.setattr(replay, "TRANSFER_IDS_MAX", 6)
    ledger = Ledger()
    ledger.block(T0, (None, [dep(1, f"a{i}") for i in range(7)] + [dep(1, "b0", OTHER)]))
    restored = ReplayGuard.decode(ledger.guard.encode())
    restored.check_invariants()
    assert restored.encode() == ledger.guard.encode()

    more = [dep(1, "c0", OTHER), dep(1, "a9"), dep(1, "c1", OTHER)]
    engine = Engine.restore(kit.markets(), ledger.engine.snapshot())
    for cmd in more:
        ledger.guard.transfers.apply(ledger.engine, cmd, T0 + 1, 2)
        restored.transfers.apply(engine, cmd, T0 + 1, 2)
    assert restored.encode() == ledger.guard.encode()


def test_a_version_1_guard_decodes_with_no_transfer_ids() -> None:
    guard = ReplayGuard()
    data = guard.encode()
    v1 = data[:4] + struct.pack("<H", 1) + data[6:-4]  # version 1 had no transfer section

    old = ReplayGuard.decode(v1)
    assert len(old.transfers) == 0 and len(old) == 0
    with pytest.raises(ValueError):
        ReplayGuard.decode(v1 + b"\0\0\0\0")  # a version 1 guard holds nothing after its requests


def test_the_codec_keeps_old_transfers_byte_for_byte_and_carries_the_id() -> None:
    plain = dep(5, None)
    assert encode_command(plain)[0] == 5  # the tag blocks made before ids used
    for cmd in (dep(5, "t-1"), wd(5, "t-2"), plain, wd(5, None)):
        assert decode_command(encode_command(cmd)) == (cmd, len(encode_command(cmd)))
