"""Deposits, withdrawals and their rejections; free and locked accounting
through resting orders and partial fills; conservation of every asset."""

import pytest

from dex.core import limits
from dex.core.commands import Deposit, Withdraw
from dex.core.events import BalanceChanged
from dex.core.reasons import Reason
from tests import kit
from tests.kit import ALICE, BOB, DAVE, FEE, cost, lots, ticks, units

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")
MAX = limits.AMOUNT_UNITS_MAX  # 2**62


# ------------------------------------------------------------------ deposit


def test_deposit_credits_free_balance_and_reports_it():
    ex = kit.Exchange()

    events = ex.deposit(ALICE, "USDT", units("250", "USDT"))

    assert events == [BalanceChanged(ALICE, "USDT", units("250", "USDT"), units("250", "USDT"))]
    assert ex.engine.balances(ALICE)["USDT"] == (units("250", "USDT"), 0)


def test_deposit_creates_the_account():
    ex = kit.Exchange()

    ex.deposit(DAVE, "BTC", 1)

    assert DAVE in ex.engine.accounts
    assert ex.engine.balances(DAVE) == {"BTC": (1, 0), "ETH": (0, 0), "USDT": (0, 0)}


def test_deposits_add_up():
    ex = kit.Exchange()
    ex.deposit(ALICE, "ETH", 5)

    events = ex.deposit(ALICE, "ETH", 7)

    assert events[0].free == 12


def test_deposit_up_to_the_supply_bound_is_accepted():
    ex = kit.Exchange()
    ex.deposit(ALICE, "BTC", MAX - 10)

    events = ex.deposit(BOB, "BTC", 10)

    assert events == [BalanceChanged(BOB, "BTC", 10, 10)]


def test_withdrawal_makes_room_under_the_supply_bound():
    ex = kit.Exchange()
    ex.deposit(ALICE, "BTC", MAX)
    ex.withdraw(ALICE, "BTC", 5)

    events = ex.deposit(BOB, "BTC", 5)

    assert events == [BalanceChanged(BOB, "BTC", 5, 5)]


# ----------------------------------------------------------------- withdraw


def test_withdraw_debits_free_balance_and_reports_it(ex):
    start = ex.free(ALICE, "USDT")

    events = ex.withdraw(ALICE, "USDT", units("10", "USDT"))

    assert events == [BalanceChanged(ALICE, "USDT", -units("10", "USDT"), start - units("10", "USDT"))]


def test_withdraw_of_whole_free_balance_leaves_zero(ex):
    ex.withdraw(ALICE, "ETH", ex.free(ALICE, "ETH"))

    assert ex.engine.balances(ALICE)["ETH"] == (0, 0)


# --------------------------------------------------------------- rejections

WALLET_REJECTIONS = [
    ("deposit-unknown-asset", Deposit(account=ALICE, asset="DOGE", amount=1), Reason.UNKNOWN_ASSET),
    ("withdraw-unknown-asset", Withdraw(account=ALICE, asset="DOGE", amount=1), Reason.UNKNOWN_ASSET),
    ("deposit-to-fee-account", Deposit(account=FEE, asset="BTC", amount=1), Reason.RESERVED_ACCOUNT),
    ("deposit-to-negative-account", Deposit(account=-1, asset="BTC", amount=1), Reason.RESERVED_ACCOUNT),
    ("withdraw-from-fee-account", Withdraw(account=FEE, asset="BTC", amount=1), Reason.RESERVED_ACCOUNT),
    ("withdraw-from-negative-account", Withdraw(account=-1, asset="BTC", amount=1), Reason.RESERVED_ACCOUNT),
    ("deposit-to-account-id-above-u64", Deposit(account=limits.ACCOUNT_ID_MAX + 1, asset="BTC", amount=1), Reason.BAD_PARAMETER),
    ("deposit-zero", Deposit(account=ALICE, asset="BTC", amount=0), Reason.BAD_AMOUNT),
    ("deposit-negative", Deposit(account=ALICE, asset="BTC", amount=-1), Reason.BAD_AMOUNT),
    ("deposit-above-bound", Deposit(account=DAVE, asset="BTC", amount=MAX + 1), Reason.BAD_AMOUNT),
    ("withdraw-zero", Withdraw(account=ALICE, asset="BTC", amount=0), Reason.BAD_AMOUNT),
    ("withdraw-negative", Withdraw(account=ALICE, asset="BTC", amount=-5), Reason.BAD_AMOUNT),
    ("withdraw-above-bound", Withdraw(account=ALICE, asset="BTC", amount=MAX + 1), Reason.BAD_AMOUNT),
    ("deposit-past-supply-bound", Deposit(account=DAVE, asset="BTC", amount=MAX), Reason.BALANCE_OVERFLOW),
    ("withdraw-more-than-free", Withdraw(account=ALICE, asset="BTC", amount=units("100", "BTC") + 1), Reason.WITHDRAW_INSUFFICIENT),
    ("withdraw-unknown-account", Withdraw(account=99, asset="BTC", amount=1), Reason.WITHDRAW_INSUFFICIENT),
    # Precedence: the first failing check in ENGINE.md's order wins.
    ("unknown-asset-before-reserved", Deposit(account=FEE, asset="DOGE", amount=0), Reason.UNKNOWN_ASSET),
    ("reserved-before-bad-amount", Deposit(account=FEE, asset="BTC", amount=0), Reason.RESERVED_ACCOUNT),
    ("bad-amount-before-insufficient", Withdraw(account=99, asset="BTC", amount=0), Reason.BAD_AMOUNT),
]


@pytest.mark.parametrize(("command", "reason"), [c[1:] for c in WALLET_REJECTIONS], ids=[c[0] for c in WALLET_REJECTIONS])
def test_wallet_rejection_has_its_reason_and_changes_nothing(ex, command, reason):
    before = ex.state_hash()

    events = ex.apply(command)

    assert kit.rejection(events) == reason
    assert ex.state_hash() == before


def test_locked_funds_cannot_be_withdrawn(ex):
    ex.sell(ALICE, price=P, qty=ex.free(ALICE, "BTC") // 1_000)  # every BTC on the book
    before = ex.state_hash()

    events = ex.withdraw(ALICE, "BTC", 1)

    assert kit.rejection(events) == Reason.WITHDRAW_INSUFFICIENT
    assert ex.state_hash() == before


def test_new_account_past_the_account_bound_is_rejected(ex, monkeypatch):
    # A million accounts take too long to open: shrink the bound to the three
    # the fixture opened (the fee account is not counted).
    monkeypatch.setattr(limits, "ACCOUNTS_MAX", 3)
    before = ex.state_hash()

    events = ex.deposit(DAVE, "BTC", 1)

    assert kit.rejection(events) == Reason.TOO_MANY_ACCOUNTS
    assert ex.state_hash() == before


def test_existing_account_may_deposit_at_the_account_bound(ex, monkeypatch):
    monkeypatch.setattr(limits, "ACCOUNTS_MAX", 3)

    events = ex.deposit(ALICE, "BTC", 1)

    assert isinstance(events[0], BalanceChanged)


def test_every_wallet_reason_is_produced():
    produced = {c[2] for c in WALLET_REJECTIONS} | {Reason.TOO_MANY_ACCOUNTS}

    assert produced >= {
        Reason.UNKNOWN_ASSET,
        Reason.RESERVED_ACCOUNT,
        Reason.BAD_AMOUNT,
        Reason.BALANCE_OVERFLOW,
        Reason.WITHDRAW_INSUFFICIENT,
        Reason.TOO_MANY_ACCOUNTS,
    }


def test_deposit_to_the_largest_account_id_is_accepted_and_snapshots():
    ex = kit.Exchange()

    ex.deposit(limits.ACCOUNT_ID_MAX, "BTC", 1)

    assert ex.engine.balances(limits.ACCOUNT_ID_MAX)["BTC"] == (1, 0)
    assert ex.restored().state_hash() == ex.state_hash()


def test_lifetime_totals_past_int64_still_snapshot():
    # Regression: deposited/withdrawn are lifetime totals; they were i64 in
    # the snapshot and this third command made state_hash() raise.
    ex = kit.Exchange()
    ex.deposit(ALICE, "BTC", MAX)
    ex.withdraw(ALICE, "BTC", MAX)
    ex.deposit(ALICE, "BTC", MAX)

    restored = ex.restored()

    assert restored.state_hash() == ex.state_hash()
    assert restored.engine.balances(ALICE)["BTC"] == (MAX, 0)


# ------------------------------------------------------ free and locked


def test_resting_sell_locks_base_units(ex):
    start = ex.free(ALICE, "BTC")

    ex.sell(ALICE, price=P, qty=Q)

    assert ex.engine.balances(ALICE)["BTC"] == (start - kit.base_units(Q), kit.base_units(Q))


def test_taker_partial_fill_debits_fills_at_maker_price_and_locks_rest_at_its_limit(ex):
    ex.sell(BOB, price=P, qty=300)
    usdt, btc = ex.free(ALICE, "USDT"), ex.free(ALICE, "BTC")
    fee = kit.base_units(300) * 5 // 10_000

    ex.buy(ALICE, price=P + 100, qty=Q)

    assert ex.free(ALICE, "USDT") == usdt - cost(P, 300) - cost(P + 100, Q - 300)
    assert ex.locked(ALICE, "USDT") == cost(P + 100, Q - 300)
    assert ex.free(ALICE, "BTC") == btc + kit.base_units(300) - fee
    assert ex.locked(ALICE, "BTC") == 0


def test_maker_partial_fill_unlocks_only_the_filled_part(ex):
    ex.sell(BOB, price=P, qty=Q)
    btc, usdt = ex.free(BOB, "BTC"), ex.free(BOB, "USDT")

    ex.buy(ALICE, price=P, qty=300)

    assert ex.locked(BOB, "BTC") == kit.base_units(Q - 300)
    assert ex.free(BOB, "BTC") == btc
    assert ex.free(BOB, "USDT") == usdt + cost(P, 300) - cost(P, 300) * 2 // 10_000


def test_buy_maker_filled_at_its_price_keeps_nothing_locked(ex):
    ex.buy(BOB, price=P, qty=Q)

    ex.sell(ALICE, price=P - 100, qty=Q)

    assert ex.locked(BOB, "USDT") == 0


def _total(ex, asset):
    return sum(sum(ex.engine.balances(a)[asset]) for a in ex.engine.accounts)


def test_trading_conserves_every_asset_fee_account_included(ex):
    ex.withdraw(BOB, "USDT", units("1234.5", "USDT"))
    ex.sell(BOB, price=P, qty=777)
    ex.sell(ALICE, price=P + 3, qty=555)
    ex.buy(BOB, price=P + 3, qty=Q + 1)
    ex.market_buy(ALICE, quote_qty=units("10", "USDT"))

    for asset in ("BTC", "ETH", "USDT"):
        deposited = 3 * units({"BTC": "100", "ETH": "1000", "USDT": "1000000"}[asset], asset)
        withdrawn = units("1234.5", "USDT") if asset == "USDT" else 0
        assert _total(ex, asset) == deposited - withdrawn, asset
