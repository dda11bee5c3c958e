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


def test_each_xdist_worker_picks_from_its_own_slice() -> None:
    """tests/conftest.py gives worker gwN the N-th of as many equal slices as
    there are workers, so no two workers share a port."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker is None or count is None:
        pytest.skip("not under pytest-xdist (make test runs it)")
    index, width = int(worker.removeprefix("gw")), (local.PORT_MAX - local.PORT_MIN) // int(count)
    assert local.port_range() == (local.PORT_MIN + index * width, local.PORT_MIN + (index + 1) * width)
