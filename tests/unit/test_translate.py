"""The edge's translation of a request into commands (dex/ledger/translate.py):
a number not written as a plain decimal is refused as such (-1100, naming its
plain spelling), not as a filter failure, on every route that takes one."""

from __future__ import annotations

import itertools
import json

import pytest

from dex.core.commands import Deposit
from dex.core.markets import amount_to_units, plain_decimal_problem
from dex.ledger import translate
from dex.ledger.translate import AmendRequest, DepositRequest, NewOrder, Refused
from tests import kit

SIGNATURE = bytes(64)
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "50000.00", "quantity": "0.00100"}


def refusal(call) -> tuple[int, int, str]:
    with pytest.raises(Refused) as e:
        call()
    return e.value.status, e.value.code, e.value.msg


@pytest.mark.parametrize(("field", "text"), [("quantity", "1e-3"), ("price", "5E+4"), ("quantity", "-0.001")])
def test_an_order_with_a_non_plain_number_is_refused_as_illegal_characters(field, text):
    order = NewOrder(**{**ORDER, field: text})

    assert refusal(lambda: translate.place_command(kit.markets(), order, 1, SIGNATURE)) == (400, -1100, plain_decimal_problem(field, text))


def test_the_same_number_written_plainly_is_placed():
    _, cmd = translate.place_command(kit.markets(), NewOrder(**ORDER), 1, SIGNATURE)

    assert (cmd.price, cmd.qty) == (5_000_000, 100)


def test_off_the_step_is_still_a_filter_failure():
    order = NewOrder(**{**ORDER, "quantity": "0.000001"})

    assert refusal(lambda: translate.place_command(kit.markets(), order, 1, SIGNATURE)) == (400, -1013, "Filter failure: LOT_SIZE")


def test_amend_deposit_and_a_batch_entry_refuse_it_the_same_way():
    amend = AmendRequest(symbol="BTCUSDT", orderId=1, newQty="1E-3")
    assert refusal(lambda: translate.amend_command(kit.markets(), amend, 1))[1:] == (-1100, plain_decimal_problem("newQty", "1E-3"))
    deposit = DepositRequest(asset="USDT", amount="1e3")
    assert refusal(lambda: translate.faucet_command(kit.markets(), deposit, 1, Deposit))[1:] == (-1100, plain_decimal_problem("amount", "1e3"))
    body = json.dumps({"batchOrders": [ORDER, {**ORDER, "quantity": "1e-3"}]}).encode()
    placed, refused = translate.batch_commands(kit.markets(), translate.parse(translate.BatchOrders, body), 1, SIGNATURE)
    assert placed[1].qty == 100 and (refused.code, refused.msg) == (-1100, plain_decimal_problem("quantity", "1e-3"))


def test_a_derived_client_id_is_dex_and_the_signatures_sha256_in_base32():
    import base64
    import hashlib
    import os

    for size in (0, 1, 64, 66, 300):
        signature = os.urandom(size)
        expected = "dex-" + base64.b32encode(hashlib.sha256(signature).digest()).decode()[:32].lower()
        assert translate.derived_client_id(signature) == expected
    assert translate.derived_client_id(b"") == "dex-4oymiquy7qobjgx36tejs35zeqt24qpe"  # SHA-256 of nothing, pinned


# Texts for an order's three amounts: a whole number of steps, off the step,
# not a plain decimal (each refused with -1100 naming its plain spelling).
_PRICES = [None, "50000.00", " 50000.00 ", "50000.005", "5E+4", "-1", "1,000", "", "0"]
_QTYS = [None, "0.00100", "0.000001", "1e-3", "０.1", "0"]
_QUOTES = [None, "100", "100.000000001", "1e2"]


def _expected(order: dict):
    """What place_command must make of `order`, by the rule the API documents:
    -1100 for the first amount (price, quantity, quoteOrderQty) that is not a
    plain decimal; then the price's filter, the quantity's, the quote amount's
    precision; then the order type's mandatory fields."""
    m = kit.markets().market("BTCUSDT")
    for field in ("price", "quantity", "quoteOrderQty"):
        if order.get(field) is not None and plain_decimal_problem(field, order[field]) is not None:
            return (400, -1100, plain_decimal_problem(field, order[field]))
    price = 0 if order.get("price") is None else m.price_to_ticks(order["price"])
    qty = 0 if order.get("quantity") is None else m.qty_to_lots(order["quantity"])
    quote = 0 if order.get("quoteOrderQty") is None else amount_to_units(m.quote, order["quoteOrderQty"])
    if price is None:
        return (400, -1013, "Filter failure: PRICE_FILTER")
    if qty is None:
        return (400, -1013, "Filter failure: LOT_SIZE")
    if quote is None:
        return (400, -1111, "Precision is over the maximum defined for this asset (quoteOrderQty).")
    if order["type"] == "LIMIT" and (order.get("price") is None or order.get("quantity") is None):
        return (400, -1102, "A LIMIT order needs price and quantity.")
    if order["type"] == "MARKET" and (order.get("quantity") is None) == (order.get("quoteOrderQty") is None):
        return (400, -1102, "A MARKET order needs exactly one of quantity and quoteOrderQty.")
    return (price, qty, quote)


@pytest.mark.parametrize("otype", ["LIMIT", "MARKET"])
def test_every_combination_of_amounts_is_placed_or_refused_by_the_documented_rule(otype):
    checked = 0
    for price, qty, quote in itertools.product(_PRICES, _QTYS, _QUOTES):
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": otype, "price": price, "quantity": qty, "quoteOrderQty": quote}
        try:
            _, cmd = translate.place_command(kit.markets(), NewOrder(**order), 1, SIGNATURE)
            got = (cmd.price, cmd.qty, cmd.quote_qty)
        except Refused as e:
            got = (e.status, e.code, e.msg)
        assert got == _expected(order), order
        checked += 1
    assert checked == len(_PRICES) * len(_QTYS) * len(_QUOTES)
