"""A task's files in the learner's workbench: ``~/<chapter folder>/``, as ``kepler play`` writes
them into ``kepler-manifests/<chapter folder>/``.

A learner with only a browser cannot save a Discord attachment where their shell can read it,
so the bot puts the open task's manifests into the workbench's home itself, through the same
``pods/exec`` path as the terminal (a one-shot ``sh -c``, no terminal, the files' text as its
arguments). It does so when a task with files is delivered (:class:`TaskFilesTransport`) and
when a terminal connects (the workbench may have been paused when the task opened). A file
already there is left alone: the learner may have edited it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import aiohttp

from bot.content.course import BeatRef, Course
from bot.content.schema import TaskBeat
from bot.engine.ports import Address, Outgoing, Transport
from bot.web.kexec import ExecFailed, run_exec
from bot.web.server import Workbenches

log = logging.getLogger(__name__)

# $1 the folder under $HOME, then name/text pairs; prints each file it wrote.
SCRIPT = (
    'set -e; cd "$HOME"; d="$1"; shift; mkdir -p "$d"; '
    'while [ "$#" -ge 2 ]; do '
    'if [ ! -e "$d/$1" ]; then printf "%s" "$2" > "$d/$1"; echo "$d/$1"; fi; shift 2; done'
)


def folder_of(course: Course, chapter: int) -> str:
    """The chapter's folder name (``02-life-support-restoration``): the learner's ``~/`` folder."""
    return course.chapter_dirs[chapter].name


def with_folder_note(message: Outgoing) -> Outgoing:
    """A task with files, telling a browser-terminal learner where the bot put them."""
    if message.kind != "task" or not message.attachments:
        return message
    folder = PurePosixPath(message.attachments[0]).parent.parent.name
    note = (f"In your browser terminal (`/terminal`) these files are already in `~/{folder}/`: "
            f"`cd ~/{folder}` first, then type the commands as they are.")  # fmt: skip
    return replace(message, text=f"{message.text}\n\n{note}")


def task_files(course: Course, chapter: int, beat: TaskBeat) -> dict[str, str]:
    """The task's manifests by file name, as the learner gets them."""
    out: dict[str, str] = {}
    for m in beat.manifests:
        name = PurePosixPath(m.file).name
        if not name or name.startswith(".") or name != m.file:
            raise ValueError(f"manifest {m.file!r} is not a plain file name")
        out[name] = course.manifest_path(chapter, m.file).read_text(encoding="utf-8")
    return out


class MissionFiles:
    """Writes the open task's files into a learner's workbench home."""

    def __init__(self, store: Any, course: Course, workbenches: Workbenches,
                 *, timeout: float = 20.0):  # fmt: skip
        self.store = store
        self.course = course
        self.workbenches = workbenches
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def for_learner(self, learner: str) -> list[str]:
        """The files of every task the learner is on now; the paths written (``~``-relative).
        Nothing when their workbench is not running (the next terminal connection writes)."""
        wb = await self.workbenches.find(learner)
        if wb.phase != "ready":
            return []
        written: list[str] = []
        for mission in await self.store.missions_of(learner):
            beat = self.course.beat(BeatRef(mission.chapter, mission.beat))
            if isinstance(beat, TaskBeat) and beat.manifests:
                written += await self._put(learner, mission.chapter, beat)
        return written

    async def for_address(self, address: Address) -> None:
        """A task opened where ``address`` points: every present crew member gets its files."""
        mission = await self.store.find_mission(address)
        if mission is None:
            return
        for member in await self.store.members(mission.id):
            if not member.left:
                try:
                    await self.for_learner(member.learner_id)
                except (ExecFailed, LookupError, OSError, aiohttp.ClientError) as exc:
                    log.info("mission files not written: %s", exc)

    async def _put(self, learner: str, chapter: int, beat: TaskBeat) -> list[str]:
        files = task_files(self.course, chapter, beat)
        args = [folder_of(self.course, chapter)]
        for name, text in files.items():
            args += [name, text]
        target = await self.workbenches.target(learner)
        target = replace(target, command=("sh", "-c", SCRIPT, "kepler-files", *args))
        out = await run_exec(self._client(), target, timeout=self.timeout)
        return [line for line in out.decode(errors="replace").splitlines() if line.strip()]


class TaskFilesTransport:
    """The engine's transport, plus one duty: a task that comes with files puts them into the
    workbench of each crew member (in the background: delivery never waits on a pod)."""

    def __init__(self, inner: Transport, files: MissionFiles, *,
                 spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None):  # fmt: skip
        """``spawn`` runs the background work (``kepler serve``'s, awaited on shutdown); by
        default this transport keeps its own (:meth:`drain`)."""
        self.inner = inner
        self.files = files
        self._work: set[asyncio.Task[None]] = set()
        self._spawner = spawn

    def __getattr__(self, name: str) -> Any:  # forget_sent and the inner transport's extras
        return getattr(self.inner, name)

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        await self.inner.deliver(address, message, key)
        if message.kind == "task" and message.attachments:
            self._spawn(self.files.for_address(address))

    async def stream(self, address: Address, speaker: str, chunks: Any) -> str:
        return await self.inner.stream(address, speaker, chunks)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if self._spawner is not None:
            self._spawner(work)
            return
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def drain(self) -> None:
        """Wait for the files being written now (shutdown, and tests that read them)."""
        while self._work:
            await asyncio.gather(*list(self._work), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._work):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._work), return_exceptions=True)

