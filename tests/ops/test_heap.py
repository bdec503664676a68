"""Start-up objects frozen out of the collector: later full collections walk fewer objects."""

from __future__ import annotations

import gc

from bot.ops.heap import YOUNG, freeze_startup


def test_freeze_moves_what_exists_now_out_of_collections() -> None:
    gc.collect()
    before = len(gc.get_objects())
    thresholds = gc.get_threshold()
    try:
        frozen = freeze_startup()
        assert gc.get_threshold() == (YOUNG, *thresholds[1:])
        assert frozen >= before * 0.9  # (collect() may free a few first)
        made_after = [[i] for i in range(1000)]
        assert len(gc.get_objects()) < 0.1 * before + len(made_after) + 1000  # only the new
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert len(gc.get_objects()) >= before
