"""Why a command was rejected, or why an order stopped, with stable codes.

`Reason` values are dex's own stable identifiers (they go on the ledger); each
maps to a wire code that follows Binance where Binance has one (-1013 filter
failure, -2010 new order rejected, -2011 cancel rejected, -2013 no such order)
and to a fixed message. Codes in the -9000 range are dex's own.
"""

from enum import IntEnum


class Reason(IntEnum):
    # Filter failures (-1013).
    PRICE_FILTER = 1
    LOT_SIZE = 2
    NOTIONAL = 3
    MAX_NUM_ORDERS = 4
    # New order rejected (-2010).
    INSUFFICIENT_BALANCE = 10
    WOULD_TAKE = 11
    BOOK_FULL = 12
    # Cancel and lookup.
    UNKNOWN_ORDER = 20
    CANCEL_REJECTED = 21
    # Parameters.
    UNKNOWN_SYMBOL = 30
    UNKNOWN_ASSET = 31
    BAD_PARAMETER = 32
    QUOTE_QTY_SELL = 33
    BAD_CLIENT_ORDER_ID = 34
    # Wallet.
    WITHDRAW_INSUFFICIENT = 40
    BAD_AMOUNT = 41
    BALANCE_OVERFLOW = 42
    TOO_MANY_ACCOUNTS = 43
    RESERVED_ACCOUNT = 44
    DUPLICATE_TRANSFER = 45  # a clientTransferId the account already used: nothing applied
    # Signed requests (dex/ledger/replay.py): the whole request is refused.
    REPLAYED = 50
    EXPIRED_REQUEST = 51
    REQUESTS_WINDOW_FULL = 52

    @property
    def code(self) -> int:
        return _WIRE[self][0]

    @property
    def msg(self) -> str:
        return _WIRE[self][1]


_WIRE: dict[Reason, tuple[int, str]] = {
    Reason.PRICE_FILTER: (-1013, "Filter failure: PRICE_FILTER"),
    Reason.LOT_SIZE: (-1013, "Filter failure: LOT_SIZE"),
    Reason.NOTIONAL: (-1013, "Filter failure: NOTIONAL"),
    Reason.MAX_NUM_ORDERS: (-1013, "Filter failure: MAX_NUM_ORDERS"),
    Reason.INSUFFICIENT_BALANCE: (-2010, "Account has insufficient balance for requested action."),
    Reason.WOULD_TAKE: (-2010, "Order would immediately match and take."),
    Reason.BOOK_FULL: (-2010, "The order book is full."),
    Reason.UNKNOWN_ORDER: (-2013, "Order does not exist."),
    Reason.CANCEL_REJECTED: (-2011, "Unknown order sent."),
    Reason.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    Reason.UNKNOWN_ASSET: (-9001, "Invalid asset."),
    Reason.BAD_PARAMETER: (-1102, "A mandatory parameter was not sent, was empty/null, or malformed."),
    Reason.QUOTE_QTY_SELL: (-1106, "Parameter 'quoteOrderQty' sent when not required."),
    Reason.BAD_CLIENT_ORDER_ID: (-1100, "Illegal characters found in parameter 'newClientOrderId'."),
    Reason.WITHDRAW_INSUFFICIENT: (-4026, "User has insufficient balance."),
    Reason.BAD_AMOUNT: (-9002, "Amount must be a positive whole number of the asset's units."),
    Reason.BALANCE_OVERFLOW: (-9003, "Balance would exceed its bound."),
    Reason.TOO_MANY_ACCOUNTS: (-9004, "The exchange has reached its account bound."),
    Reason.RESERVED_ACCOUNT: (-9005, "That account is reserved."),
    Reason.DUPLICATE_TRANSFER: (-9007, "Duplicate clientTransferId: this transfer was already executed."),
    Reason.REPLAYED: (-9006, "This signed request was already executed; sign a new one (a new timestamp)."),
    Reason.EXPIRED_REQUEST: (-1021, "Timestamp for this request is outside of the recvWindow."),
    Reason.REQUESTS_WINDOW_FULL: (-1008, "Server is currently overloaded with signed requests. Please try again."),
}
assert set(_WIRE) == set(Reason)


class StopReason(IntEnum):
    """Why a live order stopped without being filled (cancel or expiry)."""

    USER = 1  # cancel by the owner
    CANCEL_ALL = 2
    IOC = 3  # unfilled remainder of an IOC order or a market order
    FOK = 4  # could not fill completely
    SELF_TRADE = 5  # self-trade prevention
    NO_BALANCE = 6  # a market buy ran out of quote to spend
    TRADES_MAX = 7  # the taker reached TRADES_PER_ORDER_MAX fills
