"""The last line of defence on everything the crew says: no pings, no credentials.

Generated text goes to a Discord channel. It must never ping (``@everyone``, ``@here``, role
and user mentions are broken with a zero-width space) and never carry anything that looks like
a credential (kubeconfig fields, bearer tokens, private keys, JWTs, API keys, passwords in
URLs) or a terminal control sequence, whatever the model was talked into (the patterns live in
:mod:`bot.core.text`, shared with the engine and the cluster tools). :class:`SafeStream` applies the same rules to a stream of chunks
without letting a pattern slip through split across two chunks.
"""

from __future__ import annotations

import re

from bot.core.text import REDACTED as REDACTED
from bot.core.text import SECRET_KEYS as _SECRET_KEYS
from bot.core.text import redact_secrets as redact_secrets
from bot.core.text import strip_controls

ZWSP = "\u200b"

_MENTIONS = (
    (re.compile(r"@(everyone|here)\b", re.IGNORECASE), "@" + ZWSP + r"\1"),
    (re.compile(r"<@([!&]?)(\d+)>"), "<@" + ZWSP + r"\1\2>"),
    (re.compile(r"<#(\d+)>"), "<#" + ZWSP + r"\1>"),
)

# Words that may be followed by a credential after whitespace: never split these from what follows.
_LABEL_TAIL = re.compile(
    rf"""(?:\b(?:Bearer|Basic)|["']?[\w.-]*(?:{_SECRET_KEYS})[\w.-]*["']?\s*[:=])\s*$""",
    re.IGNORECASE,
)


def neutralise_mentions(text: str) -> str:
    for pattern, repl in _MENTIONS:
        text = pattern.sub(repl, text)
    return text


def clean(text: str) -> str:
    """Everything the crew says passes through here before a learner sees it."""
    return neutralise_mentions(redact_secrets(strip_controls(text)))


class SafeStream:
    """Cleans streamed text in segments that end at whitespace.

    The unfinished last word is held back, and so is a credential label ("Bearer",
    "token:") waiting for its value, or an open PEM block; :meth:`flush` releases the rest.
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str) -> str:
        self._pending += chunk
        cut = max(self._pending.rfind(" "), self._pending.rfind("\n"), self._pending.rfind("\t"))
        if cut < 0:
            return ""
        head = self._pending[: cut + 1]
        if (begin := head.rfind("-----BEGIN")) >= 0 and "-----END" not in head[begin:]:
            head = head[:begin]
        elif m := _LABEL_TAIL.search(head):
            head = head[: m.start()]
        self._pending = self._pending[len(head) :]
        return clean(head)

    def flush(self) -> str:
        out, self._pending = clean(self._pending), ""
        return out
