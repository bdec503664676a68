"""A bot process for the kill -9 drill: the real engine and SQLite store, a cluster where the
learner's work is done, and a transport that posts to a file.

    python -m tests.drills.unlock_worker DB POSTED DELAY

The transport appends each message's key and kind to POSTED (flushed and fsynced: what
Discord has shown) and drops a key it has already posted, as Discord drops a repeated nonce;
a dropped repeat goes to POSTED.dupes. After each post it sleeps DELAY seconds, before the
engine marks the message sent: the window a SIGKILL lands in. On start it first sends what
the outbox still holds, then plays chapter 2 until its task unlocks and chapter 3's task is
reached.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.content.course import load_course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.engine import Engine
from bot.engine.ports import Address, Outgoing
from bot.store.sqlite import SQLiteStore
from tests.fakes import CannedVoice, ScriptedCluster

LEARNER = "discord:7"
ADDRESS = Address("discord", "solo", "7")


class FileTransport:
    def __init__(self, path: Path, delay: float):
        self.path = path
        self.delay = delay
        lines = path.read_text().splitlines() if path.exists() else []
        self.posted = {line.split("\t")[0] for line in lines}

    def _append(self, path: Path, line: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        if key in self.posted:
            self._append(self.path.with_suffix(".dupes"), key)
            return
        self._append(self.path, f"{key}\t{message.kind}")
        self.posted.add(key)
        await asyncio.sleep(self.delay)

    async def stream(self, address: Address, speaker: str, chunks):  # type: ignore[no-untyped-def]
        return "".join([c async for c in chunks])


async def main(db: Path, posted: Path, delay: float) -> None:
    course = load_course()
    cluster = ScriptedCluster()
    cluster.passing[LEARNER] = {o.id for c in range(len(course.chapters))
                                for t in course.tasks(c) for o in t.objectives}  # fmt: skip
    async with SQLiteStore(db) as store:
        engine = Engine(course, store, cluster, CannedVoice(), FileTransport(posted, delay))
        await engine.deliver_all()
        mission = await store.find_mission(ADDRESS)
        if mission is None:
            mission = await engine.start(ADDRESS, LEARNER, "Chen", chapter=2)
        tasks_done = 0
        for _ in range(40):
            mission = await store.get_mission(mission.id)
            assert mission is not None
            beat = course.beat_at(mission.chapter, mission.beat)
            if isinstance(beat, TaskBeat):
                if course.chapters[mission.chapter].number == 3:
                    break
                await engine.check(mission.id, LEARNER, explicit=False)
                tasks_done += 1
            elif isinstance(beat, QuestionBeat):
                await engine.say(mission.id, LEARNER, "1")
            else:
                await engine.continue_(mission.id, LEARNER)
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])))
