"""When a crew moves on: together, by quorum, or each at their own pace."""

from __future__ import annotations

import math
from collections.abc import Collection

from bot.core.values import PACINGS as PACINGS
from bot.core.values import Pacing


def gate_open(
    pacing: Pacing, active: Collection[str], done: Collection[str], quorum: float
) -> bool:
    """Whether the story may move past a gate.

    ``active`` are members counted now (idle members drop out); ``done`` have passed the
    gate. With nobody active, anyone who has passed opens it (the last one awake carries on).
    Self-paced missions have one member each, so they behave like *together*.
    """
    done_active = set(done) & set(active)
    if not active:
        return bool(done)
    if pacing == "quorum":
        return len(done_active) >= max(1, math.ceil(quorum * len(active)))
    return len(done_active) == len(set(active))
