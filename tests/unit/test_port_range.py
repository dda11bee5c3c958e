"""Throwaway ports come from $DEX_PORT_RANGE when it is set (each pytest-xdist
worker gets a range of its own in tests/conftest.py), else PORT_MIN..PORT_MAX."""

from __future__ import annotations

import os
import random

import pytest

from cluster import local


def test_ports_are_picked_inside_the_named_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local.PORT_RANGE_ENV, "23000-23050")
    assert local.port_range() == (23000, 23050)
    ports = local.free_ports(8, random.Random(1))
    assert len(set(ports)) == 8 and all(23000 <= p < 23050 for p in ports)


def test_without_the_variable_the_whole_range_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local.PORT_RANGE_ENV, raising=False)
    assert local.port_range() == (local.PORT_MIN, local.PORT_MAX)


@pytest.mark.parametrize("spec", ["23000", "23050-23000", "1000-2000", "20000-40000", "２３０００-23050", "a-b"])
def test_a_malformed_or_outside_range_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv(local.PORT_RANGE_ENV, spec)
    with pytest.raises(local.ClusterError, match=local.PORT_RANGE_ENV):
        local.port_range()


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_slices_are_disjoint_equal_and_inside_the_range(count: int) -> None:
    bounds = [tuple(map(int, local.port_slice(i, count).split("-"))) for i in range(count)]
    assert bounds[0][0] == local.PORT_MIN and bounds[-1][1] <= local.PORT_MAX
    assert all(hi == next_lo for (_, hi), (next_lo, _) in zip(bounds, bounds[1:]))  # adjacent, no overlap
    assert len({hi - lo for lo, hi in bounds}) == 1 and bounds[0][1] - bounds[0][0] >= (local.PORT_MAX - local.PORT_MIN) // 8


def test_each_xdist_worker_picks_from_its_own_slice() -> None:
    """tests/conftest.py gives worker gwN the N-th slice."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker is None or count is None:
        pytest.skip("not under pytest-xdist (make test runs it)")
    assert os.environ[local.PORT_RANGE_ENV] == local.port_slice(int(worker.removeprefix("gw")), int(count))
    assert local.port_range() == tuple(map(int, os.environ[local.PORT_RANGE_ENV].split("-")))
