"""What a learner's action does on Discord: acknowledge, hand to the engine, show the answer.

Shared by slash commands, buttons, the answer modal and DMs, so each rule lives once:
every interaction is acknowledged before slow work (``defer`` first: provisioning, cluster
checks, the voice), the engine's replies are shown ephemerally, and a kubeconfig only ever
goes to an ephemeral reply. Logic about the story stays in the engine.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import discord

from bot.content.course import BeatRef, Course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.beats import task_key
from bot.engine.engine import Engine, InputError
from bot.engine.feedback import CheckLine, check_text
from bot.engine.ports import Address, Outgoing
from bot.store.records import Mission
from bot.transports.discord.expiry import expired_token, log_expired
from bot.transports.discord.moments import Moments
from bot.transports.discord.render import NO_MENTIONS, plain_embed, render
from bot.transports.discord.transport import GUILD, learner_id_of, user_id_of
from bot.transports.discord.views import (
    TERMINAL_ID,
    AnswerForm,
    ComponentId,
    form_text,
    parse,
    terminal_button_view,
    terminal_link_view,
)

log = logging.getLogger(__name__)

THREADS = "discord:threads:{}"  # hub mission id -> {learner: thread id}
PROGRESS_STEPS = {"queued": "⏳", "namespace": "🧱", "control-plane": "🛰️", "api": "🔌",
                  "ready": "✅", "failed": "❌", "waiting": "🕒"}  # fmt: skip
OOPS = "Something went wrong aboard the station. Try again in a moment."
NOT_READY = "Your station cluster is not ready yet. Start or join a mission and wait for the ✅."

Spawn = Callable[[Coroutine[Any, Any, Any]], Any]


def address_of(channel: Any) -> Address:
    if isinstance(channel, discord.DMChannel):
        return Address("discord", "solo", str(channel.id))
    if isinstance(channel, discord.Thread):
        return Address("discord", "thread", str(channel.id))
    return Address("discord", "channel", str(channel.id))


class Progress:
    """One message edited in place: an ephemeral follow-up, or a message in a DM channel."""

    def __init__(self, interaction: discord.Interaction | None = None, channel: Any = None):
        self.interaction = interaction
        self.channel = channel
        self.message: Any = None

    async def update(self, text: str, view: discord.ui.View | None = None) -> None:
        embed = plain_embed(text, title="Your station cluster")
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        if self.message is not None:
            try:
                await self.message.edit(embed=embed, **extra)
                return
            except discord.HTTPException:
                pass  # e.g. the interaction token expired after 15 minutes: post anew
        if self.interaction is not None and self.message is None:
            self.message = await self.interaction.followup.send(
                embed=embed, ephemeral=True, wait=True, allowed_mentions=NO_MENTIONS, **extra
            )
        elif self.channel is not None:
            self.message = await self.channel.send(embed=embed, allowed_mentions=NO_MENTIONS,
                                                   **extra)  # fmt: skip


class Actions:
    def __init__(
        self,
        engine: Engine,
        store: Any,
        course: Course,
        *,
        manager: Any = None,
        backend: Any = None,
        spawn: Spawn | None = None,
        public_url: str = "",
        terminal: Any = None,
    ):
        self.public_url = public_url
        self.engine = engine
        self.store = store
        self.course = course
        self.manager = manager
        self.backend = backend
        self.web_terminal = terminal  # bot.web.server.TerminalWeb: the browser terminal, or None
        self.spawn: Spawn = spawn or asyncio.ensure_future
        self.moments = Moments(store)

    # --- missions -----------------------------------------------------------------------

    async def start(
        self, interaction: discord.Interaction, pace: str = "together", chapter: str | None = None
    ) -> None:
        channel = interaction.channel
        private = interaction.guild is not None
        await interaction.response.defer(ephemeral=private, thinking=True)

        async def work() -> list[Outgoing]:
            user = interaction.user
            learner, name = learner_id_of(user), user.display_name
            if isinstance(channel, discord.Thread):
                raise InputError(
                    "Start a mission in a channel or in a DM with me, not in a thread."
                )
            guild = str(interaction.guild.id) if interaction.guild else None
            if guild is None:
                await self.engine.start(address_of(channel), learner, name, chapter=chapter)
                text = "Your mission is open below. I am preparing your station cluster."
            elif pace == "self-paced":
                hub = await self.engine.start(
                    address_of(channel), learner, name, guild=guild, pacing="self-paced"
                )
                if hub.state != "hub":
                    raise InputError("This channel already runs a crew mission; use /mission join.")
                thread = await self._thread_for(hub, channel, user, chapter)
                text = f"Your own thread: <#{thread.id}>. The crew board stays here."
            else:
                mission = await self.engine.start(
                    address_of(channel),
                    learner,
                    name,
                    guild=guild,
                    pacing=pace,  # type: ignore[arg-type]
                    chapter=chapter,
                )
                text = f"Mission running here ({mission.pacing}). Others join with /mission join."
            self.spawn(self.provision(learner, guild, Progress(interaction)))
            return [Outgoing(kind="notice", text=text)]

        await self._run(interaction, work)

    async def join(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            user = interaction.user
            learner = learner_id_of(user)
            mission = await self._mission_at(interaction.channel)
            guild = str(interaction.guild.id) if interaction.guild else None
            if mission.state == "hub":
                thread = await self._thread_for(mission, interaction.channel, user, None)
                text = f"Your own thread: <#{thread.id}>."
            else:
                await self.engine.join(mission.id, learner, user.display_name)
                text = "You are on the crew. Your station cluster is being prepared."
            self.spawn(self.provision(learner, guild, Progress(interaction)))
            return [Outgoing(kind="notice", text=text)]

        await self._run(interaction, work)

    async def leave(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._mission_for(interaction)
            await self.engine.leave(mission.id, learner_id_of(interaction.user))
            return [
                Outgoing(kind="notice", text="You left the crew. /mission join brings you back.")
            ]

        await self._run(interaction, work)

    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._mission_for(interaction)
            out = await self.engine.status(mission.id, learner_id_of(interaction.user))
            return out + await self._terminals_open(mission.id)

        await self._run(interaction, work)

    async def pace(
        self, interaction: discord.Interaction, pace: str, quorum: float | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._mission_for(interaction)
            await self.engine.set_pacing(mission.id, pace, quorum)  # type: ignore[arg-type]
            return [Outgoing(kind="notice", text=f"The crew now moves on: {pace}.")]

        await self._run(interaction, work)

    async def check(self, interaction: discord.Interaction, mission_id: int | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._member_mission(interaction, mission_id)
            learner = learner_id_of(interaction.user)
            replies = await self.engine.check(mission.id, learner)
            if replies or mission.state != "running":
                return replies
            # The check passed and the story moved on: the reply is still the result.
            beat = self.course.beat_at(mission.chapter, mission.beat)
            if not isinstance(beat, TaskBeat):
                return replies
            key = task_key(self.course, BeatRef(mission.chapter, mission.beat))
            status = await self.store.objectives(learner, key)
            lines = [CheckLine(o.id, o.title, True, "✅") for o in beat.objectives if o.id in status]
            if not lines:
                return []
            return [Outgoing(kind="status", text=check_text(lines), speaker="aria",
                             data={"lines": [line.to_json() for line in lines], "footer": "",
                                   "passed": True})]  # fmt: skip

        await self._run(interaction, work)

    async def hint(self, interaction: discord.Interaction, mission_id: int | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._member_mission(interaction, mission_id)
            return await self.engine.hint(mission.id, learner_id_of(interaction.user))

        await self._run(interaction, work)

    async def catch_up(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._member_mission(interaction, None)
            return await self.engine.catch_up(mission.id, learner_id_of(interaction.user))

        await self._run(interaction, work)

    async def profile(
        self, interaction: discord.Interaction, field: str | None, value: str | None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            learner = learner_id_of(interaction.user)
            await self.store.ensure_learner(learner, interaction.user.display_name)
            profile = await self.engine.profile(learner, field, value)
            text = "\n".join(f"**{k}**: {v}" for k, v in profile.items()) or "(nothing yet)"
            return [Outgoing(kind="notice", text=text)]

        await self._run(interaction, work)

    # --- buttons, choices, free text ----------------------------------------------------

    async def click(self, interaction: discord.Interaction, custom_id: str) -> None:
        """A button of ours, from any message ever sent: act only if its moment is now."""
        try:
            if custom_id == TERMINAL_ID:  # under "your cluster is ready": not a story moment
                await self.terminal(interaction)
                return
            cid = parse(custom_id)
            if cid is None or cid.action == "form":
                await self.unknown(interaction)
                return
            if (passed := await self._passed(cid)) is not None:
                await self._notice_now(interaction, passed)
                return
            if cid.action == "answer":
                await interaction.response.send_modal(AnswerForm(cid.form_for(interaction.user.id)))
            elif cid.action in ("check", "hint"):
                await (self.check if cid.action == "check" else self.hint)(
                    interaction, cid.mission_id
                )
            elif cid.action == "manifest":
                await self._manifest(interaction, cid.mission_id)
            else:
                await self._step(interaction, cid)
        except Exception as exc:
            if not expired_token(exc):
                raise
            log_expired(interaction, exc)

    async def form(self, interaction: discord.Interaction) -> None:
        """A submitted answer form, whenever it was opened (before a restart too)."""
        data: dict[str, Any] = interaction.data or {}  # type: ignore[assignment]
        try:
            cid = parse(str(data.get("custom_id", "")))
            if cid is None or cid.action != "form" or cid.user_id != interaction.user.id:
                await self.unknown(interaction)
                return
            if (passed := await self._passed(cid)) is not None:
                await self._notice_now(interaction, passed)
                return
            await self._step(interaction, cid, form_text(data))
        except Exception as exc:
            if not expired_token(exc):
                raise
            log_expired(interaction, exc)

    async def unknown(self, interaction: discord.Interaction) -> None:
        """A component or form we do not know: say so, never "This interaction failed"."""
        try:
            await interaction.response.send_message(
                "That button is not one I know. /mission status shows where the story is.",
                ephemeral=True, allowed_mentions=NO_MENTIONS,
            )  # fmt: skip
        except Exception as exc:
            if not expired_token(exc):
                raise
            log_expired(interaction, exc)

    async def _passed(self, cid: ComponentId) -> str | None:
        """None when ``cid`` belongs to the mission's current moment; else what to say."""
        if cid.action == "legacy":
            return "That moment has passed."
        mission = await self.store.get_mission(cid.mission_id)
        if mission is None or mission.state == "closed":
            return "That mission has ended. Start a new one with /mission start."
        if not cid.ref and cid.action in ("check", "hint"):
            return None  # a first-release Check or Hint: the engine checks the task open now
        if mission.state != "running" or cid.ref != f"{mission.chapter}.{mission.beat}":
            return "That moment has passed."
        moment = await self.moments.current(mission.id)
        if moment is not None and moment.ref == cid.ref and moment.nonce != cid.nonce:
            return "That moment has passed."
        return None

    async def _notice_now(self, interaction: discord.Interaction, passed: str) -> None:
        """The short answer to a stale click: it changed nothing, and where the story is."""
        cid = parse(str((interaction.data or {}).get("custom_id", "")))
        moment = await self.moments.current(cid.mission_id) if cid and cid.mission_id else None
        where = (
            f" The story is here now: {moment.link}"
            if moment is not None
            else " /mission status shows where the story is."
        )
        await interaction.response.send_message(
            passed + where, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    async def _step(
        self, interaction: discord.Interaction, cid: ComponentId, text: str | None = None
    ) -> None:
        """Continue, a choice or a typed answer: acknowledged silently; the story is the reply.

        Only when the story does not move on (a crew still answering) does the member get one
        ephemeral line with their own answer, so they know it counted.
        """
        await interaction.response.defer()

        async def work() -> list[Outgoing]:
            mission = await self._member_mission(interaction, cid.mission_id)
            learner = learner_id_of(interaction.user)
            if cid.action == "continue":
                return await self.engine.continue_(mission.id, learner)
            if cid.action == "choice":
                replies = await self.engine.answer(mission.id, learner, str(cid.index))
            else:
                replies = await self.engine.say(mission.id, learner, text or "")
            after = await self.store.get_mission(mission.id)
            if replies or after is None or (after.chapter, after.beat) != (
                mission.chapter, mission.beat
            ):  # fmt: skip
                return replies
            beat = self.open_question(after)
            if cid.action == "choice" and beat is not None and cid.index:
                label = beat.choices[cid.index - 1].label if cid.index <= len(beat.choices) else ""
                said = f"{cid.index}. {label}"
            else:
                said = (text or "").strip()
            return [Outgoing(kind="notice", text=f"Your answer: {said[:300]}")] if said else []

        await self._run(interaction, work, thinking=False)

    async def _manifest(self, interaction: discord.Interaction, mission_id: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._member_mission(interaction, mission_id)
            files = self._manifests(mission)
            if not files:
                return [Outgoing(kind="notice", text="This step has no manifests.")]
            return [Outgoing(kind="notice", text="The manifests for this task:", attachments=files)]

        await self._run(interaction, work)

    async def say(self, interaction: discord.Interaction, mission_id: int, text: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work() -> list[Outgoing]:
            mission = await self._member_mission(interaction, mission_id)
            return await self.engine.say(mission.id, learner_id_of(interaction.user), text)

        await self._run(interaction, work)

    async def message(self, message: discord.Message, bot_user: Any) -> None:
        """A DM, or a message that mentions the bot in a mission channel: free text."""
        if message.author.bot or message.webhook_id is not None:
            return
        channel = message.channel
        learner = learner_id_of(message.author)
        dm = isinstance(channel, discord.DMChannel)
        if not dm and (bot_user is None or bot_user not in message.mentions):
            return
        text = message.content
        if bot_user is not None:
            text = text.replace(f"<@{bot_user.id}>", "").replace(f"<@!{bot_user.id}>", "")
        mission = await self.store.find_mission(address_of(channel))
        try:
            if dm and mission is None:
                await self.engine.start(address_of(channel), learner, message.author.display_name)
                self.spawn(self.provision(learner, None, Progress(channel=channel)))
                return
            if mission is None:
                return
            if not any(m.learner_id == learner and not m.left
                       for m in await self.store.members(mission.id)):  # fmt: skip
                raise InputError("Join the crew first with /mission join.")
            async with channel.typing():
                replies = await self.engine.say(mission.id, learner, text)
        except InputError as exc:
            replies = [Outgoing(kind="notice", text=str(exc))]
        if replies and dm:
            for reply in replies:
                for piece in render(reply, self.course, persona_mode=False, public_url=self.public_url):
                    await channel.send(content=piece.content, embed=piece.embed,
                                       allowed_mentions=NO_MENTIONS)  # fmt: skip
        elif replies:
            user = message.author
            for reply in replies:  # private to the learner: their DMs, not the channel
                for piece in render(reply, self.course, persona_mode=False, public_url=self.public_url):
                    await user.send(content=piece.content, embed=piece.embed,
                                    allowed_mentions=NO_MENTIONS)  # fmt: skip

    # --- sandbox ------------------------------------------------------------------------

    async def kubeconfig(self, interaction: discord.Interaction) -> None:
        """The learner's kubeconfig, as an ephemeral file: never into a channel, never logged."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        learner = learner_id_of(interaction.user)
        if self.backend is None:
            await self._say(interaction, "No station clusters on this bot.")
            return
        record = await self.store.get_sandbox(learner)
        if record is None or record.phase != "ready":
            await self._say(interaction, NOT_READY)
            return
        try:
            text = await self.backend.kubeconfig_for(learner)
        except Exception:
            log.warning("kubeconfig unavailable", extra={"learner": learner})
            await self._say(interaction, OOPS)
            return
        file = discord.File(io.BytesIO(text.encode()), filename="kepler-kubeconfig.yaml")
        await interaction.followup.send(
            "Your station cluster's kubeconfig (only you can see this):\n"
            "`export KUBECONFIG=$PWD/kepler-kubeconfig.yaml` then `kubectl get nodes`.",
            file=file,
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    async def terminal(self, interaction: discord.Interaction) -> None:
        """A fresh single-use link to the learner's browser terminal, only for them to see."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        learner = learner_id_of(interaction.user)
        if self.web_terminal is None:
            await self._say(interaction, "The browser terminal is not switched on for this bot. "
                            "Use **/kubeconfig** with your own kubectl.")  # fmt: skip
            return
        record = await self.store.get_sandbox(learner)
        if record is not None and record.phase == "paused" and self.manager is not None:
            await self._progress(self.manager.resume(learner), Progress(interaction),
                                 with_terminal=False)  # fmt: skip
            record = await self.store.get_sandbox(learner)
        if record is None or record.phase != "ready":
            await self._say(interaction, NOT_READY)
            return
        try:
            url = await self.web_terminal.link_for(learner)
        except Exception:
            log.warning("terminal link failed", extra={"learner": learner})
            url = None
        if url is None:
            await self._say(interaction, OOPS)
            return
        await interaction.followup.send(
            "Your terminal, already connected to your station cluster (only you can see this "
            "link). Open it within 10 minutes; it works once. `kubectl` (or `k`), vim, nano and "
            "curl are there, and your files stay between sessions.",
            view=terminal_link_view(url), ephemeral=True, allowed_mentions=NO_MENTIONS,
        )  # fmt: skip

    async def _terminals_open(self, mission_id: int) -> list[Outgoing]:
        """For the crew board: who of this crew has a terminal open right now."""
        if self.web_terminal is None:
            return []
        open_now = self.web_terminal.connected()
        crew = [m.learner_id for m in await self.store.members(mission_id) if not m.left]
        ids = [user_id_of(lid) for lid in crew if lid in open_now]
        names = ", ".join(f"<@{i}>" for i in ids if i is not None)
        return [Outgoing(kind="notice", text=f"Terminals open now: {names or 'none'}.")]

    async def sandbox(self, interaction: discord.Interaction, op: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        learner = learner_id_of(interaction.user)
        if self.manager is None:
            await self._say(interaction, "No station clusters on this bot.")
            return
        try:
            if op == "reset":
                await self._progress(self.manager.reset(learner), Progress(interaction))
                return
            if op == "delete":
                had = await self.manager.delete(learner)
                text = "Your station cluster is deleted." if had else "You had no station cluster."
            else:
                expires = await self.manager.extend(learner)
                text = f"Your station cluster stays until <t:{int(expires)}:f>."
        except Exception as exc:
            log.warning("sandbox %s failed: %s", op, exc)
            text = f"That did not work: {str(exc)[:200]}"
        await self._say(interaction, text)

    async def provision(self, learner: str, guild: str | None, progress: Progress) -> None:
        """Bring the learner's sandbox up in the background, one progress message edited."""
        if self.manager is None:
            return
        try:
            cap = (
                await self.store.get_setting(GUILD.format(guild), "max_sandboxes")
                if guild
                else None
            )
            if cap and await self.store.get_sandbox(learner) is None:
                used = [r for r in await self.store.sandboxes(guild) if r.phase != "failed"]
                if len(used) >= int(cap):
                    await progress.update("This server's station clusters are all in use. "
                                          "An admin can raise the cap with /station caps.")  # fmt: skip
                    return
            await self._progress(self.manager.ensure(learner, guild), progress)
        except Exception:
            log.exception("provisioning failed", extra={"learner": learner})
            await progress.update(OOPS)

    async def _progress(self, events: Any, progress: Progress, *,
                        with_terminal: bool = True) -> None:  # fmt: skip
        async for event in events:
            mark = PROGRESS_STEPS.get(event.step, "•")
            text = f"{mark} {event.message}"
            view = None
            if event.step == "ready":
                text += "\nUse **/kubeconfig** to get access (only you will see it)."
                if self.web_terminal is not None and with_terminal:
                    text += " Or press **Terminal** for one in your browser: nothing to install."
                    view = terminal_button_view()
            await progress.update(text, view=view)

    # --- admin --------------------------------------------------------------------------

    async def teardown(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = str(interaction.guild.id) if interaction.guild else None
        deleted = 0
        if self.manager is not None:
            for record in await self.store.sandboxes(guild):
                try:
                    deleted += bool(await self.manager.delete(record.learner_id, "server teardown"))
                except Exception as exc:
                    log.warning("teardown: %s", exc)
        closed = await self.engine.close_guild(guild)
        await self._say(interaction, f"Closed {closed} missions and deleted {deleted} clusters.")

    # --- helpers ------------------------------------------------------------------------

    async def _run(
        self,
        interaction: discord.Interaction,
        work: Callable[[], Awaitable[list[Outgoing]]],
        *,
        thinking: bool = True,
    ) -> None:
        """Do the work and show its result; nothing to show means no message at all."""
        try:
            replies = await work()
        except InputError as exc:
            replies = [Outgoing(kind="notice", text=str(exc))]
        except Exception as exc:
            if expired_token(exc):
                log_expired(interaction, exc)
                return
            log.exception("interaction failed")
            replies = [Outgoing(kind="notice", text=OOPS)]
        try:
            if replies:
                await self.reply(interaction, replies)
            elif thinking:
                await interaction.delete_original_response()  # no "thinking…" left behind
        except Exception as exc:
            if not expired_token(exc):
                raise
            log_expired(interaction, exc)

    async def reply(self, interaction: discord.Interaction, replies: list[Outgoing]) -> None:
        """Replies from the engine: ephemeral, no mentions, manifests as files."""
        for reply in replies:
            for piece in render(reply, self.course, persona_mode=False, public_url=self.public_url):
                kwargs: dict[str, Any] = {"ephemeral": True, "allowed_mentions": NO_MENTIONS}
                if piece.content is not None:
                    kwargs["content"] = piece.content
                if piece.embed is not None:
                    kwargs["embed"] = piece.embed
                files = [discord.File(p, filename=p.name) for p in piece.files if p.exists()]
                if files:
                    kwargs["files"] = files
                await interaction.followup.send(**kwargs)

    async def _say(self, interaction: discord.Interaction, text: str) -> None:
        await self.reply(interaction, [Outgoing(kind="notice", text=text)])

    async def _mission_at(self, channel: Any) -> Mission:
        mission = await self.store.find_mission(address_of(channel))
        if mission is None or mission.state == "closed":
            raise InputError("No mission here yet. Start one with /mission start.")
        return mission

    async def _mission_for(self, interaction: discord.Interaction) -> Mission:
        """The caller's mission here: in a self-paced hub, their own thread's."""
        mission = await self._mission_at(interaction.channel)
        if mission.state == "hub":
            learner = learner_id_of(interaction.user)
            thread_id = await self.store.get_setting(THREADS.format(mission.id), learner)
            found = (await self.store.find_mission(Address("discord", "thread", thread_id))
                     if thread_id else None)  # fmt: skip
            if found is None:
                raise InputError("Join with /mission join to get your own thread.")
            return found
        return mission

    async def _member_mission(
        self, interaction: discord.Interaction, mission_id: int | None
    ) -> Mission:
        if mission_id is None:
            mission = await self._mission_for(interaction)
        else:
            found = await self.store.get_mission(mission_id)
            if found is None:
                raise InputError("That mission no longer exists.")
            mission = found
        learner = learner_id_of(interaction.user)
        if not any(m.learner_id == learner and not m.left
                   for m in await self.store.members(mission.id)):  # fmt: skip
            raise InputError("You are not on this mission's crew. Join with /mission join.")
        return mission

    async def _thread_for(self, hub: Mission, channel: Any, user: Any, chapter: str | None) -> Any:
        """The member's own thread under a self-paced hub (made once)."""
        learner = learner_id_of(user)
        scope = THREADS.format(hub.id)
        known = await self.store.get_setting(scope, learner)
        if known:
            thread = channel.get_thread(int(known))
            if thread is not None:
                return thread
        thread = await channel.create_thread(
            name=f"{user.display_name} — Kepler mission"[:100],
            type=discord.ChannelType.public_thread,
            auto_archive_duration=10080,
        )
        await self.store.set_setting(scope, learner, str(thread.id))
        await thread.add_user(user)
        await self.engine.start(
            address_of(thread), learner, user.display_name,
            guild=hub.guild, pacing="together", chapter=chapter, parent_id=hub.id,
        )  # fmt: skip
        return thread

    def _manifests(self, mission: Mission) -> tuple[str, ...]:
        if mission.state != "running":
            return ()
        beat = self.course.beat_at(mission.chapter, mission.beat)
        if not isinstance(beat, TaskBeat):
            return ()
        return tuple(
            self.course.manifest_path(mission.chapter, m.file)
            .relative_to(self.course.root)
            .as_posix()
            for m in beat.manifests
        )

    def open_question(self, mission: Mission) -> QuestionBeat | None:
        if mission.state != "running":
            return None
        beat = self.course.beat_at(mission.chapter, mission.beat)
        return beat if isinstance(beat, QuestionBeat) else None
