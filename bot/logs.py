"""Logging: one event per line, JSON when not on a terminal, readable when on one; never a secret.

Every record passes :class:`RedactFilter`, which masks anything shaped like a credential in
the message, its arguments, extra fields and the traceback. The patterns are the project's one
redactor, :func:`bot.core.text.redact_secrets` (also used on learner text and tool results), so
a format learned in one place is redacted everywhere.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from bot.core.text import redact_secrets


def redact(text: str) -> str:
    """The one redactor (:func:`bot.core.text.redact_secrets`), applied to a log line."""
    return redact_secrets(text)


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
