"""One webhook per guild channel, through which every character speaks with their own face.

Created once and remembered in the store (id, and the token sealed with ``KEPLER_SECRET_KEY``
when one is configured; otherwise the token stays in memory and is re-read with
``channel.webhooks()`` after a restart). A webhook of ours already in the channel is reused,
a channel at Discord's limit of 15 webhooks gets none (the caller falls back to embeds), and
a webhook Discord no longer knows (Unknown Webhook, 10015) is forgotten so the next call
makes a new one.

A channel that cannot have a webhook (no Manage Webhooks, a 403, or 15 webhooks already) is
remembered as such (in memory: after a restart each such channel is looked at once), and
looked at again only when a permission
may have changed (:meth:`WebhookPool.recheck`, called on guild, channel and role updates) or
after :data:`RECHECK_AFTER`. Without that memory every message would first ask Discord for
the channel's webhooks, and each 403 counts toward Discord's invalid-request limit (10,000
per 10 minutes, then a temporary ban of the bot's IP).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import discord

from bot.transports.discord.secrets import SecretBox

log = logging.getLogger(__name__)

WEBHOOK_NAME = "Kepler Station"
MAX_WEBHOOKS = 15  # per channel (Discord)
UNKNOWN_WEBHOOK = 10015
SCOPE = "discord:webhook"
RECHECK_AFTER = 6 * 3600.0  # seconds: a channel without a webhook is looked at again this rarely


class NoWebhook(Exception):
    """No webhook for this channel; ``reason`` is "permission" or "full"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WebhookPool:
    def __init__(
        self,
        client: discord.Client,
        store: Any,
        secrets: SecretBox,
        *,
        clock: Callable[[], float] = time.time,
        recheck_after: float = RECHECK_AFTER,
    ):
        self.client = client
        self.store = store
        self.secrets = secrets
        self.clock = clock
        self.recheck_after = recheck_after
        self._cache: dict[int, discord.Webhook] = {}
        self._missing: dict[int, tuple[str, float]] = {}  # channel id -> (reason, when)
        self.lookups = 0  # webhook look-ups made (GET/POST to Discord), for tests and metrics

    async def get(self, channel: Any) -> discord.Webhook:
        """The channel's webhook (a text or forum channel, not a thread); raises NoWebhook."""
        cached = self._cache.get(channel.id)
        if cached is not None:
            return cached
        missing = self._known_missing(channel.id)
        if missing is not None:
            raise NoWebhook(missing)
        try:
            return await self._find(channel)
        except NoWebhook as exc:
            self._missing[channel.id] = (exc.reason, self.clock())
            raise

    def cached(self, channel_id: int) -> discord.Webhook | None:
        return self._cache.get(channel_id)

    def recheck(self, channel_ids: list[int] | None = None) -> None:
        """Permissions may have changed (a guild, channel or role update): look again."""
        for channel_id in list(self._missing) if channel_ids is None else channel_ids:
            self._missing.pop(channel_id, None)

    def _known_missing(self, channel_id: int) -> str | None:
        known = self._missing.get(channel_id)
        if known is None:
            return None
        if self.clock() - known[1] >= self.recheck_after:
            del self._missing[channel_id]
            return None
        return known[0]

    async def _find(self, channel: Any) -> discord.Webhook:
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
        self.lookups += 1
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
            self.lookups += 1
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
