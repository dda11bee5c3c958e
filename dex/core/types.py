"""Enumerations on orders. They are IntEnums so the hot path compares plain
integers and the codec stores one byte each; their names are Binance's."""

from enum import IntEnum


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2


class SelfTradePrevention(IntEnum):
    """What happens when a taker would trade with its own account's maker."""

    EXPIRE_TAKER = 0  # default: the taker's remainder expires, the maker stays
    EXPIRE_MAKER = 1  # the maker is cancelled, the taker goes on matching
    EXPIRE_BOTH = 2  # the maker is cancelled and the taker's remainder expires


class OrderStatus(IntEnum):
    NEW = 0
    PARTIALLY_FILLED = 1
    FILLED = 2
    CANCELED = 3
    EXPIRED = 4
    REJECTED = 5


FEE_ACCOUNT = 0
"""The account that collects every fee. No one can deposit to or trade from it."""
