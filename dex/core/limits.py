"""Every bound the engine enforces, as named constants beside their siblings.

Going over a bound is a typed rejection (see `dex.core.reasons`), never an
exception and never a silent truncation.
"""

# Integer ranges. Prices are ticks, quantities are lots, amounts are the
# smallest unit of an asset. Everything fits in a signed 64-bit integer so the
# ledger's codec can store it in fixed-width fields.
INT64_MAX = 2**63 - 1
# The widest number a command carries (the codec's unsigned 64-bit fields).
# The edge refuses a decimal worth more steps than this as it refuses a
# malformed one; anything from the engine's bounds below up to it reaches the
# engine and is rejected there with a typed reason.
UINT64_MAX = 2**64 - 1
PRICE_TICKS_MAX = 2**40
QUANTITY_LOTS_MAX = 2**40
BALANCE_UNITS_MAX = 2**62
AMOUNT_UNITS_MAX = BALANCE_UNITS_MAX

# Accounts and orders. Account ids are u64 on the ledger; 0 is the fee account.
ACCOUNT_ID_MAX = 2**64 - 1
ACCOUNTS_MAX = 1_000_000
OPEN_ORDERS_PER_ACCOUNT_MAX = 200_000
BOOK_ORDERS_MAX = 5_000_000

# A client order id is reserved while its order is live and for the account's
# next DEDUP_FINISHED_ORDERS_MAX finished orders after it finishes.
DEDUP_FINISHED_ORDERS_MAX = 10_000
CLIENT_ORDER_ID_LENGTH_MAX = 36

# A taker stops after this many fills; what remains of it expires.
TRADES_PER_ORDER_MAX = 10_000

# Fees in basis points.
FEE_BPS_MAX = 1_000

# An order's cost (ticks x lots x units) may exceed int64: it is then simply
# more than any balance can hold and the order is rejected for balance.
assert PRICE_TICKS_MAX <= INT64_MAX and QUANTITY_LOTS_MAX <= INT64_MAX
assert BALANCE_UNITS_MAX < INT64_MAX
assert OPEN_ORDERS_PER_ACCOUNT_MAX <= BOOK_ORDERS_MAX
assert TRADES_PER_ORDER_MAX >= 1
