"""The per-account rate limit on signed requests.

Each node keeps a token bucket per account (the account of a verified
signature): `rate_limit_per_s` tokens a second up to `rate_limit_burst`
(cluster config). A request that finds the bucket empty is answered 429
-1003 with `Retry-After` (whole seconds, at least 1) and does nothing.

A request is charged once, at the node the user sent it to. A follower
verifies and charges a state-changing request before forwarding it through
the forward channel (dex/api/channel.py); the leader does not charge what
arrives on the channel, which only the cluster's nodes can open. No HTTP
header skips the limit.

Bounded: at most ACCOUNTS_TRACKED_MAX buckets; the least recently used is
dropped first (an account that comes back starts with a full bucket).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from dex.api.errors import TOO_MANY_REQUESTS, ApiError

ACCOUNTS_TRACKED_MAX = 100_000
RETRY_AFTER_S_MIN = 1


class TokenBuckets:
    """Token buckets by key. `take(key)` spends a token: 0.0 when one was
    there, else the seconds until one will be (nothing spent)."""

    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic, keys_max: int = ACCOUNTS_TRACKED_MAX) -> None:
        assert rate_per_s > 0 and burst >= 1 and keys_max >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.keys_max = keys_max
        self._buckets: OrderedDict[object, list[float]] = OrderedDict()  # key -> [tokens, at_s]

    def take(self, key) -> float:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(self.burst), now]
            if len(self._buckets) > self.keys_max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate_per_s)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)


class AccountLimiter:
    """The node's limit on signed requests, per account."""

    def __init__(self, rate_per_s: int, burst: int) -> None:
        self.buckets = TokenBuckets(rate_per_s, burst)
        self.rate_per_s = rate_per_s
        self.rejected = 0

    def charge(self, account: int) -> None:
        """Spend one of the account's tokens, or raise the 429."""
        wait_s = self.buckets.take(account)
        if wait_s > 0:
            self.rejected += 1
            retry_after_s = max(RETRY_AFTER_S_MIN, math.ceil(wait_s))
            raise ApiError(
                429,
                TOO_MANY_REQUESTS,
                f"Too many requests; this account may send {self.rate_per_s} signed requests per second to a node. "
                f"Retry after {retry_after_s} s.",
                headers={"Retry-After": str(retry_after_s)},
            )


RESPONSE_429 = {429: {"description": "Too many requests from this account (-1003); wait `Retry-After` seconds"}}


def document_429(router) -> None:
    """Add the 429 answer to the OpenAPI description of every signed route
    of `router` (before it is included in the app)."""
    for route in router.routes:
        if "(signed" in (getattr(route, "summary", None) or ""):
            route.responses.update(RESPONSE_429)
