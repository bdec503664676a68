"""``kepler serve [--sync-commands]``: run the Discord bot.

Slash commands are synced with Discord deliberately: with ``--sync-commands``, or on start
when the command tree's hash differs from the one stored at the last sync (Discord allows 200
command creations per day per server). With ``DISCORD_GUILD_ID`` they go to that server only,
where updates show at once; otherwise they are global.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import sys
from typing import Any

import discord

from bot.config import Settings
from bot.content.loader import ContentError
from bot.logs import setup_logging

log = logging.getLogger(__name__)

SYNC_SCOPE = "discord"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the Discord bot")
    p.add_argument(
        "--sync-commands",
        action="store_true",
        help="sync slash commands with Discord now (otherwise only when they changed)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.discord_token:
        print(
            "DISCORD_TOKEN is not set. Create a bot at https://discord.com/developers/applications "
            "and export its token (see docs/discord.md).",
            file=sys.stderr,
        )
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(serve(settings, sync=args.sync_commands))
    except discord.LoginFailure:
        print("Discord rejected DISCORD_TOKEN (login failed).", file=sys.stderr)
        return 2
    except ContentError as exc:  # a broken chapter or persona: file:line, not a traceback
        print(exc, file=sys.stderr)
        return 1


def tree_hash(tree: discord.app_commands.CommandTree, guild: discord.abc.Snowflake | None) -> str:
    """A stable hash of the commands as Discord would receive them."""
    payload = [c.to_dict(tree) for c in tree.get_commands(guild=guild)]
    raw = json.dumps(sorted(payload, key=lambda c: c["name"]), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


async def sync_commands(bot: Any, store: Any, guild_id: str, *, force: bool) -> bool:
    """Sync when forced or changed since the last sync; True if synced."""
    guild = discord.Object(int(guild_id)) if guild_id else None
    if guild is not None:
        bot.tree.copy_global_to(guild=guild)
    key = f"commands:{guild_id or 'global'}"
    digest = tree_hash(bot.tree, guild)
    if not force and await store.get_setting(SYNC_SCOPE, key) == digest:
        log.info("slash commands unchanged; not syncing")
        return False
    synced = await bot.tree.sync(guild=guild)
    await store.set_setting(SYNC_SCOPE, key, digest)
    log.info("slash commands synced", extra={"count": len(synced), "guild": guild_id or "global"})
    return True


async def serve(settings: Settings, *, sync: bool = False) -> int:
    from bot.ops.heap import freeze_startup
    from bot.ops.open_files import learners_within, raise_open_files
    from bot.transports.discord.app import build

    before, limit = raise_open_files()
    carried = learners_within(limit)
    log.log(
        logging.INFO if carried >= 1000 else logging.WARNING,
        "open-file limit %d (was %d): room for about %d active learners' watches%s",
        limit,
        before,
        carried,
        "" if carried >= 1000 else "; raise the hard limit (docs/operating.md, section 3)",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        app = await build(settings, stack)
        frozen = freeze_startup()
        log.info("start-up objects frozen", extra={"objects": frozen})
        setup = app.setup

        async def setup_and_sync() -> None:
            await setup()
            await sync_commands(app.bot, app.store, settings.discord_guild_id, force=sync)

        app.bot.on_setup = setup_and_sync
        runner = asyncio.create_task(app.bot.start(settings.discord_token))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        await app.close()
        stopper.cancel()
        if runner in done:
            runner.result()  # re-raise a login failure
        else:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(runner, 10)
    return 0
