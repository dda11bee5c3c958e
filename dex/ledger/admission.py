"""Admission to the leader's block builder: shed what cannot commit in time.

Offered more than the cluster can commit, a queue that only has a count
bound fills up and every accepted request then waits for the whole queue
(seconds). Instead the builder admits a request only while the delay it can
expect is inside a budget:

    expected delay = commands queued or in flight ahead of it / commit rate

and refuses the rest at once (`Overloaded`, answered 503 -1008 with
Retry-After). The commit rate is measured over *busy* time only (time during
which some command was queued or in flight), so an idle or lightly loaded
cluster is not mistaken for a slow one: a light load drains as fast as it
arrives. Before anything was committed there is no rate and only the count
bound applies. A request with at most `floor_commands` ahead of it is always
admitted: a few commands ahead drain in about one commit latency whatever the
rate says. The floor is small next to what a budget holds at any useful rate,
or it would defeat the budget.

Block sizes. A block costs a fixed part (its round of Raft messages, fsyncs,
header, hashes) and a part per command, so a rate measured on small blocks (a
light load, one order a block) understates what the cluster commits when a
burst fills blocks: at a cold start the first batch of 100 orders was refused
with "100 commands ahead at 1,114 commands/s", retried after its Retry-After,
refused again, and waited 2-5 s (`bench/cluster.py --batch 100`,
docs/BENCHMARKS.md). So when the window holds blocks of different sizes the
busy time per block is fitted as `a + b * commands` (least squares) and the
commands ahead are costed as the full blocks they will make:

    expected delay = ceil(ahead / block_commands) * a + ahead * b

A window of light load only (no block above `floor_commands`: each block
committed as its few commands came) says nothing of the per-command part and
costs a block at its mean busy time (b = 0); the first fuller blocks then
give the fit its spread. With blocks of one size past that (no fit possible)
or a fit that makes no sense (a negative fixed or per-command part) the plain
rate is used, as before.

Sans-IO: every method takes `now_s` (monotonic seconds) from the caller, so a
test drives it with a fake clock. Not thread-safe: the builder calls it under
its own lock. Invariants: `queued >= 0`; the window holds at most
RATE_SAMPLES_MAX samples and at most about RATE_WINDOW_S of busy time.
"""

from __future__ import annotations

import math
from collections import deque

RATE_WINDOW_S = 1.0  # the commit rate is measured over about this much recent busy time
RATE_SAMPLES_MAX = 1024  # blocks in the window, whatever their busy time
RATE_BUSY_S_MIN = 0.005  # less busy time than this measured: no rate yet (count bound only)
DELAY_BUDGET_MS_DEFAULT = 50  # expected queueing delay past which a request is refused
FLOOR_COMMANDS_MAX = 4  # commands ahead that are always admitted (at most a block's worth)
RETRY_AFTER_S_MIN = 1  # HTTP Retry-After is whole seconds
FIT_SAMPLES_MIN = 8  # blocks in the window before the block-cost fit is tried
FIT_SPREAD_MIN = 2.0  # ... and the largest must hold at least this many times the commands of the smallest
assert 0 < RATE_BUSY_S_MIN < RATE_WINDOW_S and RATE_SAMPLES_MAX >= 1


class Admission:
    def __init__(self, *, delay_budget_ms: int = DELAY_BUDGET_MS_DEFAULT, floor_commands: int, queued_max: int,
                 block_commands: int | None = None) -> None:
        assert delay_budget_ms > 0 and floor_commands >= 1 and queued_max >= floor_commands
        assert block_commands is None or block_commands >= floor_commands
        self.delay_budget_s = delay_budget_ms / 1000
        self.floor_commands = floor_commands
        self.queued_max = queued_max
        self.block_commands = block_commands  # the most commands a block holds (None: no block-cost fit)
        self.queued = 0  # commands admitted and not yet committed or failed
        self._busy_since_s: float | None = None  # when `queued` last went from 0 to > 0
        self._last_done_s = 0.0
        self._samples: deque[tuple[float, int]] = deque()  # (busy seconds, commands committed)
        self._samples_busy_s = 0.0
        self._samples_commands = 0

    # ------------------------------------------------------------ decisions

    def rate_per_s(self) -> float | None:
        """Commands committed per second of busy time, recently; None before
        enough has been measured."""
        if self._samples_busy_s < RATE_BUSY_S_MIN or self._samples_commands == 0:
            return None
        return self._samples_commands / self._samples_busy_s

    def block_cost_s(self) -> tuple[float, float] | None:
        """(a, b): the busy time of a block of n commands fitted as a + b * n
        over the window, or None where no sensible fit exists (see above)."""
        k = len(self._samples)
        if self.block_commands is None or k < FIT_SAMPLES_MIN:
            return None
        sizes = [n for _, n in self._samples]
        if max(sizes) <= self.floor_commands:  # a light load: each block as it came, its cost the fixed part
            return self._samples_busy_s / k, 0.0
        if max(sizes) < FIT_SPREAD_MIN * min(sizes):
            return None
        sum_n = self._samples_commands
        sum_t = self._samples_busy_s
        sum_nn = math.fsum(n * n for n in sizes)
        sum_nt = math.fsum(n * t for t, n in self._samples)
        spread = k * sum_nn - sum_n * sum_n
        if spread <= 0:
            return None
        b = (k * sum_nt - sum_n * sum_t) / spread
        a = (sum_t - b * sum_n) / k
        if a < 0 or b < 0:
            return None
        return a, b

    def expected_delay_s(self) -> float | None:
        """How long a request admitted now would wait for the commands ahead
        of it: costed as the blocks they make where the block-cost fit holds,
        at the measured rate otherwise (None: no rate yet)."""
        rate = self.rate_per_s()
        if rate is None:
            return None
        cost = self.block_cost_s()
        if cost is None:
            return self.queued / rate
        a, b = cost
        return -(-self.queued // self.block_commands) * a + self.queued * b

    def refusal(self, commands: int) -> str | None:
        """Why `commands` more must be refused now, or None to admit them."""
        assert commands >= 1
        if self.queued + commands > self.queued_max:
            return f"{self.queued} commands already waiting (at most {self.queued_max})"
        if self.queued <= self.floor_commands:
            return None
        delay_s = self.expected_delay_s()
        if delay_s is not None and delay_s > self.delay_budget_s:
            cost = self.block_cost_s()
            pace = (
                f"at {self.rate_per_s():,.0f} commands/s" if cost is None
                else f"in blocks of up to {self.block_commands} at {cost[0] * 1000:,.1f} ms + {cost[1] * 1e6:,.0f} us a command"
            )
            return (
                f"{self.queued} commands ahead {pace}: an expected wait of "
                f"{delay_s * 1000:,.0f} ms, over the {self.delay_budget_s * 1000:,.0f} ms budget"
            )
        return None

    def excess_s(self) -> float:
        """How far the expected wait is over the budget (0 when it is not, or
        when there is no rate yet): how long, with nothing more admitted, until
        a request would be admitted again."""
        delay_s = self.expected_delay_s()
        return 0.0 if delay_s is None else max(0.0, delay_s - self.delay_budget_s)

    def retry_after_s(self) -> int:
        """Whole seconds after which the queue ahead will have drained."""
        delay_s = self.expected_delay_s() or 0.0
        return max(RETRY_AFTER_S_MIN, int(delay_s + 0.999))

    # --------------------------------------------------------------- events

    def admitted(self, now_s: float, commands: int) -> None:
        assert commands >= 1
        if self.queued == 0:
            self._busy_since_s = now_s
        self.queued += commands

    def finished(self, now_s: float, commands: int, *, committed: bool) -> None:
        """`commands` left the queue: committed (they count toward the rate)
        or failed (they do not)."""
        assert 1 <= commands <= self.queued, (commands, self.queued)
        if committed:
            start = self._last_done_s if self._busy_since_s is None else max(self._last_done_s, self._busy_since_s)
            self._add_sample(max(0.0, now_s - start), commands)
        self._last_done_s = now_s
        self.queued -= commands
        if self.queued == 0:
            self._busy_since_s = None

    def _add_sample(self, busy_s: float, commands: int) -> None:
        self._samples.append((busy_s, commands))
        self._samples_busy_s += busy_s
        self._samples_commands += commands
        while len(self._samples) > RATE_SAMPLES_MAX or (len(self._samples) > 1 and self._samples_busy_s - self._samples[0][0] >= RATE_WINDOW_S):
            old_s, old_n = self._samples.popleft()
            self._samples_busy_s -= old_s
            self._samples_commands -= old_n
        assert self._samples_commands >= 0 and self.queued >= 0
