"""Text from outside (the model, a cluster, a learner) made safe to print, store and send.

Two jobs, used at every edge:

* :func:`strip_controls` removes terminal control sequences before anything is printed: ANSI
  CSI (colours, cursor moves, screen clears), OSC (window titles, hyperlinks, clipboard
  writes via OSC 52), DCS/SOS/PM/APC strings, two-byte escapes, 8-bit C1 controls, C0
  controls other than newline and tab, and the bidirectional overrides that reorder what a
  reader sees. A pod log or a model reply cannot move the cursor, retitle the window or
  write to the clipboard.
* :func:`redact_secrets` replaces credentials in the common formats (PEM blocks, JWTs,
  bearer/basic tokens, kubeconfig ``*-data`` fields, cloud and API keys, passwords inside
  URLs, values of secret-looking keys) with ``[redacted]`` before text is stored or sent to
  the model, and before the crew's words reach a channel.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# --- terminal control sequences -----------------------------------------------------------

_ST = r"(?:\x1b\\|\x07|\x9c)"  # string terminator: ESC \, BEL or 8-bit ST
_CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI … final byte
    rf"|\x1b\][^\x07\x1b\x9c]*{_ST}?"  # OSC … ST (or cut off)
    rf"|\x1b[PX^_][^\x07\x1b\x9c]*{_ST}?"  # DCS, SOS, PM, APC … ST
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    rf"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*{_ST}?"  # 8-bit DCS/SOS/OSC/PM/APC
    r"|\x1b[ -/]*[0-~]?"  # other escapes (charset, keypad, RIS …) and a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]"  # remaining C0 (not \t \n) and C1 controls
    r"|[\u202a-\u202e\u2066-\u2069]"  # bidirectional embeddings, overrides and isolates
)


def strip_controls(text: str) -> str:
    """``text`` without terminal control sequences; ``\\r\\n`` becomes ``\\n``."""
    return _CONTROLS.sub("", text.replace("\r\n", "\n"))


def scrub(value: Any) -> Any:
    """:func:`strip_controls` on every string inside ``value`` (dicts, lists, tuples)."""
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v) for v in value)
    return value


# --- credentials ----------------------------------------------------------------------------

# A key whose value is a credential, in YAML/JSON/env/URL-query shape: "token: abc",
# "\"DB_PASSWORD\": \"abc\"", "AccountKey=abc". The name may carry a prefix or suffix.
SECRET_KEYS = (
    r"client-key-data|client-certificate-data|certificate-authority-data|"
    r"id-token|refresh-token|access-token|auth-provider|token(?!s\b)|password|passwd|pwd|"
    r"api[_-]?key|secret[_-]?key|private[_-]?key|x-api-key|authorization|"
    r"client[_-]?secret|secret[_-]?access[_-]?key|account[_-]?key|sharedaccesskey|"
    r"credentials?"
)
_KEY_VALUE = re.compile(
    rf"""(?P<key>["']?[\w.-]*(?:{SECRET_KEYS})[\w.-]*["']?\s*[:=]\s*)"""
    r"""(?P<value>["']?[^\s"',;&}]{4,}["']?)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*(?:PRIVATE KEY|CERTIFICATE)-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)",
    re.DOTALL,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_KEYS = re.compile(
    r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}"  # Anthropic, OpenAI
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API keys
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"  # GitHub tokens
    r"|\bglpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
)
# Discord bot tokens (base64 user id . timestamp . HMAC) and the tokens that webhook and
# interaction URLs carry in their path.
_DISCORD_TOKEN = re.compile(r"\b[A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,}")
_URL_PATH_TOKEN = re.compile(r"(?P<head>/(?:webhooks|interactions)/\d+/)[A-Za-z0-9._-]{16,}", re.I)
# Long base64 runs (kubeconfig *-data values pasted without their key).
_BASE64_BLOB = re.compile(r"\b(?:LS0tLS1C|MII)[A-Za-z0-9+/=]{40,}")
# scheme://user:password@host — keep the user and host, drop the password.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?=@)", re.I)


def redact_secrets(text: str) -> str:
    text = _PEM.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _DISCORD_TOKEN.sub(REDACTED, text)
    text = _URL_PATH_TOKEN.sub(lambda m: m.group("head") + REDACTED, text)
    text = _KEYS.sub(REDACTED, text)
    text = _BASE64_BLOB.sub(REDACTED, text)
    return _KEY_VALUE.sub(
        lambda m: m.group(0) if REDACTED in m.group("value") else m.group("key") + REDACTED,
        text,
    )


def from_outside(text: str) -> str:
    """Text that came from outside, ready to keep or pass on: no controls, no credentials."""
    return redact_secrets(strip_controls(text))
