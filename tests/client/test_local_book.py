"""LocalBook, the client's copy of a market's book: snapshot, diffs, the U/u
rule, gaps, stale events, level removal; and a property test against a
plain dict model fed the same random block-by-block changes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dex.client_book import BadMessage, GapDetected, LocalBook


def snapshot(last: int, bids=(), asks=()) -> dict:
    return {"e": "depthSnapshot", "s": "BTCUSDT", "lastUpdateId": last, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}


def diff(first: int, last: int, b=(), a=()) -> dict:
    return {"e": "depthUpdate", "s": "BTCUSDT", "U": first, "u": last, "b": [list(x) for x in b], "a": [list(x) for x in a]}


def synced_book() -> LocalBook:
    book = LocalBook("BTCUSDT")
    book.apply_snapshot(snapshot(10, bids=[("50000.00", "0.5000"), ("49990.00", "1.0000")], asks=[("50010.00", "1.2000")]))
    book.check_invariants()
    return book


def test_snapshot_is_sorted_best_first() -> None:
    book = LocalBook("BTCUSDT")
    book.apply_snapshot(snapshot(7, bids=[("9.50", "1"), ("10.00", "2"), ("9.75", "3")], asks=[("11.00", "1"), ("10.50", "2")]))
    assert book.last_update_id == 7
    assert book.bids() == [["10.00", "2"], ["9.75", "3"], ["9.50", "1"]]
    assert book.asks() == [["10.50", "2"], ["11.00", "1"]]
    assert book.bids(2) == [["10.00", "2"], ["9.75", "3"]]
    book.check_invariants()


def test_diff_changes_adds_and_removes_levels() -> None:
    book = synced_book()
    assert book.apply_diff(diff(11, 13, b=[("50000.00", "0.3000"), ("49980.00", "2.0000")], a=[("50010.00", "0")]))
    assert book.last_update_id == 13
    assert book.bids() == [["50000.00", "0.3000"], ["49990.00", "1.0000"], ["49980.00", "2.0000"]]
    assert book.asks() == []
    book.check_invariants()


def test_removing_an_absent_level_is_harmless() -> None:
    book = synced_book()
    assert book.apply_diff(diff(11, 11, a=[("60000.00", "0.0000")]))
    assert book.asks() == [["50010.00", "1.2000"]]


def test_stale_diffs_are_ignored() -> None:
    book = synced_book()
    before = (book.bids(), book.asks())
    assert not book.apply_diff(diff(5, 9, b=[("50000.00", "9.0000")]))
    assert not book.apply_diff(diff(9, 10, b=[("50000.00", "9.0000")]))
    assert (book.bids(), book.asks()) == before
    assert book.last_update_id == 10 and book.diffs_stale == 2


def test_first_diff_after_a_rest_snapshot_may_overlap_it() -> None:
    # GET /depth at height 10; the stream's next event covers blocks 8..12.
    book = synced_book()
    assert book.apply_diff(diff(8, 12, b=[("50000.00", "0.1000")]))
    assert book.last_update_id == 12


def test_a_gap_raises_and_unsyncs_the_book() -> None:
    book = synced_book()
    assert book.apply_diff(diff(11, 12, b=[("50000.00", "0.1000")]))
    with pytest.raises(GapDetected) as info:
        book.apply_diff(diff(14, 15, b=[("50000.00", "0.2000")]))
    assert info.value.expected_first_id == 13 and info.value.first_id == 14
    assert not book.synced and book.bids() == [] and book.asks() == []
    book.check_invariants()
    with pytest.raises(AssertionError):
        book.apply_diff(diff(13, 13))  # the owner must take a snapshot first
    book.apply_snapshot(snapshot(15, bids=[("50000.00", "0.2000")]))
    assert book.synced and book.bids() == [["50000.00", "0.2000"]]


def test_same_as_depth_compares_height_and_levels() -> None:
    book = synced_book()
    depth = {"lastUpdateId": 10, "bids": [["50000.00", "0.5000"], ["49990.00", "1.0000"]], "asks": [["50010.00", "1.2000"]]}
    assert book.same_as_depth(depth)
    assert not book.same_as_depth({**depth, "lastUpdateId": 11})
    assert not book.same_as_depth({**depth, "asks": []})


@pytest.mark.parametrize(
    "bad",
    [
        diff(12, 11),
        {"U": "11", "u": 11, "b": [], "a": []},
        diff(11, 11, b=[("abc", "1")]),
        diff(11, 11, b=[("1", "-1")]),
        diff(11, 11, b=[("0", "1")]),
        {"U": 11, "u": 11, "b": [["1"]], "a": []},
        {"U": 11, "u": 11, "b": None, "a": []},
    ],
)
def test_malformed_diffs_are_rejected(bad: dict) -> None:
    book = synced_book()
    with pytest.raises(BadMessage):
        book.apply_diff(bad)
    assert book.last_update_id == 10


# --- property: the local book follows a model through random blocks ---------

PRICES = [f"{p}.00" for p in range(100, 120)]
QTYS = ["0", "0.5000", "1.0000", "2.5000"]
block_change = st.tuples(st.booleans(), st.sampled_from(PRICES), st.sampled_from(QTYS))
# Each entry: the height gap to the next block touching the market, and its level changes.
blocks = st.lists(st.tuples(st.integers(1, 4), st.lists(block_change, min_size=1, max_size=6)), min_size=1, max_size=40)


def model_events(start: int, history) -> tuple[list[dict], list[dict[str, dict]]]:
    """depthUpdate events with U = previous u + 1, and the model book after each."""
    book: dict[str, dict] = {"b": {}, "a": {}}
    events, states = [], []
    height = start
    for step, changes in history:
        first = height + 1
        height += step
        # Bids below 110, asks from 110 up: the book never crosses.
        changes = [(is_bid, p, q) for is_bid, p, q in changes if (Decimal(p) < 110) == is_bid]
        b = [(p, q) for is_bid, p, q in changes if is_bid]
        a = [(p, q) for is_bid, p, q in changes if not is_bid]
        for side, levels in (("b", b), ("a", a)):
            for p, q in levels:
                if Decimal(q) == 0:
                    book[side].pop(p, None)
                else:
                    book[side][p] = q
        events.append(diff(first, height, b=b, a=a))
        states.append({"b": dict(book["b"]), "a": dict(book["a"])})
    return events, states


def as_levels(side: dict[str, str], reverse: bool) -> list[list[str]]:
    return [[p, side[p]] for p in sorted(side, key=Decimal, reverse=reverse)]


@settings(max_examples=200, deadline=None)
@given(history=blocks, drop=st.integers(0, 39))
def test_local_book_follows_the_model_and_detects_any_dropped_event(history, drop) -> None:
    events, states = model_events(100, history)
    book = LocalBook("BTCUSDT")
    book.apply_snapshot(snapshot(100))
    for event, state in zip(events, states):
        assert book.apply_diff(event)
        book.check_invariants()
        assert book.bids() == as_levels(state["b"], True) and book.asks() == as_levels(state["a"], False)
        assert book.last_update_id == event["u"]

    # The same stream with one event lost: the next one is a gap, never silently applied.
    if drop + 1 < len(events):
        book = LocalBook("BTCUSDT")
        book.apply_snapshot(snapshot(100))
        for event in events[:drop]:
            book.apply_diff(event)
        with pytest.raises(GapDetected):
            book.apply_diff(events[drop + 1])
        # Resync: a snapshot at that height, then the rest applies cleanly.
        state = states[drop + 1]
        book.apply_snapshot(snapshot(events[drop + 1]["u"], bids=as_levels(state["b"], True), asks=as_levels(state["a"], False)))
        for event in events[drop + 2 :]:
            assert book.apply_diff(event)
        assert book.bids() == as_levels(states[-1]["b"], True) and book.asks() == as_levels(states[-1]["a"], False)
