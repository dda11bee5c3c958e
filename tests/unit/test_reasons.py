"""Reject reasons: stable identifiers, wire codes and messages, and agreement
with the table in docs/ENGINE.md."""

import pytest

from dex.core.reasons import Reason, StopReason
from tests import kit

ENGINE_MD = kit.ENGINE_MD

# The ledger stores these numbers: changing one breaks every stored block.
STABLE_VALUES = {
    "PRICE_FILTER": 1,
    "LOT_SIZE": 2,
    "NOTIONAL": 3,
    "MAX_NUM_ORDERS": 4,
    "INSUFFICIENT_BALANCE": 10,
    "WOULD_TAKE": 11,
    "BOOK_FULL": 12,
    "UNKNOWN_ORDER": 20,
    "CANCEL_REJECTED": 21,
    "UNKNOWN_SYMBOL": 30,
    "UNKNOWN_ASSET": 31,
    "BAD_PARAMETER": 32,
    "QUOTE_QTY_SELL": 33,
    "BAD_CLIENT_ORDER_ID": 34,
    "WITHDRAW_INSUFFICIENT": 40,
    "BAD_AMOUNT": 41,
    "BALANCE_OVERFLOW": 42,
    "TOO_MANY_ACCOUNTS": 43,
    "RESERVED_ACCOUNT": 44,
    "DUPLICATE_TRANSFER": 45,
    "REPLAYED": 50,
    "EXPIRED_REQUEST": 51,
    "REQUESTS_WINDOW_FULL": 52,
}

WIRE_CODES = {
    "PRICE_FILTER": -1013,
    "LOT_SIZE": -1013,
    "NOTIONAL": -1013,
    "MAX_NUM_ORDERS": -1013,
    "INSUFFICIENT_BALANCE": -2010,
    "WOULD_TAKE": -2010,
    "BOOK_FULL": -2010,
    "UNKNOWN_ORDER": -2013,
    "CANCEL_REJECTED": -2011,
    "UNKNOWN_SYMBOL": -1121,
    "UNKNOWN_ASSET": -9001,
    "BAD_PARAMETER": -1102,
    "QUOTE_QTY_SELL": -1106,
    "BAD_CLIENT_ORDER_ID": -1100,
    "WITHDRAW_INSUFFICIENT": -4026,
    "BAD_AMOUNT": -9002,
    "BALANCE_OVERFLOW": -9003,
    "TOO_MANY_ACCOUNTS": -9004,
    "RESERVED_ACCOUNT": -9005,
    "DUPLICATE_TRANSFER": -9007,
    "REPLAYED": -9006,
    "EXPIRED_REQUEST": -1021,
    "REQUESTS_WINDOW_FULL": -1008,
}


def test_every_reason_has_a_pinned_stable_value():
    assert {r.name: r.value for r in Reason} == STABLE_VALUES


def test_every_reason_has_its_pinned_wire_code():
    assert {r.name: r.code for r in Reason} == WIRE_CODES


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.name)
def test_every_reason_has_a_nonempty_message(reason):
    assert isinstance(reason.msg, str) and reason.msg.strip()


def test_reasons_sharing_a_code_have_distinct_messages():
    messages = [r.msg for r in Reason]

    assert len(set(messages)) == len(messages)


@pytest.mark.parametrize("name", ["PRICE_FILTER", "LOT_SIZE", "NOTIONAL", "MAX_NUM_ORDERS"])
def test_filter_failures_use_binance_code_1013(name):
    assert Reason[name].code == -1013
    assert Reason[name].msg == f"Filter failure: {name}"


@pytest.mark.parametrize("name", ["INSUFFICIENT_BALANCE", "WOULD_TAKE", "BOOK_FULL"])
def test_new_order_rejections_use_binance_code_2010(name):
    assert Reason[name].code == -2010


def test_cancel_rejected_uses_binance_code_2011():
    assert Reason.CANCEL_REJECTED.code == -2011


def test_no_such_order_uses_binance_code_2013():
    assert Reason.UNKNOWN_ORDER.code == -2013
    assert Reason.UNKNOWN_ORDER.msg == "Order does not exist."


def test_dex_own_codes_are_in_the_9000_range():
    own = [r for r in Reason if r.code <= -9000]

    assert {r.name for r in own} == {
        "UNKNOWN_ASSET",
        "BAD_AMOUNT",
        "BALANCE_OVERFLOW",
        "TOO_MANY_ACCOUNTS",
        "RESERVED_ACCOUNT",
        "REPLAYED",
        "DUPLICATE_TRANSFER",
    }
    assert all(-9999 <= r.code for r in own)


def test_stop_reasons_have_pinned_stable_values():
    assert {r.name: r.value for r in StopReason} == {
        "USER": 1,
        "CANCEL_ALL": 2,
        "IOC": 3,
        "FOK": 4,
        "SELF_TRADE": 5,
        "NO_BALANCE": 6,
        "TRADES_MAX": 7,
    }


def test_engine_md_validation_table_is_found():
    assert len(kit.engine_md_place_checks()) >= 20


@pytest.mark.parametrize(("name", "code"), kit.engine_md_place_checks())
def test_engine_md_validation_table_code_matches_reason(name, code):
    assert Reason[name].code == code


def test_engine_md_wire_codes_in_prose_match_reasons():
    text = ENGINE_MD.read_text()

    assert "unknown symbol -1121" in text and Reason.UNKNOWN_SYMBOL.code == -1121
    assert "`UNKNOWN_ORDER` (-2013)" in text
    assert "`CANCEL_REJECTED` (-2011)" in text
    for name, code in [
        ("UNKNOWN_ASSET", -9001),
        ("RESERVED_ACCOUNT", -9005),
        ("BAD_AMOUNT", -9002),
        ("BALANCE_OVERFLOW", -9003),
        ("WITHDRAW_INSUFFICIENT", -4026),
    ]:
        assert str(code) in text
        assert Reason[name].code == code
