"""Commands into the engine. Immutable messages built at the edge (API, codec,
tests); the engine never mutates them.

NamedTuples, not frozen dataclasses: every order is built once by the API's
translator and once per node by the block decoder, and an 11-field frozen
dataclass costs three times a NamedTuple to build (measured here: 1.37 against
0.43 us for a PlaceOrder by keyword). Build them by keyword. Two commands are
equal only if they are of the same class (a CancelOrder never equals a
Deposit with the same four values, as plain tuples would).

Units: `price` in ticks, `qty` in lots, `quote_qty` and `amount` in the
smallest units of the asset. `account` is an integer id (the API derives it
from the account's public key); account 0 is the fee account.
"""

from __future__ import annotations

from typing import NamedTuple

from dex.core import limits
from dex.core.types import OrderType, SelfTradePrevention, Side, TimeInForce


def _equal_within_class(cls):
    """`cls` (a NamedTuple) equal only to instances of itself; a tuple's
    equality would make a CancelOrder equal a Deposit of the same values."""

    def __eq__(self, other) -> bool:
        return self.__class__ is other.__class__ and tuple.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return not __eq__(self, other)

    cls.__eq__, cls.__ne__, cls.__hash__ = __eq__, __ne__, tuple.__hash__
    return cls


def valid_client_order_id(cid: str) -> bool:
    """The engine's rule for a client order id: 1..CLIENT_ORDER_ID_LENGTH_MAX
    printable ASCII characters (the ledger codec stores it as ASCII)."""
    return 0 < len(cid) <= limits.CLIENT_ORDER_ID_LENGTH_MAX and cid.isascii() and cid.isprintable()


@_equal_within_class
class PlaceOrder(NamedTuple):
    account: int
    symbol: str
    side: Side
    type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    price: int = 0  # ticks; 0 for MARKET
    qty: int = 0  # lots; 0 for a market buy by quote amount
    quote_qty: int = 0  # quote units; only for a MARKET BUY by quote amount
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.EXPIRE_TAKER
    client_order_id: str | None = None


@_equal_within_class
class CancelOrder(NamedTuple):
    """Cancel by `order_id`, or by `client_order_id` when `order_id` is 0."""

    account: int
    symbol: str
    order_id: int = 0
    client_order_id: str | None = None


@_equal_within_class
class CancelAll(NamedTuple):
    """Cancel every live order of the account, or only those in `symbol`."""

    account: int
    symbol: str | None = None


@_equal_within_class
class AmendOrder(NamedTuple):
    """Change a resting order's price and/or total quantity.

    `qty` is the new total quantity (lots, filled part included), 0 to keep it;
    `price` is the new price (ticks), 0 to keep it. Lowering the quantity at the
    same price keeps queue priority; changing the price or raising the quantity
    loses it, and a new price that crosses the book matches as a taker.
    """

    account: int
    symbol: str
    order_id: int = 0
    client_order_id: str | None = None
    price: int = 0
    qty: int = 0


@_equal_within_class
class Deposit(NamedTuple):
    """`transfer_id`: the client's id for the transfer (clientTransferId),
    valid by `valid_client_order_id`; a transfer whose id the account already
    used executes once (dex/ledger/replay.py, TransferIds). The engine never
    reads it."""

    account: int
    asset: str
    amount: int  # asset units
    transfer_id: str | None = None


@_equal_within_class
class Withdraw(NamedTuple):
    account: int
    asset: str
    amount: int  # asset units
    transfer_id: str | None = None  # as Deposit's


Command = PlaceOrder | CancelOrder | CancelAll | AmendOrder | Deposit | Withdraw
