"""Market config loading and validation, and the decimal <-> integer
conversions at the edge (whole steps only, never rounded)."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dex.core import limits, markets
from dex.core.markets import (
    amount_to_units,
    load_markets,
    parse_markets,
    plain_decimal,
    plain_decimal_problem,
    units_to_amount,
)
from tests import kit

# ------------------------------------------------------------ config loading


def test_real_config_loads_every_asset_and_market():
    config = load_markets(kit.MARKETS_TOML)

    assert [a.name for a in config.assets] == ["BTC", "ETH", "USDT"]
    assert [m.symbol for m in config.markets] == ["BTCUSDT", "ETHUSDT", "ETHBTC"]


def test_btcusdt_integer_parameters_match_engine_md_units_table():
    btcusdt = load_markets(kit.MARKETS_TOML).market("BTCUSDT")

    assert btcusdt.lot_units == 1_000  # 0.00001 BTC in satoshi-like units
    assert btcusdt.notional_units == 10  # 0.01 USDT x 0.00001 BTC = 1e-7 USDT
    assert btcusdt.price_to_ticks("50000.00") == 5_000_000
    assert btcusdt.qty_to_lots("0.01") == 1_000
    assert btcusdt.min_qty_lots == 1
    assert btcusdt.max_qty_lots == 900_000_000
    assert btcusdt.max_price_ticks == 100_000_000
    assert btcusdt.min_notional_units == 100_000_000
    assert (btcusdt.maker_fee_bps, btcusdt.taker_fee_bps) == (2, 5)


def test_ethbtc_one_tick_times_one_lot_is_one_quote_unit():
    ethbtc = load_markets(kit.MARKETS_TOML).market("ETHBTC")

    assert ethbtc.notional_units == 1
    assert ethbtc.lot_units == 100_000


def test_config_lookup_of_unknown_market_or_asset_raises_key_error():
    config = kit.markets()

    with pytest.raises(KeyError):
        config.market("DOGEUSDT")
    with pytest.raises(KeyError):
        config.asset("DOGE")


def test_inline_config_loads_from_a_toml_file(tmp_path):
    path = tmp_path / "markets.toml"
    path.write_text(
        '[[assets]]\nname = "BASE"\ndecimals = 3\n'
        '[[assets]]\nname = "QUOTE"\ndecimals = 2\n'
        '[[markets]]\nsymbol = "TESTUSD"\nbase = "BASE"\nquote = "QUOTE"\n'
        'tick_size = "0.5"\nstep_size = "0.1"\nmin_qty = "0.1"\nmax_qty = "1000"\n'
        'max_price = "10000"\nmin_notional = "1"\n'
    )

    market = load_markets(path).market("TESTUSD")

    assert (market.lot_units, market.notional_units) == (100, 5)
    assert (market.maker_fee_bps, market.taker_fee_bps) == (0, 0)  # fees default to 0


def test_tick_times_step_not_whole_quote_units_is_refused():
    # 0.001 QUOTE x 0.1 BASE = 0.0001 QUOTE, but QUOTE has 2 decimals.
    doc = kit.market_doc(tick_size="0.001")

    with pytest.raises(ValueError, match="tick_size \\* step_size"):
        parse_markets(doc)


def test_tick_times_step_not_whole_quote_units_is_refused_from_a_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[assets]]\nname = "BTC"\ndecimals = 8\n'
        '[[assets]]\nname = "USDT"\ndecimals = 8\n'
        '[[markets]]\nsymbol = "BTCUSDT"\nbase = "BTC"\nquote = "USDT"\n'
        'tick_size = "0.001"\nstep_size = "0.000001"\nmin_qty = "0.000001"\n'
        'max_qty = "9000"\nmax_price = "1000000"\nmin_notional = "1"\n'
    )

    with pytest.raises(ValueError, match="tick_size \\* step_size"):
        load_markets(path)


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("step_size", "0.0001", "step_size in base units"),  # BASE has 3 decimals
        ("min_qty", "0.15", "min_qty in lots"),
        ("max_qty", "1000.05", "max_qty in lots"),
        ("max_price", "10000.25", "max_price in ticks"),
        ("min_notional", "0.001", "min_notional in units"),
    ],
)
def test_config_value_that_is_not_a_whole_number_of_steps_is_refused(field, value, what):
    doc = kit.market_doc(**{field: value})

    with pytest.raises(ValueError, match=what):
        parse_markets(doc)


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_qty": "2", "max_qty": "1"},  # min above max
        {"maker_fee_bps": 1001},  # above FEE_BPS_MAX
        {"taker_fee_bps": -1},
        {"quote": "BASE"},  # a market trades two different assets
        {"tick_size": "0"},
    ],
)
def test_config_with_inconsistent_market_is_refused(overrides):
    doc = kit.market_doc(**overrides)

    with pytest.raises((AssertionError, ValueError)):
        parse_markets(doc)


def test_config_with_duplicate_symbol_is_refused():
    doc = kit.market_doc()
    doc["markets"].append(dict(doc["markets"][0]))

    with pytest.raises(ValueError, match="unique"):
        parse_markets(doc)


def test_config_with_unknown_asset_is_refused():
    doc = kit.market_doc(base="DOGE")

    with pytest.raises(KeyError):
        parse_markets(doc)


# ---------------------------------------------------- decimal -> integer


@pytest.fixture
def btcusdt():
    return kit.markets().market("BTCUSDT")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50000", 5_000_000),
        ("50000.00", 5_000_000),
        ("50000.01", 5_000_001),
        ("0.01", 1),
        (" 50000.01 ", 5_000_001),  # surrounding whitespace is ignored
        (Decimal("1000000"), 100_000_000),
    ],
)
def test_price_to_ticks_converts_whole_ticks(btcusdt, text, expected):
    assert btcusdt.price_to_ticks(text) == expected


@pytest.mark.parametrize("text", ["50000.001", "0.005", "0.00999999", "50000.0000000001"])
def test_price_to_ticks_rejects_fraction_of_a_tick_rather_than_rounding(btcusdt, text):
    assert btcusdt.price_to_ticks(text) is None


# Regressions: dividing in Decimal's default 28-digit context used to round
# these fractions away and accept them.
@pytest.mark.parametrize(
    ("convert", "text"),
    [
        ("price_to_ticks", "50000.0100000000000000000000000001"),
        ("qty_to_lots", "0.000010000000000000000000000000001"),
    ],
)
def test_converters_reject_a_fraction_of_a_step_hidden_past_28_digits(btcusdt, convert, text):
    assert getattr(btcusdt, convert)(text) is None


def test_amount_to_units_rejects_a_fraction_of_a_unit_hidden_past_28_digits():
    btc = kit.markets().asset("BTC")

    assert amount_to_units(btc, "1.00000000000000000000000000001") is None


@pytest.mark.parametrize("text", ["", "   ", "abc", "1.2.3", "0x10", "1,000", "50000 USDT", "--1"])
def test_price_to_ticks_rejects_garbage_strings(btcusdt, text):
    assert btcusdt.price_to_ticks(text) is None


# Regressions: Decimal() itself accepts these.
@pytest.mark.parametrize("text", ["5_0000", "\u0665\u0660", "\uff15\uff10"])  # "50" in Arabic-Indic and fullwidth digits
def test_price_to_ticks_rejects_underscores_and_non_ascii_digits(btcusdt, text):
    assert btcusdt.price_to_ticks(text) is None


@pytest.mark.parametrize("text", ["-0.01", "+50000", "1e3", "5E+4", ".5", "5."])
def test_price_to_ticks_accepts_plain_digits_only(btcusdt, text):
    assert btcusdt.price_to_ticks(text) is None


@pytest.mark.parametrize("text", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("Infinity")])
def test_price_to_ticks_rejects_nan_and_infinity(btcusdt, text):
    assert btcusdt.price_to_ticks(text) is None


def test_converters_refuse_more_steps_than_a_command_can_carry(btcusdt):
    """Regression: such a price reached the ledger codec and the leader answered 500."""
    tick, lot = btcusdt.tick_size, btcusdt.step_size
    assert btcusdt.price_to_ticks(str(limits.UINT64_MAX * tick)) == limits.UINT64_MAX
    assert btcusdt.price_to_ticks(str((limits.UINT64_MAX + 1) * tick)) is None
    assert btcusdt.price_to_ticks("99999999999999999999999999999") is None
    assert btcusdt.qty_to_lots(str((limits.UINT64_MAX + 1) * lot)) is None
    assert amount_to_units(kit.markets().asset("USDT"), "99999999999999999999999999999") is None


def test_price_to_ticks_rejects_a_non_string(btcusdt):
    assert btcusdt.price_to_ticks(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.00001", 1), ("0.01", 1_000), ("1", 100_000), ("9000", 900_000_000)],
)
def test_qty_to_lots_converts_whole_lots(btcusdt, text, expected):
    assert btcusdt.qty_to_lots(text) == expected


@pytest.mark.parametrize("text", ["0.000001", "0.000015", "1.000000001"])
def test_qty_to_lots_rejects_fraction_of_a_lot_rather_than_rounding(btcusdt, text):
    assert btcusdt.qty_to_lots(text) is None


@pytest.mark.parametrize("text", ["", "one", "NaN", "Infinity", "-inf", "1e"])
def test_qty_to_lots_rejects_garbage_nan_and_infinity(btcusdt, text):
    assert btcusdt.qty_to_lots(text) is None


# ---------------------------------------------------- integer -> decimal


@pytest.mark.parametrize(
    ("ticks", "text"), [(5_000_000, "50000.00"), (5_000_001, "50000.01"), (1, "0.01"), (0, "0.00")]
)
def test_ticks_to_price_formats_with_the_tick_size_decimals(btcusdt, ticks, text):
    assert btcusdt.ticks_to_price(ticks) == text


@pytest.mark.parametrize(("lots", "text"), [(1, "0.00001"), (1_000, "0.01000"), (100_000, "1.00000")])
def test_lots_to_qty_formats_with_the_step_size_decimals(btcusdt, lots, text):
    assert btcusdt.lots_to_qty(lots) == text


@pytest.mark.parametrize("ticks", [1, 7, 5_000_000, 99_999_999, 100_000_000])
def test_price_round_trips_through_its_decimal_string(btcusdt, ticks):
    assert btcusdt.price_to_ticks(btcusdt.ticks_to_price(ticks)) == ticks


@pytest.mark.parametrize("lots", [1, 3, 1_000, 900_000_000])
def test_qty_round_trips_through_its_decimal_string(btcusdt, lots):
    assert btcusdt.qty_to_lots(btcusdt.lots_to_qty(lots)) == lots


def test_formatting_uses_no_exponent_for_a_coarse_tick():
    market = kit.inline_config(tick_size="10", max_price="10000").market("TESTUSD")

    assert market.ticks_to_price(3) == "30"


_STEPS = st.sampled_from(["0.01", "0.00001", "0.5", "0.25", "1", "10", "1E+1", "5", "0.010", "2.5", "0.00000001", "100", "0.1"]).map(Decimal)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(min_value=-(2**70), max_value=2**70), step=_STEPS)
def test_integer_formatting_writes_what_the_decimal_product_writes(n, step):
    # ticks_to_price, lots_to_qty and units_to_amount format n x step in
    # integer arithmetic: the same text as formatting the Decimal product.
    assert markets._fmt_steps(n, step) == markets._fmt(n * step, step)


def test_a_value_that_is_not_an_int_is_formatted_as_a_decimal():
    assert markets._fmt_steps(Decimal("3"), Decimal("0.01")) == "0.03"


# ------------------------------------------------------------ asset amounts


@pytest.mark.parametrize(
    ("asset", "text", "expected"),
    [
        ("USDT", "1", 100_000_000),
        ("USDT", "0.00000001", 1),
        ("BTC", "21000000", 2_100_000_000_000_000),
        ("BTC", "0", 0),
    ],
)
def test_amount_to_units_converts_whole_units(asset, text, expected):
    assert amount_to_units(kit.markets().asset(asset), text) == expected


@pytest.mark.parametrize("text", ["0.000000001", "1.000000005", "", "x", "NaN", "Infinity"])
def test_amount_to_units_rejects_fractions_garbage_nan_and_infinity(text):
    assert amount_to_units(kit.markets().asset("BTC"), text) is None


@pytest.mark.parametrize(("units", "text"), [(1, "0.00000001"), (100_000_000, "1.00000000"), (0, "0.00000000")])
def test_units_to_amount_formats_with_the_asset_decimals(units, text):
    assert units_to_amount(kit.markets().asset("BTC"), units) == text


def test_asset_unit_is_ten_to_the_minus_decimals():
    assert kit.markets().asset("USDT").unit == Decimal("0.00000001")


# ------------------------------------------------------ plain decimals only


@pytest.mark.parametrize(
    ("text", "plain"),
    [("1e-3", "0.001"), ("1E3", "1000"), ("5E+4", "50000"), (".5", "0.5"), ("1_000", "1000"), ("+1", "1")],
)
def test_a_number_not_written_as_a_plain_decimal_is_named_with_its_plain_spelling(text, plain):
    problem = plain_decimal_problem("quantity", text)

    assert problem.startswith(f"Illegal characters found in parameter 'quantity': {text!r} is not a plain decimal (write {plain}); ")
    assert "no sign, exponent" in problem


@pytest.mark.parametrize("text", ["-0.001", "NaN", "Infinity", "abc", "", "1e999999999", "1e-50", "0x10"])
def test_a_non_decimal_gets_no_suggestion_and_no_huge_expansion(text):
    problem = plain_decimal_problem("price", text)

    assert problem is not None and "(write" not in problem and len(problem) < 250


@pytest.mark.parametrize("text", ["0.001", "50000", " 0.5 ", "0.00000000000000000001"])
def test_a_plain_decimal_has_no_problem(text):
    assert plain_decimal(text) and plain_decimal_problem("price", text) is None


def test_the_memoized_conversions_answer_as_the_uncached_ones(btcusdt):
    """price_to_ticks, qty_to_lots, amount_to_units and plain_decimal keep a
    cache of short texts; a hit must answer what the conversion itself does,
    for accepted, refused and odd texts alike, whichever market asks first."""
    from dex.core import markets as m

    ethusdt = kit.markets().market("ETHUSDT")
    texts = ["50000.00", "50000.001", "0.01", " 0.01 ", "", "abc", "1e3", "5_0", "\u0665", "0.00001", "0.000010000000000000000000000000001",
             "9" * 40, "9" * 41, "1" * 81, "1" + "0" * 30 + ".5"]
    for _ in range(2):  # the second round is served from the caches
        for text in texts:
            for market in (btcusdt, ethusdt):
                assert market.price_to_ticks(text) == m._steps(text, market.tick_size), text
                assert market.qty_to_lots(text) == m._steps(text, market.step_size), text
            assert amount_to_units(kit.markets().asset("BTC"), text) == m._steps(text, kit.markets().asset("BTC").unit), text
            assert m.plain_decimal(text) == m._plain_decimal(text), text
    assert m._steps_cached.cache_info().hits > 0 and m._plain_decimal_cached.cache_info().hits > 0
    # Long texts are converted, not cached: what anyone sends cannot fill the cache with big keys.
    before = m._steps_cached.cache_info().currsize
    assert btcusdt.price_to_ticks("1" * (m.CACHED_TEXT_LENGTH_MAX + 1)) is None
    assert m._steps_cached.cache_info().currsize == before
    assert m._steps_cached.cache_info().maxsize == m.CONVERSIONS_CACHED_MAX == m._plain_decimal_cached.cache_info().maxsize


def test_markets_and_assets_are_found_by_name_and_anything_else_is_a_key_error():
    config = load_markets(kit.MARKETS_TOML)

    assert [config.market(m.symbol) for m in config.markets] == list(config.markets)
    assert [config.asset(a.name) for a in config.assets] == list(config.assets)
    for bad in ("NOPE", "btcusdt", "", None, ["BTCUSDT"]):
        with pytest.raises(KeyError):
            config.market(bad)
        with pytest.raises(KeyError):
            config.asset(bad)
