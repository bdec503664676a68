"""The crew board's text: one line per member, their marks for the open task, and whether their
terminal is connected.

Who is connected is the transport's knowledge (the browser terminal lives in ``bot.web``): the
engine builds the board without it, and a transport that knows re-renders the same rows with
``connected``. The engine thereby stays free of web and Discord imports.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

CONNECTED = "🖥️ terminal connected"


def board_line(row: Mapping[str, Any], connected: bool = False) -> str:
    """``**Name** ✅⬜ Task`` and, when their terminal is open, that it is connected."""
    marks = "".join("✅" if o["passed"] else "⬜" for o in row.get("objectives", []))
    line = f"**{row['name']}** {marks} {row.get('task', '')}".rstrip()
    return f"{line} · {CONNECTED}" if connected else line


def board_text(rows: Sequence[Mapping[str, Any]], connected: Collection[str] = ()) -> str:
    """The board for ``rows`` (``Engine._board``'s ``data["members"]``); ``connected`` holds the
    learner ids whose terminal is open now (empty when the transport has no terminals)."""
    lines = [board_line(row, row.get("learner") in connected) for row in rows]
    return "\n".join(lines) or "No crew yet."
