"""The Python client's pure helpers, no node: typed errors by code, batch
entries as errors, floats refused before anything is sent, rounding to a
market's tick and step, and the key file `dex keys new` writes.

A cluster test of the same errors from real answers is
tests/client/test_readme_python.py (InsufficientBalance from a real -2010)."""

from __future__ import annotations

import pickle
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path

import pytest

from dex.auth import Keypair
from dex.client import (
    BadParameter,
    Client,
    DexError,
    Disconnected,
    InsufficientBalance,
    MarketRules,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    error_of,
    load_key,
)
from dex.core.markets import plain_decimal_problem
from dex.keyfile import KeyFileError, write_key

DEAD_NODE = "http://127.0.0.1:9"  # nothing listens: a request that got that far would fail differently
# GET /api/v1/exchangeInfo's shape (dex/api/market.py), one market
EXCHANGE_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "10000000.00", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00000", "stepSize": "0.00001"},
                {"filterType": "NOTIONAL", "minNotional": "1", "applyMinToMarket": False},
            ],
        }
    ]
}


@pytest.mark.parametrize(
    ("code", "msg", "kind"),
    [
        (-2010, "Account has insufficient balance for requested action.", InsufficientBalance),
        (-4026, "User has insufficient balance.", InsufficientBalance),
        (-2010, "The order book is full.", OrderRejected),
        (-2013, "Order does not exist.", UnknownOrder),
        (-1003, "Too many requests", RateLimited),
        (-1007, "Timeout waiting for commit; outcome unknown", OutcomeUnknown),
        (-1001, "no node answered", Disconnected),
        (-1121, "Invalid symbol.", BadParameter),
        (-1100, "Illegal characters", BadParameter),
        (-1013, "Filter failure: PRICE_FILTER", DexError),
        (-1000, "An unknown error occurred", DexError),
    ],
)
def test_an_error_is_the_subclass_its_code_names_and_still_a_dex_error(code: int, msg: str, kind: type) -> None:
    e = DexError(400, code, msg)
    assert type(e) is kind and isinstance(e, DexError)
    assert (e.status, e.code, e.msg) == (400, code, msg)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is kind and again.code == code


def test_error_of_a_batch_entry() -> None:
    assert error_of({"orderId": 7, "status": "NEW"}) is None
    e = error_of({"code": -2010, "msg": "Account has insufficient balance for requested action."})
    assert isinstance(e, InsufficientBalance) and e.code == -2010


def test_floats_are_refused_before_anything_is_sent() -> None:
    with Client(DEAD_NODE, Keypair.generate(), retries=1) as c:
        with pytest.raises(TypeError, match=r"price must be a decimal string or Decimal, not float 0\.1 .*price='0\.1'"):
            c.place_order("BTCUSDT", "BUY", price=0.1, quantity="1")
        with pytest.raises(TypeError, match="quantity must be"):
            c.batch_orders([{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "1.00", "quantity": 0.5}])
        with pytest.raises(TypeError, match="amount must be"):
            c.deposit("USDT", 100.0)
        with pytest.raises(TypeError, match="new_price must be"):
            c.amend_order("BTCUSDT", order_id=1, new_price=1.5)
        # Decimal and strings go on to the network (and fail there: nothing listens).
        with pytest.raises(Disconnected):
            c.place_order("btcusdt", "BUY", price=Decimal("1E+1"), quantity="1")


def test_exponent_strings_are_refused_as_the_api_refuses_them_before_anything_is_sent() -> None:
    with Client(DEAD_NODE, Keypair.generate(), retries=1) as c:
        with pytest.raises(BadParameter) as e:
            c.place_order("BTCUSDT", "BUY", price="50000.00", quantity="1e-3")
        assert (e.value.status, e.value.code, e.value.msg) == (400, -1100, plain_decimal_problem("quantity", "1e-3"))
        assert "(write 0.001)" in e.value.msg
        with pytest.raises(BadParameter, match=r"parameter 'amount': '1E3' is not a plain decimal \(write 1000\)"):
            c.deposit("USDT", "1E3")
        with pytest.raises(BadParameter, match="'new_qty': '-1'"):
            c.amend_order("BTCUSDT", order_id=1, new_qty="-1")
        with pytest.raises(BadParameter, match="parameter 'price'"):
            c.batch_orders([{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "5e4", "quantity": "1"}])
        with pytest.raises(BadParameter, match="'price': '-1'"):
            c.place_order("BTCUSDT", "BUY", price=Decimal("-1"), quantity="1")
        with pytest.raises(BadParameter, match="'price': '1E[+]999999999'"):  # not expanded to a billion digits
            c.place_order("BTCUSDT", "BUY", price=Decimal("1E+999999999"), quantity="1")
        # A Decimal is exact: Decimal("1E-3") is sent as "0.001" (and fails on the network).
        with pytest.raises(Disconnected):
            c.place_order("BTCUSDT", "BUY", price="50000.00", quantity=Decimal("1E-3"))


def test_market_rules_round_to_tick_and_step() -> None:
    rules = MarketRules.from_exchange_info(EXCHANGE_INFO, "btcusdt")
    assert (rules.symbol, rules.tick_size, rules.step_size) == ("BTCUSDT", Decimal("0.01"), Decimal("0.00001"))
    assert rules.price("50000.005") == "50000.00"  # half even
    assert rules.price("50000.015") == "50000.02"
    assert rules.price(50000.123456) == "50000.12"  # a float is welcome here: the answer is a string on the tick
    assert rules.price("50000.001", ROUND_UP) == "50000.01"
    assert rules.quantity("0.0123456789") == "0.01234"  # down: never more than meant
    assert rules.quantity(Decimal("2")) == "2.00000"
    assert rules.quantity("0.000019", ROUND_DOWN) == "0.00001"
    with pytest.raises(BadParameter, match="NOPE"):
        MarketRules.from_exchange_info(EXCHANGE_INFO, "NOPE")


def test_load_key_reads_what_keys_new_writes(tmp_path: Path) -> None:
    keys = Keypair.generate()
    path = tmp_path / "a.key"
    write_key(path, keys)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_key(path).private == keys.private and load_key(str(path)).account == keys.account
    (tmp_path / "bare.key").write_text(keys.private.hex() + "\n")
    assert load_key(tmp_path / "bare.key").account == keys.account
    (tmp_path / "bad.key").write_text('{"privateKey": "zz"}')
    with pytest.raises(KeyFileError, match="bad.key: no private key"):
        load_key(tmp_path / "bad.key")
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_key(tmp_path / "missing.key")
