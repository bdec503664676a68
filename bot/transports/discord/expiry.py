"""Interaction tokens that expired before the bot answered: an expected failure, one line.

Discord answers 404 with code 10062 (Unknown interaction) when the 3-second window for the
first response has passed, and 10015 (Unknown Webhook) when a follow-up comes after the
token's 15 minutes. Neither is a bug in the bot, so each is one WARNING line with the
interaction's context, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

UNKNOWN_INTERACTION = 10062
UNKNOWN_WEBHOOK = 10015

log = logging.getLogger(__name__)


def expired_token(exc: BaseException) -> bool:
    """True for Discord's answers to a response or follow-up on an expired token."""
    while exc is not None and not isinstance(exc, discord.HTTPException):
        exc = exc.__cause__ or getattr(exc, "original", None)  # type: ignore[assignment]
    return isinstance(exc, discord.NotFound) and exc.code in (UNKNOWN_INTERACTION, UNKNOWN_WEBHOOK)


def log_expired(interaction: Any, exc: BaseException) -> None:
    """The one line: what was clicked or run, by whom, where, and how late."""
    data = getattr(interaction, "data", None) or {}
    what = data.get("custom_id") or data.get("name") or "?"
    created = getattr(interaction, "created_at", None)
    age = (discord.utils.utcnow() - created).total_seconds() if created is not None else -1.0
    code = getattr(exc, "code", None) or getattr(getattr(exc, "__cause__", None), "code", None)
    log.warning(
        "interaction token expired before the answer (%s after %.1fs): %s",
        code,
        age,
        what,
        extra={
            "interaction": getattr(interaction, "id", None),
            "user": getattr(getattr(interaction, "user", None), "id", None),
            "channel": getattr(interaction, "channel_id", None),
        },
    )
