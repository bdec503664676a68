"""Which message holds a mission's live buttons: the current moment of the story.

When the transport posts a message with buttons it records here the beat (``ref``), the
nonce in the buttons' ids and where the message is. A click is for the current moment only
when its beat is the mission's beat *and* its nonce is the recorded one; anything else is a
moment that has passed. The record also lets the transport disable the previous moment's
buttons (an edit of that message) and lets a stale click link back to the current one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCOPE = "discord:moment"  # mission id -> Moment (JSON)


@dataclass(frozen=True)
class Moment:
    ref: str  # "<chapter>.<beat>"
    nonce: str
    channel: int  # where the message shows (a thread's id for a thread)
    message: int
    guild: int | None = None
    webhook: int | None = None  # the webhook that sent it, if one did
    parent: int | None = None  # the webhook's channel (a thread's parent)
    actions: list[str] = field(default_factory=list)
    choices: list[dict[str, str]] = field(default_factory=list)

    @property
    def link(self) -> str:
        where = self.guild if self.guild is not None else "@me"
        return f"https://discord.com/channels/{where}/{self.channel}/{self.message}"


class Moments:
    def __init__(self, store: Any):
        self.store = store

    async def current(self, mission_id: int) -> Moment | None:
        raw = await self.store.get_setting(SCOPE, str(mission_id))
        if not raw:
            return None
        return Moment(**json.loads(raw))

    async def replace(self, mission_id: int, moment: Moment) -> Moment | None:
        """Record ``moment`` as current; return the one it replaces."""
        previous = await self.current(mission_id)
        await self.store.set_setting(SCOPE, str(mission_id), json.dumps(asdict(moment)))
        return previous
