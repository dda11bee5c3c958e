"""Assets and markets, loaded from a TOML config, and the conversions between
decimal strings at the edge and integers inside.

Inside dex a price is a whole number of ticks, a quantity a whole number of
lots and a balance a whole number of an asset's smallest units. A decimal that
is not a whole number of ticks, lots or units is rejected, never rounded: the
converters return None and the caller answers with a filter failure.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Context, Decimal
from pathlib import Path

from dex.core import limits


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    name: str
    decimals: int  # balances are held in units of 10**-decimals

    @property
    def unit(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)


@dataclass(frozen=True, slots=True, kw_only=True)
class Market:
    symbol: str
    base: Asset
    quote: Asset
    tick_size: Decimal  # price step, in quote per base
    step_size: Decimal  # quantity step, in base
    min_qty: Decimal
    max_qty: Decimal
    max_price: Decimal
    min_notional: Decimal  # in quote
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0

    def __post_init__(self) -> None:
        _require(self.tick_size > 0 and self.step_size > 0, f"{self.symbol}: tick_size and step_size must be positive")
        _require_whole(self.step_size / self.base.unit, f"{self.symbol}: step_size in base units")
        _require_whole(
            self.tick_size * self.step_size / self.quote.unit,
            f"{self.symbol}: tick_size * step_size in quote units",
        )
        _require_whole(self.min_qty / self.step_size, f"{self.symbol}: min_qty in lots")
        _require_whole(self.max_qty / self.step_size, f"{self.symbol}: max_qty in lots")
        _require_whole(self.max_price / self.tick_size, f"{self.symbol}: max_price in ticks")
        _require_whole(self.min_notional / self.quote.unit, f"{self.symbol}: min_notional in units")
        _require(0 < self.min_qty_lots <= self.max_qty_lots <= limits.QUANTITY_LOTS_MAX, f"{self.symbol}: need 0 < min_qty <= max_qty <= 2^40 lots")
        _require(0 < self.max_price_ticks <= limits.PRICE_TICKS_MAX, f"{self.symbol}: need 0 < max_price <= 2^40 ticks")
        # One lot at the highest price fits a balance, so a fill's unit cost
        # (ticks x notional_units) is a 64-bit integer: the compiled engine
        # relies on it (docs/ENGINE.md, "Two implementations").
        _require(
            self.max_price_ticks * self.notional_units <= limits.BALANCE_UNITS_MAX,
            f"{self.symbol}: one lot at max_price costs more than 2^62 quote units",
        )
        _require(self.lot_units <= limits.BALANCE_UNITS_MAX, f"{self.symbol}: one lot is more than 2^62 base units")
        _require(self.min_notional_units <= limits.BALANCE_UNITS_MAX, f"{self.symbol}: min_notional is more than 2^62 quote units")
        _require(0 <= self.maker_fee_bps <= limits.FEE_BPS_MAX, f"{self.symbol}: maker_fee_bps out of 0..{limits.FEE_BPS_MAX}")
        _require(0 <= self.taker_fee_bps <= limits.FEE_BPS_MAX, f"{self.symbol}: taker_fee_bps out of 0..{limits.FEE_BPS_MAX}")
        _require(self.base.name != self.quote.name, f"{self.symbol}: base and quote must differ")

    # Integer forms used by the engine.
    @property
    def lot_units(self) -> int:
        """Base-asset units in one lot."""
        return int(self.step_size / self.base.unit)

    @property
    def notional_units(self) -> int:
        """Quote-asset units in one tick times one lot."""
        return int(self.tick_size * self.step_size / self.quote.unit)

    @property
    def min_qty_lots(self) -> int:
        return int(self.min_qty / self.step_size)

    @property
    def max_qty_lots(self) -> int:
        return int(self.max_qty / self.step_size)

    @property
    def max_price_ticks(self) -> int:
        return int(self.max_price / self.tick_size)

    @property
    def min_notional_units(self) -> int:
        return int(self.min_notional / self.quote.unit)

    # Edge conversions: None means "not a whole number of steps" (or not a
    # number, or more steps than a command can carry: limits.UINT64_MAX).
    def price_to_ticks(self, text: str | Decimal) -> int | None:
        return _to_steps(text, self.tick_size)

    def qty_to_lots(self, text: str | Decimal) -> int | None:
        return _to_steps(text, self.step_size)

    def ticks_to_price(self, ticks: int) -> str:
        return _fmt_steps(ticks, self.tick_size)

    def lots_to_qty(self, lots: int) -> str:
        return _fmt_steps(lots, self.step_size)


def amount_to_units(asset: Asset, text: str | Decimal) -> int | None:
    return _to_steps(text, asset.unit)


def units_to_amount(asset: Asset, units: int) -> str:
    return _fmt_steps(units, asset.unit)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketConfig:
    assets: tuple[Asset, ...]
    markets: tuple[Market, ...]
    # By name, made from the two above: the leader looks a market up for every
    # order it translates and every order an answer lists (a scan of the
    # tuple comparing symbols was ~2% of its event loop at batch saturation).
    _assets_by_name: dict = field(init=False, repr=False, compare=False)
    _markets_by_symbol: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The first of a name wins, as the scan did (parse_markets refuses duplicates).
        object.__setattr__(self, "_assets_by_name", {a.name: a for a in reversed(self.assets)})
        object.__setattr__(self, "_markets_by_symbol", {m.symbol: m for m in reversed(self.markets)})

    def asset(self, name: str) -> Asset:
        return _named(self._assets_by_name, name)

    def market(self, symbol: str) -> Market:
        return _named(self._markets_by_symbol, symbol)


def _named(by_name: dict, name):
    """by_name[name], or KeyError(name) for any name it lacks (an unhashable one too)."""
    try:
        found = by_name.get(name)
    except TypeError:
        found = None
    if found is None:
        raise KeyError(name)
    return found


def load_markets(path: str | Path) -> MarketConfig:
    with open(path, "rb") as f:
        return parse_markets(tomllib.load(f))


def parse_markets(doc: dict) -> MarketConfig:
    assets = tuple(
        Asset(name=str(a["name"]), decimals=int(a["decimals"])) for a in doc["assets"]
    )
    names = [a.name for a in assets]
    _require(len(set(names)) == len(names), "asset names must be unique")
    by_name = {a.name: a for a in assets}
    markets = []
    for m in doc["markets"]:
        markets.append(
            Market(
                symbol=str(m["symbol"]),
                base=by_name[m["base"]],
                quote=by_name[m["quote"]],
                tick_size=Decimal(str(m["tick_size"])),
                step_size=Decimal(str(m["step_size"])),
                min_qty=Decimal(str(m["min_qty"])),
                max_qty=Decimal(str(m["max_qty"])),
                max_price=Decimal(str(m["max_price"])),
                min_notional=Decimal(str(m["min_notional"])),
                maker_fee_bps=int(m.get("maker_fee_bps", 0)),
                taker_fee_bps=int(m.get("taker_fee_bps", 0)),
            )
        )
    symbols = [m.symbol for m in markets]
    _require(len(set(symbols)) == len(symbols), "market symbols must be unique")
    return MarketConfig(assets=assets, markets=tuple(markets))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_whole(value: Decimal, what: str) -> None:
    if value != value.to_integral_value():
        raise ValueError(f"{what} must be a whole number, got {value}")


DECIMAL_TEXT_LENGTH_MAX = 40
# Plain ASCII decimals only: no sign, exponent, underscores or other scripts' digits.
_DECIMAL_TEXT = re.compile(r"\A[0-9]+(?:\.[0-9]+)?\Z", re.ASCII)
# Wide enough that dividing any accepted text by a step is exact: a fraction
# of a step is never rounded away.
_EXACT = Context(prec=2 * DECIMAL_TEXT_LENGTH_MAX + 20)


# The edge's conversions are memoized per process: the same price and quantity
# strings recur across orders, and parsing and dividing a Decimal costs 2-5 µs
# against ~0.3 for a hit (docs/BENCHMARKS.md). Only texts a plain decimal could
# be are cached (at most CACHED_TEXT_LENGTH_MAX characters), so the caches hold
# at most CONVERSIONS_CACHED_MAX short strings each, whatever is sent: measured
# ~250 and ~180 bytes an entry, ~7 MB for both when full. Least recently used
# go first, and real order flow reuses a band of prices and sizes.
CONVERSIONS_CACHED_MAX = 16384
CACHED_TEXT_LENGTH_MAX = 2 * DECIMAL_TEXT_LENGTH_MAX


def _plain_decimal(text: str) -> bool:
    text = text.strip()
    return len(text) <= DECIMAL_TEXT_LENGTH_MAX and _DECIMAL_TEXT.match(text) is not None


_plain_decimal_cached = functools.lru_cache(maxsize=CONVERSIONS_CACHED_MAX)(_plain_decimal)


def plain_decimal(text: str) -> bool:
    """True when `text` is a decimal as the API takes it: digits with an
    optional fraction (surrounding spaces aside), at most DECIMAL_TEXT_LENGTH_MAX."""
    if text.__class__ is str and len(text) <= CACHED_TEXT_LENGTH_MAX:
        return _plain_decimal_cached(text)
    return _plain_decimal(text)


def plain_decimal_problem(param: str, text: str) -> str | None:
    """None for a plain decimal; else the one message the API, the client and
    the CLI give (code -1100). An exponent form such as "1e-3" names its plain
    spelling; it is never read as a number, so "1e-3" and "0.001" cannot mean
    different things in different places."""
    if plain_decimal(text):
        return None
    hint = ""
    if len(text) <= DECIMAL_TEXT_LENGTH_MAX:
        try:
            value = Decimal(text.strip())
        except ArithmeticError:
            value = None
        # Bounded before formatting: "1e999999999" must not become a billion digits.
        if value is not None and value.is_finite() and not value.is_signed() and abs(value.as_tuple().exponent) <= DECIMAL_TEXT_LENGTH_MAX:
            plain = format(value, "f")
            if plain_decimal(plain):
                hint = f" (write {plain})"
    return (f"Illegal characters found in parameter '{param}': {text[:DECIMAL_TEXT_LENGTH_MAX]!r} is not a plain decimal{hint}; "
            f"{PLAIN_DECIMAL_RULE}.")


PLAIN_DECIMAL_RULE = "use digits with an optional fraction, such as 0.001: no sign, exponent, spaces or separators"


def _to_steps(text: str | Decimal, step: Decimal) -> int | None:
    if text.__class__ is str and len(text) <= CACHED_TEXT_LENGTH_MAX:
        return _steps_cached(text, step)
    return _steps(text, step)


def _steps(text: str | Decimal, step: Decimal) -> int | None:
    if isinstance(text, Decimal):
        value = text
    else:
        if not isinstance(text, str):
            return None
        text = text.strip()
        if len(text) > DECIMAL_TEXT_LENGTH_MAX or not _DECIMAL_TEXT.match(text):
            return None
        value = Decimal(text)
    if not value.is_finite():
        return None
    steps = _EXACT.divide(value, step)
    if steps != steps.to_integral_value() or steps > limits.UINT64_MAX:
        return None
    return int(steps)


_steps_cached = functools.lru_cache(maxsize=CONVERSIONS_CACHED_MAX)(_steps)


def _fmt(value: Decimal, step: Decimal) -> str:
    return f"{value:.{_places(step)}f}"


def _fmt_steps(n: int, step: Decimal) -> str:
    """`_fmt(n * step, step)` for an integer `n`, written out in integer
    arithmetic: `step` is `coefficient` x 10^-places, so the digits are those
    of n x coefficient with a point `places` from the right. A Decimal product
    and its formatting cost ~1 µs; an answer formats a few a fill."""
    if n.__class__ is not int:
        return _fmt(n * step, step)
    coefficient, places = _step_parts(step)
    v = n * coefficient
    if not places:
        return str(v)
    digits = str(abs(v)).rjust(places + 1, "0")
    return f"{'-' if v < 0 else ''}{digits[:-places]}.{digits[-places:]}"


@functools.lru_cache(maxsize=64)
def _step_parts(step: Decimal) -> tuple[int, int]:
    """(coefficient, places) with step == coefficient x 10^-places exactly,
    places as `_fmt` writes `step`'s multiples."""
    places = _places(step)
    coefficient = step.scaleb(places)
    if coefficient != coefficient.to_integral_value():
        raise ValueError(f"step {step} is not a whole number of 10^-{places}")
    return int(coefficient), places


@functools.lru_cache(maxsize=64)  # a market's tick and step sizes and its assets' units: a handful
def _places(step: Decimal) -> int:
    """The decimal places `step` is written with: 2 for 0.01, 0 for 10."""
    return max(0, -step.normalize().as_tuple().exponent)
