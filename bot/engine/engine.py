"""The mission engine: learner input and cluster state in, the next beats out.

Every decision happens under the mission's lock and inside one store unit, so progress and
the messages it produces are committed together (the outbox). Delivery is a separate step
that drains the outbox in order and marks each message sent; after a crash, unsent messages
are sent again under the same key, so transports can drop duplicates.

Methods that answer the caller directly (a check's status, a hint, a status report) return
messages instead of queueing them: they are replies to one person, not story.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from weakref import WeakValueDictionary

from bot.content.course import BeatRef, Course
from bot.content.schema import Beat, Choice, QuestionBeat, ReviewBeat, TaskBeat
from bot.core.text import from_outside, strip_controls
from bot.engine import feedback
from bot.engine.beats import line_message, render, task_key
from bot.engine.board import board_text
from bot.engine.pacing import Pacing, gate_open
from bot.engine.ports import Address, CheckResult, Cluster, Outgoing, Transport, Voice, VoiceTurn
from bot.store.base import Store
from bot.store.records import Mission
from sandbox.objectives import EvalContext, RecoveredObjective

log = logging.getLogger(__name__)

MAX_INPUT = 4000
KEEP_SENT = 86_400.0  # seconds a delivered message stays in the outbox
REPLY_WITHIN = 15.0  # seconds: the learner sees a reply by then, whatever the voice does
MAX_PROFILE = 200  # characters in a free-text profile value (environment)
MAX_NAME = 80
PROFILE_FIELDS = ("style", "review", "feedback", "environment")
_MUTABLE = ("chapter", "beat", "emitted", "state", "data", "pacing", "quorum")


class InputError(ValueError):
    """Bad learner input: the message is safe to show as is."""


class Engine:
    def __init__(
        self,
        course: Course,
        store: Store,
        cluster: Cluster,
        voice: Voice,
        transport: Transport,
        *,
        idle_after: float = 3600.0,
        clock: Callable[[], float] = time.time,
        observe: Callable[..., None] | None = None,
        fallback: Voice | None = None,
        reply_within: float = REPLY_WITHIN,
    ):
        """``observe(event, **fields)`` hears what metrics want: ``check`` (seconds, learner,
        passed, error), ``unlock`` (learner, task), ``delivered`` (count). ``fallback``
        (the scripted crew) speaks when ``voice`` has said nothing ``reply_within`` seconds
        into a turn, or stalls that long mid-reply."""
        self.course = course
        self.store = store
        self.cluster = cluster
        self.voice = voice
        self.transport = transport
        self.idle_after = idle_after
        self.clock = clock
        self.observe = observe or (lambda event, **fields: None)
        self.fallback: Voice = fallback or _Holding()
        self.reply_within = reply_within
        # Locks live while someone holds or awaits them: a finished mission's lock is
        # forgotten, so ten thousand missions leave no trace here.
        self._locks: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()
        self._send_locks: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()
        # Called with each member's learner id and the task when a mission stops at a task
        # (the live loop watches their cluster for that task from then on, not from its next
        # periodic refresh). It runs before the mission's new place is committed.
        self.on_task_open: list[Callable[[str, TaskBeat], None]] = []

    # --- missions and crews -------------------------------------------------------------

    async def start(
        self,
        address: Address,
        learner_id: str,
        learner_name: str,
        *,
        guild: str | None = None,
        pacing: Pacing = "together",
        quorum: float = 0.5,
        chapter: int | str | None = None,
        parent_id: int | None = None,
    ) -> Mission:
        """Open the mission at ``address`` (or rejoin it) and play up to the first gate."""
        await self.store.ensure_learner(learner_id, _name(learner_name, learner_id))
        existing = await self.store.find_mission(address)
        if existing is not None:
            await self.store.add_member(existing.id, learner_id)
            await self.deliver(existing.id)
            return existing
        start_at = self.course.find_chapter(chapter) if chapter is not None else 0
        mission = await self.store.create_mission(
            address,
            guild=guild,
            pacing=pacing,
            quorum=quorum,
            chapter=start_at,
            parent_id=parent_id,
        )
        await self.store.add_member(mission.id, learner_id)
        async with self._lock(mission.id), self.store.unit():
            intro = self._catch_up_notice(start_at) if start_at > 0 else []
            if pacing == "self-paced" and address.kind == "channel":
                mission = replace(mission, state="hub")  # saved by _advance below
                intro.append(
                    Outgoing(
                        kind="notice",
                        text=(
                            "Self-paced crew: each member plays in their own thread; this channel keeps "
                            "the crew board."
                        ),
                    )
                )
            await self.store.enqueue(mission.id, intro)
            await self._advance(mission)
        await self.deliver(mission.id)
        return await self._mission(mission.id)

    async def jump(self, mission_id: int, chapter: int | str) -> Mission:
        """Move a solo mission to the start of ``chapter`` (``kepler play --chapter N``)."""
        index = self.course.find_chapter(chapter)
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            if mission.address.kind == "channel":
                raise InputError("A crew's mission moves together; it cannot jump chapters.")
            moved = replace(
                mission,
                chapter=index,
                beat=self._order(mission, index)[0],
                emitted=False,
                state="running",
            )
            await self.store.enqueue(mission_id, self._catch_up_notice(index))
            await self._advance(moved)
        await self.deliver(mission_id)
        return await self._mission(mission_id)

    async def join(self, mission_id: int, learner_id: str, learner_name: str) -> Mission:
        await self.store.ensure_learner(learner_id, _name(learner_name, learner_id))
        await self.store.add_member(mission_id, learner_id)
        await self._reconsider(mission_id)
        return await self._mission(mission_id)

    async def leave(self, mission_id: int, learner_id: str) -> None:
        await self.store.leave(mission_id, learner_id)
        await self._reconsider(mission_id)

    async def set_pacing(
        self, mission_id: int, pacing: Pacing, quorum: float | None = None
    ) -> None:
        """Change how a crew's gates open; the new rule may open the current gate at once."""
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            if mission.state == "hub" or pacing == "self-paced":
                raise InputError("Self-paced crews are chosen when the mission starts.")
            changes: dict[str, Any] = {"pacing": pacing}
            if quorum is not None:
                changes["quorum"] = quorum
            await self.store.update_mission(mission_id, **changes)
            if mission.state == "running":
                await self._advance(replace(mission, **changes))
        await self.deliver(mission_id)

    async def close(self, mission_id: int) -> bool:
        """Close a mission for good (an admin's teardown); False if it was closed already."""
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            if mission.state == "closed":
                return False
            await self.store.update_mission(mission_id, state="closed")
        return True

    async def close_guild(self, guild: str | None) -> int:
        """Close every open mission of one server; return how many were closed."""
        closed = 0
        for mission in await self.store.all_missions():
            if mission.guild == guild and mission.state != "closed":
                closed += await self.close(mission.id)
        return closed

    async def tick(self) -> None:
        """Re-open gates that idle members were holding shut, and prune what was delivered
        long ago; call every minute or so."""
        for mission in await self.store.all_missions():
            if mission.state == "running" and mission.address.kind == "channel":
                await self._reconsider(mission.id)
        await self.prune()

    async def prune(self) -> int:
        """Drop outbox messages delivered more than :data:`KEEP_SENT` seconds ago, and the
        transport's marks for them (``forget_sent``, if it keeps any): a bot that runs for
        months keeps a day of delivered messages, not all of them."""
        upto = await self.store.prune_outbox(self.clock() - KEEP_SENT)
        forget = getattr(self.transport, "forget_sent", None)
        if upto and forget is not None:
            await forget(upto)
        return upto

    # --- learner input ------------------------------------------------------------------

    async def say(self, mission_id: int, learner_id: str, text: str) -> list[Outgoing]:
        """Free text: an answer to the open question, or a question for the crew."""
        text = text.strip()
        if not text:
            return []
        if len(text) > MAX_INPUT:
            raise InputError(f"That message is {len(text)} characters; keep it under {MAX_INPUT}.")
        # Learner text is data: no terminal controls, and a pasted credential is never stored
        # or sent to the model.
        text = from_outside(text)
        mission = await self._mission(mission_id)
        await self.store.touch(mission_id, learner_id, self.clock())
        beat = self._beat(mission)
        if isinstance(beat, QuestionBeat) and mission.state == "running":
            answered = await self.store.answered(mission_id, self._ref(mission).key)
            # A question back ("what do you mean by Ready?") is answered, not judged: the
            # Think First question stays open for the learner's answer.
            if learner_id not in answered and not is_question(text, beat.choices):
                return await self.answer(mission_id, learner_id, text)
        await self._converse(mission, learner_id, text)
        return []

    async def answer(self, mission_id: int, learner_id: str, text: str) -> list[Outgoing]:
        """Record an answer to the current question; profile questions set the profile."""
        text = from_outside(text.strip())[:MAX_INPUT]
        mission = await self._mission(mission_id)
        ref = self._ref(mission)
        beat = self.course.beat(ref) if mission.state == "running" else None
        if not isinstance(beat, QuestionBeat):
            raise InputError("There is no open question right now.")
        value = text
        if beat.choices:
            choice = _pick_choice(beat, text)
            if choice is None:
                options = ", ".join(f"{i}) {c.label}" for i, c in enumerate(beat.choices, 1))
                raise InputError(f"Pick one: {options}")
            value = choice
        elif beat.profile:
            value = self._profile_value(beat.profile, text)
        judged = await self._judge(mission, learner_id, beat, text) if not beat.profile else []
        if beat.fact is not None and beat.fact.required and not await self._reported(
            learner_id, beat, text
        ):
            # A report from the learner's own cluster: the question stays open until it is true.
            return judged or [
                Outgoing(kind="notice", text="That does not match the live cluster yet.")
            ]
        async with self._lock(mission_id), self.store.unit():
            if beat.profile:
                await self.store.set_profile(learner_id, beat.profile, value)
            await self.store.save_answer(mission_id, ref.key, learner_id, text)
            await self.store.enqueue(mission_id, judged)
            mission = await self._mission(mission_id)
            if beat.profile == "style" and mission.address.kind != "channel":
                # A hands-on learner meets Think First after the task, from here on.
                mission = replace(mission, data={**mission.data, "hands_on": value == "hands-on"})
            await self._advance(mission)
        await self.deliver(mission_id)
        return []

    async def _reported(self, learner_id: str, beat: QuestionBeat, text: str) -> bool:
        """The answer states the number the live cluster shows (unreadable cluster: accepted)."""
        assert beat.fact is not None
        value = await self.cluster.measure(learner_id, beat.fact)
        return value is None or str(value) in _numbers(text)

    async def continue_(self, mission_id: int, learner_id: str) -> list[Outgoing]:
        mission = await self._mission(mission_id)
        await self.store.touch(mission_id, learner_id, self.clock())
        beat = self._beat(mission)
        if mission.state != "running" or beat is None or not beat.pause:
            return [Outgoing(kind="notice", text=self._waiting_on(mission), private_to=learner_id)]
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            data = {**mission.data, "continued": self._ref(mission).key}
            await self._advance(replace(mission, data=data))
        await self.deliver(mission_id)
        return []

    async def check(
        self, mission_id: int, learner_id: str, *, explicit: bool = True
    ) -> list[Outgoing]:
        """Read the learner's cluster against the open task; latch and advance when all hold."""
        mission = await self._mission(mission_id)
        if explicit:
            await self.store.touch(mission_id, learner_id, self.clock())
        ref = self._ref(mission)
        beat = self._beat(mission)
        if mission.state != "running" or not isinstance(beat, TaskBeat):
            return [Outgoing(kind="notice", text=self._waiting_on(mission), private_to=learner_id)]
        key = task_key(self.course, ref)
        if await self.store.passed([learner_id], key):
            if explicit:
                text = "Your part of this task is done; the crew is still working on theirs."
                return [Outgoing(kind="notice", text=text, private_to=learner_id)]
            return []
        drills: dict[str, float] = mission.data.get("drills", {}).get(key, {})
        drill_at = drills.get(learner_id)
        ctx = EvalContext(datetime.fromtimestamp(drill_at, UTC) if drill_at else None)
        began = time.perf_counter()
        result = await self.cluster.evaluate(learner_id, beat.objectives, ctx)
        self.observe(
            "check",
            seconds=time.perf_counter() - began,
            learner=learner_id,
            passed=result.all_passed,
            error=result.error is not None,
            reason=result.error,  # what the learner is told (no secrets: ClusterService.explain)
        )

        profile = (await self._learner(learner_id)).profile
        replies: list[Outgoing] = []
        run_drill = False
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            if self._ref(mission) != ref or mission.state != "running":
                return []  # the story moved on while we were reading the cluster
            solo = mission.address.kind != "channel"
            if result.error is None:
                before = await self.store.objectives(learner_id, key)
                await self.store.save_objectives(
                    learner_id, key, [(r.id, r.passed, r.reason) for r in result.results]
                )
                was = {k: v.passed for k, v in before.items()}
                fresh = feedback.newly_passed(was, result.results)
                broken = feedback.newly_failed(was, result.results)
                if result.all_passed:
                    await self.store.pass_task(learner_id, key)
                    self.observe("unlock", learner=learner_id, task=key)
                elif beat.drill and drill_at is None and explicit and _ready_for_drill(beat, result):
                    # Only on the learner's own check: the task tells them to start watching
                    # first, and the story must not break things behind their back.
                    run_drill = True
                if solo and result.all_passed:
                    # The unlock is part of the story: it goes out before the beats it opens.
                    await self.store.enqueue(
                        mission_id, [feedback.status_message(beat, result, profile)]
                    )
                elif explicit:
                    replies.append(
                        feedback.status_message(beat, result, profile, private_to=learner_id)
                    )
                elif solo and broken:
                    # Work that held has come undone: the crew says so, whatever the profile.
                    await self.store.enqueue(
                        mission_id, [feedback.status_message(beat, result, profile)]
                    )
                elif (
                    solo
                    and fresh
                    and feedback.reviews_every_change(profile)
                    and not result.all_passed
                ):
                    await self.store.enqueue(
                        mission_id, [feedback.status_message(beat, result, profile, only=fresh)]
                    )
                if not solo:
                    await self.store.enqueue(mission_id, [await self._board(mission)])
                if mission.parent_id is not None:
                    await self.store.enqueue(mission.parent_id, [await self._board(mission)])
                await self._advance(mission)
            elif explicit:
                replies.append(
                    feedback.status_message(beat, result, profile, private_to=learner_id)
                )
        await self.deliver(mission_id)
        if mission.parent_id is not None:
            await self.deliver(mission.parent_id)
        if run_drill and beat.drill is not None:
            await self._drill(mission_id, learner_id, key, beat)
        return replies

    async def hint(self, mission_id: int, learner_id: str) -> list[Outgoing]:
        """The next hint tier for the first objective still open (checks first if never checked)."""
        mission = await self._mission(mission_id)
        await self.store.touch(mission_id, learner_id, self.clock())
        beat = self._beat(mission)
        if mission.state != "running" or not isinstance(beat, TaskBeat):
            return [Outgoing(kind="notice", text=self._waiting_on(mission), private_to=learner_id)]
        key = task_key(self.course, self._ref(mission))
        status = await self.store.objectives(learner_id, key)
        if not status:
            await self.check(mission_id, learner_id, explicit=False)
            status = await self.store.objectives(learner_id, key)
        open_ = [o for o in beat.objectives if not (o.id in status and status[o.id].passed)]
        if not open_:
            return [
                Outgoing(
                    kind="hint",
                    speaker="torres",
                    private_to=learner_id,
                    text="Everything I asked for is in place. Run a check.",
                )
            ]
        objective = open_[0]
        tier = await self.store.next_hint_tier(learner_id, key, objective.id)
        reason = status[objective.id].reason if objective.id in status else objective.reason
        text = f"**{objective.title}** — {reason}\n\n{objective.hints[tier - 1]}"
        return [
            Outgoing(
                kind="hint",
                text=text,
                speaker="torres",
                private_to=learner_id,
                data={"objective": objective.id, "tier": tier},
            )
        ]

    async def status(self, mission_id: int, learner_id: str) -> list[Outgoing]:
        mission = await self._mission(mission_id)
        chapter = self.course.chapters[min(mission.chapter, len(self.course.chapters) - 1)]
        last = max((c.number for c in self.course.chapters if c.number < 99), default=0)
        where = (
            f"Chapter {chapter.number} of {last}: {chapter.title}"
            if 1 <= chapter.number <= last
            else chapter.title
        )
        lines = [where, self._waiting_on(mission)]
        beat = self._beat(mission)
        if isinstance(beat, TaskBeat):
            status = await self.store.objectives(
                learner_id, task_key(self.course, self._ref(mission))
            )
            for o in beat.objectives:
                mark = "✅" if o.id in status and status[o.id].passed else "⬜"
                lines.append(f"{mark} {o.title}")
        return [Outgoing(kind="notice", text="\n".join(lines), private_to=learner_id)]

    async def profile(
        self, learner_id: str, field: str | None = None, value: str | None = None
    ) -> dict[str, str]:
        if field is not None:
            if field not in PROFILE_FIELDS:
                raise InputError(f"Profile fields are: {', '.join(PROFILE_FIELDS)}.")
            await self.store.set_profile(learner_id, field, self._profile_value(field, value or ""))
        return (await self._learner(learner_id)).profile

    async def cluster_changed(self, learner_id: str) -> None:
        """The learner's cluster changed: re-check every open task they are on."""
        for mission in await self.store.missions_of(learner_id):
            if isinstance(self._beat(mission), TaskBeat):
                await self.check(mission.id, learner_id, explicit=False)

    async def catch_up(self, mission_id: int, learner_id: str) -> list[Outgoing]:
        """Apply the solutions of the chapters before the mission's current one."""
        mission = await self._mission(mission_id)
        files = []
        for c in range(1, mission.chapter):
            for task in self.course.tasks(c):
                files += [
                    self.course.manifest_path(c, m.file) for m in task.manifests if m.solution
                ]
        if not files:
            return [
                Outgoing(
                    kind="notice", text="No earlier chapters to catch up on.", private_to=learner_id
                )
            ]
        summary = await self.cluster.apply(learner_id, files)
        return [Outgoing(kind="notice", text=summary, private_to=learner_id)]

    # --- delivery -----------------------------------------------------------------------

    async def deliver(self, mission_id: int) -> int:
        """Send the mission's unsent messages in order; stop at the first transport failure."""
        lock = _lock_in(self._send_locks, mission_id)
        sent = 0
        async with lock:
            mission = await self._mission(mission_id)
            for item in await self.store.pending(mission_id):
                await self.transport.deliver(mission.address, item.message, item.key)
                await self.store.mark_sent(item.id)
                sent += 1
        if sent:
            self.observe("delivered", count=sent)
        return sent

    async def deliver_all(self) -> int:
        """After a restart: send whatever was committed but never sent."""
        total = 0
        for mission_id in await self.store.missions_with_pending():
            try:
                total += await self.deliver(mission_id)
            except Exception:  # one mission's transport trouble must not stop the others
                log.exception("delivery failed", extra={"mission": mission_id})
        return total

    # --- the story's progress -----------------------------------------------------------

    async def _advance(self, mission: Mission) -> Mission:
        """Emit beats and move past open gates until one is shut. Call inside a unit."""
        os_name = None
        browser = mission.address.transport != "terminal"  # kepler play: a terminal already
        while mission.state == "running":
            ref = self._ref(mission)
            beat = self.course.beat(ref)
            if not mission.emitted:
                members = await self.store.members(mission.id)
                if members:
                    profile = (await self._learner(members[0].learner_id)).profile
                    os_name = platform_of(profile.get("environment", ""), browser=browser)
                results = await self._review_results(mission) if isinstance(beat, ReviewBeat) else None
                messages = render(self.course, ref, beat, os_name=os_name, results=results,
                                  browser=browser)
                # The beat each message presents: transports tie buttons to it and group it.
                messages = [replace(m, data={**m.data, "ref": ref.key}) for m in messages]
                if beat.pause and messages:
                    messages[-1] = replace(
                        messages[-1], actions=(*messages[-1].actions, "continue")
                    )
                if isinstance(beat, TaskBeat) and mission.address.kind == "channel":
                    messages.append(await self._board(mission))
                await self.store.enqueue(mission.id, messages)
                mission = replace(mission, emitted=True)
            if not await self._gate_open(mission, ref, beat):
                if isinstance(beat, TaskBeat) and self.on_task_open:
                    for member in await self.store.members(mission.id):
                        if not member.left:
                            for listener in self.on_task_open:
                                listener(member.learner_id, beat)
                break
            mission = self._step(mission)
        await self._save(mission)
        return mission

    async def _save(self, mission: Mission) -> None:
        """Write only the fields that differ from the stored row (inside the mission's lock
        and a unit): a field this change did not touch is never written back stale."""
        stored = await self._mission(mission.id)
        changes = {
            name: getattr(mission, name)
            for name in _MUTABLE
            if getattr(mission, name) != getattr(stored, name)
        }
        await self.store.update_mission(mission.id, **changes)

    async def _review_results(self, mission: Mission) -> dict[str, bool]:
        """Objective and question ids of the chapter → held for (answered by) every member."""
        members = [m.learner_id for m in await self.store.members(mission.id) if not m.left]
        out: dict[str, bool] = {}
        for b, beat in enumerate(self.course.chapters[mission.chapter].beats):
            ref = BeatRef(mission.chapter, b)
            if isinstance(beat, TaskBeat):
                key = task_key(self.course, ref)
                statuses = [await self.store.objectives(m, key) for m in members]
                for o in beat.objectives:
                    out[o.id] = bool(members) and all(
                        o.id in st and st[o.id].passed for st in statuses
                    )
            elif isinstance(beat, QuestionBeat):
                answered = set(await self.store.answered(mission.id, ref.key))
                out[beat.id] = bool(members) and set(members) <= answered
        return out

    def _step(self, mission: Mission) -> Mission:
        """Move the cursor to the next beat, honouring the hands-on order for this chapter."""
        order = self._order(mission, mission.chapter)
        pos = order.index(mission.beat)
        if pos + 1 < len(order):
            return replace(mission, beat=order[pos + 1], emitted=False)
        if mission.chapter + 1 < len(self.course.chapters):
            chapter = mission.chapter + 1
            data = {k: v for k, v in mission.data.items() if k != "continued"}
            mission = replace(mission, chapter=chapter, emitted=False, data=data)
            return replace(mission, beat=self._order(mission, chapter)[0])
        return replace(mission, state="done", emitted=False)

    def _order(self, mission: Mission, chapter: int) -> list[int]:
        """Beat order: a hands-on learner meets a deferrable question after the next task."""
        beats = self.course.chapters[chapter].beats
        order = list(range(len(beats)))
        if not mission.data.get("hands_on"):
            return order
        for i, beat in enumerate(beats):
            if isinstance(beat, QuestionBeat) and beat.deferrable:
                later = [j for j in range(i + 1, len(beats)) if isinstance(beats[j], TaskBeat)]
                if later:
                    order.remove(i)
                    order.insert(order.index(later[0]) + 1, i)
        return order

    async def _gate_open(self, mission: Mission, ref: BeatRef, beat: Beat) -> bool:
        members = [m for m in await self.store.members(mission.id) if not m.left]
        ids = [m.learner_id for m in members]
        now = self.clock()
        active = [m.learner_id for m in members if now - m.last_active < self.idle_after]
        if isinstance(beat, TaskBeat):
            done = await self.store.passed(ids, task_key(self.course, ref))
        elif isinstance(beat, QuestionBeat):
            done = set(await self.store.answered(mission.id, ref.key)) & set(ids)
        elif beat.pause:
            return mission.data.get("continued") == ref.key
        else:
            return True
        return gate_open(mission.pacing, active, done, mission.quorum)

    async def _reconsider(self, mission_id: int) -> None:
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            if mission.state == "running":
                await self._advance(mission)
        await self.deliver(mission_id)

    async def _drill(self, mission_id: int, learner_id: str, key: str, beat: TaskBeat) -> None:
        assert beat.drill is not None
        try:
            started = await self.cluster.run_drill(learner_id, beat.drill)
        except Exception as exc:
            log.warning("drill failed: %s", exc)
            return
        async with self._lock(mission_id), self.store.unit():
            mission = await self._mission(mission_id)
            drills = dict(mission.data.get("drills", {}))
            drills[key] = {**drills.get(key, {}), learner_id: started.timestamp()}
            await self.store.update_mission(mission_id, data={**mission.data, "drills": drills})
            await self.store.enqueue(mission_id, [line_message(line) for line in beat.drill.lines])
        await self.deliver(mission_id)

    async def _board(self, mission: Mission) -> Outgoing:
        """The crew board: every member's objectives for the open task."""
        target = mission
        if mission.parent_id is not None:
            target = await self._mission(mission.parent_id)
        missions = [target, *await self.store.children(target.id)]
        rows: list[dict[str, Any]] = []
        for m in missions:
            if m.state == "hub":
                continue  # the hub's own members play in their threads
            beat = self._beat(m)
            for member in await self.store.members(m.id):
                if member.left:
                    continue
                row: dict[str, Any] = {
                    "name": member.name,
                    "learner": member.learner_id,
                    "task": "",
                    "passed": False,
                    "objectives": [],
                }
                if isinstance(beat, TaskBeat):
                    key = task_key(self.course, self._ref(m))
                    status = await self.store.objectives(member.learner_id, key)
                    row["task"] = beat.title
                    row["passed"] = bool(await self.store.passed([member.learner_id], key))
                    row["objectives"] = [
                        {"title": o.title, "passed": o.id in status and status[o.id].passed}
                        for o in beat.objectives
                    ]
                rows.append(row)
        # who has a terminal open is the transport's to add (``board_text``'s ``connected``)
        return Outgoing(kind="board", text=board_text(rows), data={"members": rows})

    # --- the crew's voice ---------------------------------------------------------------

    async def _judge(
        self, mission: Mission, learner_id: str, beat: QuestionBeat, text: str
    ) -> list[Outgoing]:
        fact = ""
        if beat.fact is not None:
            value = await self.cluster.measure(learner_id, beat.fact)
            if value is not None:
                words = beat.fact.measure.replace("_", " ")
                fact = f"live cluster: {value} {words[:-1] if value == 1 else words}"
                numbers = _numbers(text)
                if numbers and str(value) not in numbers:
                    fact += f" (the learner said {', '.join(numbers)})"
                elif not numbers:
                    fact += " (the learner gave no number)"
        turn = await self._turn(
            mission,
            learner_id,
            "judge",
            text,
            beat_text=" ".join(line.text for line in beat.lines),
            intent=beat.intent,
            fact=fact,
        )
        # Within the deadline, or the scripted rules judge it: the answer is kept either way.
        reply = await _collect(self._speak(turn))
        await self.store.add_transcript(turn.scope, "learner", learner_id, text)
        await self.store.add_transcript(turn.scope, "crew", "torres", reply)
        return [Outgoing(kind="reply", text=reply, speaker="torres")] if reply else []

    async def _converse(self, mission: Mission, learner_id: str, text: str) -> None:
        beat = self._beat(mission)
        beat_text = ""
        objectives: list[tuple[str, bool, str]] = []
        hint = ""
        if isinstance(beat, QuestionBeat):  # a question about the open Think First question
            beat_text = " ".join(line.text for line in beat.lines)
        if isinstance(beat, TaskBeat):
            beat_text = f"{beat.title}\n{beat.instructions}"
            key = task_key(self.course, self._ref(mission))
            status = await self.store.objectives(learner_id, key)
            open_ = [o for o in beat.objectives if not (o.id in status and status[o.id].passed)]
            if open_:
                # A question during a task is answered with the next hint for what is open.
                tier = await self.store.next_hint_tier(learner_id, key, open_[0].id)
                hint = open_[0].hints[tier - 1]
            objectives = [
                (
                    o.title,
                    o.id in status and status[o.id].passed,
                    status[o.id].reason if o.id in status else o.reason,
                )
                for o in beat.objectives
            ]
        turn = await self._turn(
            mission, learner_id, "answer", text, beat_text=beat_text, objectives=objectives,
            hint=hint,
        )
        await self.store.add_transcript(turn.scope, "learner", learner_id, text)
        reply = await self.transport.stream(mission.address, "torres", self._speak(turn))
        await self.store.add_transcript(turn.scope, "crew", "torres", reply)

    async def _turn(
        self, mission: Mission, learner_id: str, purpose: str, text: str, **extra: Any
    ) -> VoiceTurn:
        learner = await self._learner(learner_id)
        chapter = self.course.chapters[min(mission.chapter, len(self.course.chapters) - 1)]
        beat = self._beat(mission)
        scope = (
            f"mission:{mission.id}"
            if mission.address.kind == "channel"
            else f"learner:{learner_id}"
        )
        return VoiceTurn(
            purpose=purpose,  # type: ignore[arg-type]
            learner_id=learner_id,
            learner_name=learner.name,
            scope=scope,
            persona="torres",
            text=text,
            chapter_id=chapter.id,
            chapter_title=chapter.title,
            beat_id=beat.id if beat else "",
            profile=learner.profile,
            guild=mission.guild,
            has_cluster=True,
            **extra,
        )

    async def _speak(self, turn: VoiceTurn) -> AsyncIterator[str]:
        """The voice's reply under a hard deadline: nothing within :attr:`reply_within`
        seconds (a stalled API, a hung summary) and the fallback speaks instead; a stall as
        long mid-reply ends the reply there. One log line each, never a traceback."""
        chunks = aiter(self.voice.reply(turn))
        said = False
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), self.reply_within)
                except StopAsyncIteration:
                    break
                said = True
                yield chunk
        except TimeoutError:
            log.warning("voice: no reply within %gs; %s", self.reply_within,
                        "reply cut short" if said else "scripted line instead")  # fmt: skip
        except Exception as exc:  # the Voice contract says never; the engine makes sure
            log.warning("voice: reply failed (%s); scripted line instead", type(exc).__name__)
        else:
            if said:
                return
        finally:
            await _close(chunks)
        if said:
            yield " …"
            return
        async for chunk in self.fallback.reply(turn):
            yield chunk

    # --- helpers ------------------------------------------------------------------------

    def _profile_value(self, field: str, value: str) -> str:
        """A profile value the engine can trust: one of the profile question's choices, or
        (no choices: the environment) short plain text. Else an :class:`InputError`."""
        value = from_outside(value.strip())
        choices = [
            c
            for chapter in self.course.chapters
            for beat in chapter.beats
            if isinstance(beat, QuestionBeat) and beat.profile == field
            for c in beat.choices
        ]
        if choices:
            lowered = value.lower()
            for c in choices:
                if lowered in (c.value.lower(), c.label.lower()):
                    return c.value
            allowed = " or ".join(sorted({c.value for c in choices}))
            raise InputError(f"{field} is {allowed}.")
        if len(value) > MAX_PROFILE:
            raise InputError(f"Keep {field} under {MAX_PROFILE} characters.")
        return value

    def _lock(self, mission_id: int) -> asyncio.Lock:
        return _lock_in(self._locks, mission_id)

    async def _mission(self, mission_id: int) -> Mission:
        mission = await self.store.get_mission(mission_id)
        if mission is None:
            raise InputError("No mission here yet. Start one first.")
        return mission

    async def _learner(self, learner_id: str):
        learner = await self.store.get_learner(learner_id)
        if learner is None:
            raise InputError("Unknown learner: start or join a mission first.")
        return learner

    @staticmethod
    def _ref(mission: Mission) -> BeatRef:
        return BeatRef(mission.chapter, mission.beat)

    def _beat(self, mission: Mission) -> Beat | None:
        if mission.state != "running":
            return None
        return self.course.beat(self._ref(mission))

    def _waiting_on(self, mission: Mission) -> str:
        beat = self._beat(mission)
        if mission.state == "done":
            return "The mission is complete."
        if mission.state == "hub":
            return "This channel keeps the crew board; each member plays in their own thread."
        if isinstance(beat, TaskBeat):
            return f"Waiting on the task: {beat.title}."
        if isinstance(beat, QuestionBeat):
            return "Waiting for your answer to the commander's question."
        if beat is not None and beat.pause:
            return "Continue when you are ready."
        return "The story is moving."

    def _catch_up_notice(self, chapter: int) -> list[Outgoing]:
        earlier = [
            c
            for c in self.course.chapters[1:chapter]
            if self.course.tasks(self.course.chapters.index(c))
        ]
        if not earlier:
            return []
        names = ", ".join(f"{c.number} ({c.title})" for c in earlier)
        text = (
            f"You join the mission at chapter {self.course.chapters[chapter].number}. The crew "
            f"already worked through chapter(s) {names}; their objects are expected in your "
            "cluster. Use the catch-up command to apply those chapters' solutions in one step."
        )
        return [Outgoing(kind="notice", text=text)]


def _name(name: str, fallback: str) -> str:
    """A display name from outside (Discord, $USER): printable, bounded."""
    return " ".join(strip_controls(name).split())[:MAX_NAME] or fallback


def _lock_in(locks: WeakValueDictionary[int, asyncio.Lock], key: int) -> asyncio.Lock:
    """The lock for ``key``: the one in use, or a new one the caller keeps alive."""
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}


def _numbers(text: str) -> list[str]:
    """The numbers in a learner's words, digits or spelled out ("one ready node" → ["1"])."""
    found = re.findall(r"\b(\d+|[a-z]+)\b", text.lower())
    return [w if w.isdigit() else _NUMBER_WORDS[w] for w in found
            if w.isdigit() or w in _NUMBER_WORDS]


def _exact_choice(choices: Sequence[Choice], text: str) -> str | None:
    """The choice a text names outright: by its number, its value or its label."""
    lowered = text.lower().strip()
    if lowered.isdigit() and 1 <= int(lowered) <= len(choices):
        return choices[int(lowered) - 1].value
    for choice in choices:
        if lowered in (choice.value, choice.label.lower()):
            return choice.value
    return None


def _pick_choice(beat: QuestionBeat, text: str) -> str | None:
    lowered = text.lower().strip()
    exact = _exact_choice(beat.choices, lowered)
    if exact is not None:
        return exact
    scores = {c.value: sum(1 for k in c.keywords if k.lower() in lowered) for c in beat.choices}
    best = max(scores.values(), default=0)
    winners = [v for v, s in scores.items() if s == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def _ready_for_drill(beat: TaskBeat, result: CheckResult) -> bool:
    """Every objective but the recovery ones holds: time for the story to break something."""
    recovery = {o.id for o in beat.objectives if isinstance(o, RecoveredObjective)}
    return bool(recovery) and all(r.passed for r in result.results if r.id not in recovery)


_BROWSER_ONLY = (
    "only a browser", "only the browser", "just a browser", "browser only", "only have a browser",
    "browser terminal", "in the browser", "in a browser", "chromebook", "chrome os", "chromeos",
    "ipad", "tablet", "phone", "can't install", "cannot install", "can not install",
    "not allowed to install", "no admin", "locked down", "locked laptop", "nothing installed",
)


def platform_of(environment: str, *, browser: bool = True) -> str | None:
    """The learner's platform from their own words about their setup: ``browser`` (nothing
    can be installed; only where a browser terminal is offered), else an operating system."""
    env = " ".join(environment.lower().replace("’", "'").split())
    if browser and any(w in env for w in _BROWSER_ONLY):
        return "browser"
    for name, pattern in _SYSTEMS:
        if pattern.search(env):
            return name
    return None


_SYSTEMS = (  # whole words: "machine" is not a Mac, "search" not Arch
    ("windows", re.compile(r"\b(windows|win1[01]|wsl2?|powershell)\b")),
    ("macos", re.compile(r"\b(mac|macos|macbook|osx|os x|darwin)\b")),
    ("linux", re.compile(r"\b(linux|ubuntu|debian|fedora|arch|mint|pop!?_os)\b")),
)


_INTERROGATIVES = frozenset(
    (
        *("what", "why", "how", "when", "where", "which", "who", "whom", "whose"),
        *("can", "could", "should", "would", "will", "may", "might", "must", "shall"),
        *("is", "are", "am", "was", "were", "do", "does", "did"),
        *("isn't", "aren't", "doesn't", "don't", "didn't", "wait"),
    )
)


def is_question(text: str, choices: Sequence[Choice] = ()) -> bool:
    """A question for the crew rather than an answer to the open Think First question.

    Anything ending in ``?`` is a question ("Ready means the kubelet says so?", "Sorry, a
    node is a machine?"), except the answer-shaped ones: a pick of one of the beat's offered
    choices ("2?", "Hands-on?") and a short hesitant answer of up to three words that does not
    open with a question word ("Three?", "Two nodes?"). Text without ``?`` is an answer.

    The bias is deliberate: a question taken for an answer moves the story on and cannot be
    taken back, while an answer taken for a question costs one reply from the crew and the
    question stays open for the learner to answer again.
    """
    stripped = text.strip()
    if not stripped.endswith("?"):
        return False
    words = stripped.rstrip("?").strip().lower().split()
    if not words or words[0].strip(",.:;!") in _INTERROGATIVES:
        return True
    if choices and _exact_choice(choices, " ".join(words)) is not None:
        return False
    return len(words) > _HESITANT_WORDS


_HESITANT_WORDS = 3  # "Three?", "Two Ready nodes?": an answer said with a rising voice


class _Holding:
    """The fallback when no scripted crew was given: one calm line, in character enough."""

    async def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        if turn.purpose == "judge":
            yield "Noted. I'll weigh that answer properly when comms clear; we carry on."
        else:
            yield "Comms are slow right now. Keep working; ask me again in a minute."


async def _close(chunks: AsyncIterator[str]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # a generator that failed while closing has nothing left to say
            log.debug("voice stream close failed", exc_info=True)


async def _collect(chunks: AsyncIterator[str]) -> str:
    return "".join([c async for c in chunks]).strip()
