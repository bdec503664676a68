"""Logging: one event per line, JSON when not on a terminal, readable when on one; never a secret.

Every record passes :class:`RedactFilter`, which masks anything shaped like a credential —
``Authorization`` headers, bearer tokens, kubeconfig keys, tokens and certificate data (as
YAML, JSON, env or a Python repr), Discord bot tokens, webhook and interaction URLs, Anthropic
keys, PEM private keys, JWTs — in the message, its arguments, extra fields and the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

_KEYS = (
    r"[\w-]*(?:key-data|certificate-data|token|password|passwd|api[_-]?key|secret|"
    r"secret[_-]?key|private[_-]?key|kubeconfig[_-]?data)"
)

_PATTERNS = [
    # Authorization headers: the whole value, whatever the scheme (Bearer, Basic, Bot, …)
    re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]{4,}"),
    re.compile(r"(?i)(\b(?:bearer|bot)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # key: value, key=value, "key": "value", 'key': 'value' (kubeconfig YAML, env, dict reprs)
    re.compile(rf"(?i)((?:{_KEYS})[\"']?\s*[:=]\s*[\"']?)[^\s\"',}}\]]{{6,}}"),
    re.compile(r"sk-ant-[A-Za-z0-9_-]{10,}"),
    # Discord bot tokens: base64 user id . timestamp . HMAC
    re.compile(r"\b[A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,}"),
    # webhook and interaction URLs carry their token in the path
    re.compile(r"(?i)(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9._-]{16,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    re.compile(
        r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    ),  # JWT (service account)
    # base64 of a PEM block or of a kubeconfig, wherever it shows up without its key
    re.compile(r"\b(?:LS0tLS1C|YXBpVmVyc2lvbj)[A-Za-z0-9+/=]{16,}"),
]


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = (
                    value
                    if isinstance(value, int | float | bool | type(None))
                    else redact(str(value))
                )
        if record.exc_text:
            event["error"] = record.exc_text
        return json.dumps(event, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            text += " " + " ".join(f"{k}={redact(str(v))}" for k, v in extras.items())
        return text.replace("\n", "\\n") if record.exc_text is None else text


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Configure the root logger once: level, format (json | text | auto) and redaction."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("discord.gateway", "urllib3", "httpx", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
