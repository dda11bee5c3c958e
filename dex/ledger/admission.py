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
admitted: a rate measured under a light load (small blocks) understates what
the cluster does under a burst (bigger blocks), and a few commands ahead
drain in about one commit latency whatever the rate says. The floor is small
next to what a budget holds at any useful rate, or it would defeat the budget.

Sans-IO: every method takes `now_s` (monotonic seconds) from the caller, so a
test drives it with a fake clock. Not thread-safe: the builder calls it under
its own lock. Invariants: `queued >= 0`; the window holds at most
RATE_SAMPLES_MAX samples and at most about RATE_WINDOW_S of busy time.
"""

from __future__ import annotations

from collections import deque

RATE_WINDOW_S = 1.0  # the commit rate is measured over about this much recent busy time
RATE_SAMPLES_MAX = 1024  # blocks in the window, whatever their busy time
RATE_BUSY_S_MIN = 0.005  # less busy time than this measured: no rate yet (count bound only)
DELAY_BUDGET_MS_DEFAULT = 50  # expected queueing delay past which a request is refused
FLOOR_COMMANDS_MAX = 4  # commands ahead that are always admitted (at most a block's worth)
RETRY_AFTER_S_MIN = 1  # HTTP Retry-After is whole seconds
assert 0 < RATE_BUSY_S_MIN < RATE_WINDOW_S and RATE_SAMPLES_MAX >= 1


class Admission:
    def __init__(self, *, delay_budget_ms: int = DELAY_BUDGET_MS_DEFAULT, floor_commands: int, queued_max: int) -> None:
        assert delay_budget_ms > 0 and floor_commands >= 1 and queued_max >= floor_commands
        self.delay_budget_s = delay_budget_ms / 1000
        self.floor_commands = floor_commands
        self.queued_max = queued_max
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

    def expected_delay_s(self) -> float | None:
        """How long a request admitted now would wait for the commands ahead
        of it at the measured rate (None: no rate yet)."""
        rate = self.rate_per_s()
        return None if rate is None else self.queued / rate

    def refusal(self, commands: int) -> str | None:
        """Why `commands` more must be refused now, or None to admit them."""
        assert commands >= 1
        if self.queued + commands > self.queued_max:
            return f"{self.queued} commands already waiting (at most {self.queued_max})"
        if self.queued <= self.floor_commands:
            return None
        delay_s = self.expected_delay_s()
        if delay_s is not None and delay_s > self.delay_budget_s:
            return (
                f"{self.queued} commands ahead at {self.rate_per_s():,.0f} commands/s: an expected wait of "
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
