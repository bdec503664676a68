"""Work that held and then broke is announced; questions during a task get the next hint; the
story's drill waits for the learner's own check; a report must match the live cluster."""

from __future__ import annotations

from bot.content.course import load_course
from bot.content.schema import TaskBeat
from bot.engine.engine import Engine
from bot.engine.ports import Address
from bot.store.sqlite import SQLiteStore
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster

DM = Address("terminal", "solo", "alex")


async def _at_task(engine: Engine) -> int:
    mission = await engine.start(DM, "alex", "Alex Chen")
    await engine.say(mission.id, "alex", "1")  # theory first
    await engine.say(mission.id, "alex", "1")  # problems pointed out at once
    await engine.continue_(mission.id, "alex")
    await engine.say(mission.id, "alex", "Three")  # the Think First answer
    return mission.id


async def test_work_that_comes_undone_is_announced(
    engine: Engine, transport: RecordingTransport, cluster: ScriptedCluster
) -> None:
    mission_id = await _at_task(engine)
    assert transport.kinds()[-1] == "task"
    cluster.passing["alex"] = {"pod-running"}
    await engine.check(mission_id, "alex", explicit=False)
    assert transport.kinds()[-1] == "task"  # a quiet learner is not told about progress
    cluster.passing["alex"] = set()  # the pod was deleted
    await engine.check(mission_id, "alex", explicit=False)
    status = transport.delivered[-1][1]
    assert status.kind == "status"
    lines = status.data["lines"]
    assert [line["mark"] for line in lines] == ["❌", "❌"]
    assert lines[0]["title"] == "Backup pod running"
    assert status.text.splitlines()[0] == "❌ Backup pod running — The backup pod is not running."
    # the same broken state again is not announced twice
    await engine.check(mission_id, "alex", explicit=False)
    assert transport.delivered[-1][1] is status


async def test_a_question_during_a_task_carries_the_next_hint(
    engine: Engine, voice: CannedVoice, cluster: ScriptedCluster
) -> None:
    mission_id = await _at_task(engine)
    cluster.passing["alex"] = {"no-failures"}
    await engine.check(mission_id, "alex")
    await engine.say(mission_id, "alex", "what should I look at?")
    turn = voice.turns[-1]
    assert turn.purpose == "answer"
    assert turn.hint == "Look at pods."
    assert turn.objectives[0] == ("Backup pod running", False, "The backup pod is not running.")
    await engine.say(mission_id, "alex", "and now?")
    assert voice.turns[-1].hint == "Look at its status."


async def test_the_drill_waits_for_the_learners_own_check(tmp_path) -> None:
    course = load_course()
    cluster = ScriptedCluster()
    async with SQLiteStore(tmp_path / "k.db") as store:
        engine = Engine(course, store, cluster, CannedVoice(), RecordingTransport())
        mission = await engine.start(DM, "alex", "Alex Chen", chapter=6)
        chapter = course.find_chapter(6)
        task_at = next(i for i, b in enumerate(course.chapters[chapter].beats)
                       if isinstance(b, TaskBeat))
        while (await store.get_mission(mission.id)).beat < task_at:
            m = await store.get_mission(mission.id)
            beat = course.chapters[chapter].beats[m.beat]
            if beat.type == "question":
                await engine.say(mission.id, "alex", "Scale on CPU within bounds.")
            else:
                await engine.continue_(mission.id, "alex")
        (task,) = course.tasks(chapter)
        cluster.passing["alex"] = {o.id for o in task.objectives} - {"self-healing"}
        await engine.check(mission.id, "alex", explicit=False)
        assert cluster.drills == []  # the watch from step 6 may not be running yet
        await engine.check(mission.id, "alex")
        assert [d.namespace for _, d in cluster.drills] == ["research"]


async def test_status_counts_chapters(engine: Engine) -> None:
    mission_id = await _at_task(engine)
    [note] = await engine.status(mission_id, "alex")
    assert note.text.startswith("Chapter 1 of 1: First")
