"""The leader's admission rule (dex/ledger/admission.py), driven with a fake
clock: a request is refused when its expected wait (commands ahead / the
commit rate measured over busy time) is over the budget, never while at
most the floor is ahead of it, and always past the count bound."""

from __future__ import annotations

import pytest

from dex.ledger.admission import RATE_WINDOW_S, Admission

BLOCK = 10  # commands a block commits in these tests; also the floor


def admission(budget_ms: int = 100, queued_max: int = 10_000) -> Admission:
    return Admission(delay_budget_ms=budget_ms, floor_commands=BLOCK, queued_max=queued_max)


def saturate(a: Admission, *, rate_per_s: float, seconds: float, start_s: float = 0.0, block: int = BLOCK) -> float:
    """Keep the queue busy and commit `block` commands every block/rate
    seconds for `seconds`; returns the clock at the end."""
    now = start_s
    a.admitted(now, block)
    step = block / rate_per_s
    while now < start_s + seconds:
        a.admitted(now, block)  # the next block queues before this one commits: always busy
        now += step
        a.finished(now, block, committed=True)
    return now


def test_no_rate_measured_admits_up_to_the_count_bound():
    a = admission(queued_max=50)
    assert a.rate_per_s() is None
    a.admitted(0.0, 45)
    assert a.refusal(5) is None
    assert "at most 50" in a.refusal(6)


def test_the_rate_is_measured_over_busy_time():
    a = admission()
    now = saturate(a, rate_per_s=1000, seconds=0.5)
    assert a.rate_per_s() == pytest.approx(1000, rel=0.01)
    now += 0.01
    a.finished(now, BLOCK, committed=True)
    assert a.queued == 0
    # An idle second does not lower it: a light load is not a slow cluster.
    now += 1.0
    a.admitted(now, 1)
    a.finished(now + 0.002, 1, committed=True)
    assert a.rate_per_s() > 900


def test_refuses_when_the_expected_wait_is_over_the_budget():
    a = admission(budget_ms=100)
    saturate(a, rate_per_s=1000, seconds=0.5)  # one block (10) still queued at the end
    assert a.queued == BLOCK
    a.admitted(1.0, 89)  # 99 ahead: 99 ms at 1,000/s
    assert a.refusal(50) is None  # its own commands do not count: they wait for those ahead only
    a.admitted(1.0, 2)  # 101 ahead
    why = a.refusal(1)
    assert why is not None and "budget" in why
    assert a.expected_delay_s() == pytest.approx(0.101, rel=0.001)


def test_nothing_ahead_admits_a_whole_batch_at_any_rate():
    a = admission(budget_ms=1)
    now = saturate(a, rate_per_s=10, seconds=2.0)
    a.finished(now + 1.0, BLOCK, committed=True)
    assert a.queued == 0 and a.rate_per_s() < 20
    assert a.refusal(100) is None


def test_a_slower_cluster_admits_fewer():
    fast, slow = admission(), admission()
    saturate(fast, rate_per_s=2000, seconds=0.5)
    saturate(slow, rate_per_s=200, seconds=0.5)

    def admitted_until_refused(a: Admission) -> int:
        n = 0
        while a.refusal(1) is None:
            a.admitted(1.0, 1)
            n += 1
        return n

    # 100 ms of queue: ~200 commands at 2,000/s, ~20 at 200/s (less the block still queued).
    assert 190 <= admitted_until_refused(fast) <= 191
    assert 10 <= admitted_until_refused(slow) <= 11


def test_the_floor_is_always_admitted_whatever_the_rate():
    a = admission(budget_ms=1)
    saturate(a, rate_per_s=10, seconds=2.0)  # 1 ms of budget at 10/s: not even one command fits
    assert a.queued == BLOCK  # the floor is ahead
    assert a.refusal(1) is None
    a.admitted(3.0, 1)
    assert a.refusal(1) is not None


def test_failed_commands_leave_the_queue_but_not_the_rate():
    a = admission()
    now = saturate(a, rate_per_s=1000, seconds=0.5)
    rate = a.rate_per_s()
    a.admitted(now, 50)
    a.finished(now + 5.0, 50, committed=False)  # a lost block, 5 s later: not a slow commit
    assert a.rate_per_s() == rate
    assert a.queued == BLOCK


def test_the_window_follows_a_change_of_rate():
    a = admission()
    now = saturate(a, rate_per_s=1000, seconds=1.0)
    saturate(a, rate_per_s=100, seconds=2 * RATE_WINDOW_S, start_s=now)
    assert a.rate_per_s() == pytest.approx(100, rel=0.05)


def test_retry_after_is_whole_seconds_covering_the_queue():
    a = admission(budget_ms=100, queued_max=100_000)
    saturate(a, rate_per_s=100, seconds=0.5)
    assert a.retry_after_s() == 1
    a.admitted(1.0, 240)  # 250 ahead at 100/s: 2.5 s
    assert a.retry_after_s() == 3
    assert "2,500 ms" in a.refusal(1)


def test_the_excess_is_how_long_the_expected_wait_stays_over_the_budget():
    """What a refusal tells a follower (X-DEX-SHED-MS): 0 while under the
    budget or with no rate yet, else expected wait minus budget."""
    a = admission(budget_ms=100)
    assert a.excess_s() == 0.0  # no rate yet
    saturate(a, rate_per_s=1000, seconds=0.5)  # 10 queued: 10 ms at 1,000/s
    assert a.excess_s() == 0.0
    a.admitted(1.0, 140)  # 150 ahead: 150 ms at 1,000/s, 50 ms over
    assert a.refusal(1) is not None
    assert a.excess_s() == pytest.approx(0.050, rel=0.02)
