"""The open task's files land in the learner's workbench home, through the real exec path:
when the task is delivered, and again when a terminal connects (a file the learner edited is
left alone)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.content.course import BeatRef, Course, load_course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.engine import Engine
from bot.engine.ports import Address
from bot.web.missionfiles import MissionFiles, TaskFilesTransport, folder_of
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster
from tests.web.conftest import World, open_terminal

LEARNER = "discord:7"


async def read_on_to_task(engine: Engine, course: Course, mission_id: int,
                          crew: tuple[str, ...] = (LEARNER,)) -> TaskBeat:  # fmt: skip
    """Continue and answer (choice 1, or a sentence), each of ``crew`` in turn, until the
    mission waits on a task."""
    for _ in range(100):
        mission = await engine.store.get_mission(mission_id)
        assert mission is not None
        beat = course.beat(BeatRef(mission.chapter, mission.beat))
        if isinstance(beat, TaskBeat):
            return beat
        for learner in crew:
            if isinstance(beat, QuestionBeat):
                await engine.say(mission_id, learner, "1" if beat.choices else "Pods need room.")
            else:
                await engine.continue_(mission_id, learner)
    raise AssertionError("never reached a task")


async def test_a_task_puts_its_files_in_the_workbench_home(world: World) -> None:
    course = load_course()
    home = await world.add_learner(LEARNER, "kepler-files1")
    files = MissionFiles(world.store, course, world.web.workbenches)
    transport = TaskFilesTransport(RecordingTransport(), files)
    world.web.on_connect = files.for_learner
    engine = Engine(course, world.store, ScriptedCluster(), CannedVoice(), transport)
    try:
        mission = await engine.start(Address("discord", "solo", "7"), LEARNER, "Chen", chapter=2)
        task = await read_on_to_task(engine, course, mission.id)
        await transport.drain()
        folder = home / folder_of(course, course.find_chapter(2))
        assert folder.name == "02-life-support-restoration"
        names = sorted(m.file for m in task.manifests)
        assert sorted(p.name for p in folder.iterdir()) == names
        source = course.manifest_path(course.find_chapter(2), names[0]).read_text()
        assert (folder / names[0]).read_text() == source
        one_shots = len(world.endpoint.one_shots)
        assert one_shots == 1

        # The learner edits one file and loses another; a terminal connection puts back only
        # the missing one, and the shell sees both.
        (folder / names[0]).write_text("# mine\n")
        (folder / names[1]).unlink()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            term = await open_terminal(http, world, await world.link(LEARNER))
            await term.expect("kepler")
            await term.type(f"cat ~/{folder.name}/{names[0]}; ls ~/{folder.name} | wc -l "
                            "| sed 's/^ */count=/'\n")  # fmt: skip
            await term.expect("count=2")
            assert "# mine" in term.screen
            await term.ws.close()
        assert (folder / names[1]).read_text() == course.manifest_path(
            course.find_chapter(2), names[1]).read_text()  # fmt: skip
        assert len(world.endpoint.one_shots) == one_shots + 1
    finally:
        await files.aclose()


async def test_no_workbench_no_exec(world: World) -> None:
    """A paused workbench is left alone: its next terminal connection writes the files."""
    course = load_course()
    await world.add_learner(LEARNER, "kepler-files2")
    await world.pause(LEARNER)
    files = MissionFiles(world.store, course, world.web.workbenches)
    try:
        engine = Engine(course, world.store, ScriptedCluster(), CannedVoice(),
                        TaskFilesTransport(RecordingTransport(), files))  # fmt: skip
        mission = await engine.start(Address("discord", "solo", "7"), LEARNER, "Chen", chapter=3)
        await read_on_to_task(engine, course, mission.id)
        assert await files.for_learner(LEARNER) == []
        assert world.endpoint.one_shots == []
    finally:
        await files.aclose()


def test_folder_names_match_kepler_play(tmp_path: Path) -> None:
    """``kepler play`` writes kepler-manifests/<chapter folder>/: the workbench uses the same
    folder names, so one instruction fits both."""
    course = load_course()
    for index, path in enumerate(course.chapter_dirs):
        assert folder_of(course, index) == path.name


async def test_a_crew_task_reaches_every_members_workbench(world: World) -> None:
    """A study group: the task opens once in the channel; each present member's own workbench
    gets the files, one who left gets none."""
    course = load_course()
    homes = {lid: await world.add_learner(lid, f"kepler-crew{i}")
             for i, lid in enumerate(("discord:7", "discord:8", "discord:9"))}  # fmt: skip
    files = MissionFiles(world.store, course, world.web.workbenches)
    transport = TaskFilesTransport(RecordingTransport(), files)
    engine = Engine(course, world.store, ScriptedCluster(), CannedVoice(), transport)
    try:
        address = Address("discord", "channel", "55")
        mission = await engine.start(address, LEARNER, "Chen", chapter=3, pacing="together")
        await engine.join(mission.id, "discord:8", "Sam")
        await engine.join(mission.id, "discord:9", "Kai")
        await engine.leave(mission.id, "discord:9")
        await read_on_to_task(engine, course, mission.id, (LEARNER, "discord:8"))
        await transport.drain()
        folder = folder_of(course, course.find_chapter(3))
        assert (homes["discord:7"] / folder).is_dir() and (homes["discord:8"] / folder).is_dir()
        assert not (homes["discord:9"] / folder).exists()
        assert sorted(p.name for p in (homes["discord:8"] / folder).iterdir()) == sorted(
            m.file for m in course.tasks(course.find_chapter(3))[0].manifests)  # fmt: skip
    finally:
        await files.aclose()
