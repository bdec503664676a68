"""Keeping the garbage collector's pauses short and rare in a long-running bot.

CPython's full (generation 2) collection walks every tracked container object, holding the
GIL: with a thousand learners the bot holds close to a million of them and one full
collection took 0.6-1 s of CPU, during which the event loop answers nothing. About 200,000 of
those objects are made at start-up (modules of discord.py, the Kubernetes client, pydantic,
the course) and live as long as the process; :func:`freeze_startup` moves them to the
permanent generation, so later collections no longer walk them (``gc.freeze``, Python 3.7+).

It also makes the youngest generation larger (:data:`YOUNG`). With CPython's default of 700
allocations, a check's objects (a LIST's parsed answer, the requests' futures) were often
still alive at a young collection, so they were promoted and counted towards the next full
collection: at 1,000 learners one ran every 12 s. Collected every :data:`YOUNG` allocations
instead, most of them are already gone; a young collection of that many objects takes a few
milliseconds.
"""

from __future__ import annotations

import gc

YOUNG = 20_000  # allocations between young collections (CPython's default: 700)


def freeze_startup() -> int:
    """Collect once, then exclude everything alive now from future collections, and collect
    the young generation less often.

    Call once, after start-up objects exist and before the per-learner ones pile up; returns
    how many objects were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
    return gc.get_freeze_count()
