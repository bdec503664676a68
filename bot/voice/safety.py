"""The last line of defence on everything the crew says: no pings, no credentials.

Generated text goes to a Discord channel. It must never ping (``@everyone``, ``@here``, role
and user mentions are broken with a zero-width space) and never carry anything that looks like
a credential (kubeconfig fields, bearer tokens, private keys, JWTs, API keys), whatever the
model was talked into. :class:`SafeStream` applies the same rules to a stream of chunks
without letting a pattern slip through split across two chunks.
"""

from __future__ import annotations

import re

ZWSP = "\u200b"
REDACTED = "[redacted]"

_MENTIONS = (
    (re.compile(r"@(everyone|here)\b", re.IGNORECASE), "@" + ZWSP + r"\1"),
    (re.compile(r"<@([!&]?)(\d+)>"), "<@" + ZWSP + r"\1\2>"),
    (re.compile(r"<#(\d+)>"), "<#" + ZWSP + r"\1>"),
)

# A key whose value is a credential, in YAML/JSON/env shape: "token: abc", "\"token\": \"abc\"".
_SECRET_KEYS = (
    r"client-key-data|client-certificate-data|certificate-authority-data|"
    r"token|id-token|refresh-token|access-token|auth-provider|password|passwd|"
    r"api[_-]?key|secret[_-]?key|private[_-]?key|x-api-key|authorization"
)
_KEY_VALUE = re.compile(
    rf"""(?P<key>["']?\b(?:{_SECRET_KEYS})["']?\s*[:=]\s*)(?P<value>["']?[^\s"',}}]{{4,}}["']?)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*(?:PRIVATE KEY|CERTIFICATE)-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)",
    re.DOTALL,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_API_KEY = re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}")
# Long base64 runs (kubeconfig *-data values pasted without their key).
_BASE64_BLOB = re.compile(r"\b(?:LS0tLS1C|MII)[A-Za-z0-9+/=]{40,}")

# Words that may be followed by a credential after whitespace: never split these from what follows.
_LABEL_TAIL = re.compile(
    rf"""(?:\b(?:Bearer|Basic)|["']?\b(?:{_SECRET_KEYS})["']?\s*[:=])\s*$""", re.IGNORECASE
)


def neutralise_mentions(text: str) -> str:
    for pattern, repl in _MENTIONS:
        text = pattern.sub(repl, text)
    return text


def redact_secrets(text: str) -> str:
    text = _PEM.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _API_KEY.sub(REDACTED, text)
    text = _BASE64_BLOB.sub(REDACTED, text)
    return _KEY_VALUE.sub(lambda m: m.group("key") + REDACTED, text)


def clean(text: str) -> str:
    """Everything the crew says passes through here before a learner sees it."""
    return neutralise_mentions(redact_secrets(text))


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
