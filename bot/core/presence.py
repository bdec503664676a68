"""Who has a browser terminal connected: a one-way feed from the web server to transports.

The browser terminal (``bot.web``) is the source; a transport that shows it (the Discord crew
board) reads and listens. Neither imports the other: the composition plugs a
:class:`TerminalPresence` into the transport. The engine is not involved.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

PresenceListener = Callable[[str], None]
"""Called with a learner id when their terminal connects or disconnects. It runs inside the web
server's handler, so it must only take note and return (no I/O, no awaiting)."""


class TerminalPresence(Protocol):
    def connected(self) -> Collection[str]:
        """The learners with a terminal connected now."""
        ...

    def watch(self, listener: PresenceListener) -> Callable[[], None]:
        """Call ``listener`` on every change from now on; returns the way to stop."""
        ...
