"""What the crew tells a learner about their sandbox's host, in the story's voice.

The lifecycle sends these through its ``notify`` hook (a direct message on Discord), the same
way as TTL warnings. Marcus Webb reports failures as they happen (personas/webb.yaml); he
says what broke and that the learner's work is safe, never how to fix it.
"""

from __future__ import annotations

HOST_DOWN = (
    "**Marcus Webb:** Webb here — I've lost the link to the ring where your station cluster "
    "runs. Every board in that section went dark at once, so it's not something you did. "
    "Your work is still there; I'll call you the moment the link is back."
)
HOST_BACK = (
    "**Marcus Webb:** Link restored — your section of the station is answering again. "
    "Pick up where you left off."
)
