"""dex.node.tune_gc: start-up's objects frozen out of collection, full
collections rare (the numbers behind it are in docs/CLUSTER.md)."""

from __future__ import annotations

import gc

from dex.node import GC_FULL_AFTER_YOUNG, tune_gc


def test_tune_gc_freezes_what_exists_and_makes_full_collections_rare() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    survivor = [[i] for i in range(1000)]  # lists: tracked by the collector
    try:
        tune_gc()
        assert gc.get_threshold() == (before[0], before[1], GC_FULL_AFTER_YOUNG)
        assert GC_FULL_AFTER_YOUNG > before[2]
        assert gc.get_freeze_count() >= frozen_before + len(survivor)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
