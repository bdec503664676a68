"""One webhook per guild channel, through which every character speaks with their own face.

Created once and remembered in the store (id, and the token sealed with ``KEPLER_SECRET_KEY``
when one is configured; otherwise the token stays in memory and is re-read with
``channel.webhooks()`` after a restart). A webhook of ours already in the channel is reused,
a channel at Discord's limit of 15 webhooks gets none (the caller falls back to embeds), and
a webhook Discord no longer knows (Unknown Webhook, 10015) is forgotten so the next call
makes a new one.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import discord

from bot.transports.discord.secrets import SecretBox

log = logging.getLogger(__name__)

WEBHOOK_NAME = "Kepler Station"
MAX_WEBHOOKS = 15  # per channel (Discord)
UNKNOWN_WEBHOOK = 10015
SCOPE = "discord:webhook"


class NoWebhook(Exception):
    """No webhook for this channel; ``reason`` is "permission" or "full"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WebhookPool:
    def __init__(self, client: discord.Client, store: Any, secrets: SecretBox):
        self.client = client
        self.store = store
        self.secrets = secrets
        self._cache: dict[int, discord.Webhook] = {}

    async def get(self, channel: Any) -> discord.Webhook:
        """The channel's webhook (a text or forum channel, not a thread); raises NoWebhook."""
        cached = self._cache.get(channel.id)
        if cached is not None:
            return cached
        stored = await self.store.get_setting(SCOPE, str(channel.id))
        if stored:
            data = json.loads(stored)
            token = self.secrets.open(data.get("token"))
            if token:
                hook = discord.Webhook.partial(int(data["id"]), token, client=self.client)
                self._cache[channel.id] = hook
                return hook
        me = channel.guild.me
        if not channel.permissions_for(me).manage_webhooks:
            raise NoWebhook("permission")
        try:
            hooks = await channel.webhooks()
        except discord.Forbidden:
            raise NoWebhook("permission") from None
        mine = [h for h in hooks if h.token and h.user is not None and h.user.id == me.id]
        if mine:
            hook = mine[0]
        elif len(hooks) >= MAX_WEBHOOKS:
            raise NoWebhook("full")
        else:
            try:
                hook = await channel.create_webhook(name=WEBHOOK_NAME, reason="Kepler Station crew")
            except discord.Forbidden:
                raise NoWebhook("permission") from None
            except discord.HTTPException as exc:  # 30007: maximum number of webhooks reached
                if exc.code == 30007:
                    raise NoWebhook("full") from None
                raise
        record: dict[str, Any] = {"id": str(hook.id)}
        sealed = self.secrets.seal(hook.token) if hook.token else None
        if sealed:
            record["token"] = sealed
        await self.store.set_setting(SCOPE, str(channel.id), json.dumps(record))
        self._cache[channel.id] = hook
        return hook

    async def forget(self, channel_id: int) -> None:
        """Discord said Unknown Webhook: drop it so the next ``get`` creates a new one."""
        self._cache.pop(channel_id, None)
        await self.store.set_setting(SCOPE, str(channel_id), None)


def is_unknown_webhook(exc: BaseException) -> bool:
    return isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_WEBHOOK
