"""The learner's platform, from their answer to the opening's setup question, picks chapter 1's
setup notes: an operating system's install notes, or, for a learner with only a browser, the
browser terminal (``/terminal``), which only Discord offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.content.course import BeatRef, Course, load_course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.beats import task_text
from bot.engine.engine import Engine, platform_of
from bot.engine.ports import Address
from bot.store.sqlite import SQLiteStore
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster


@pytest.mark.parametrize(("said", "platform"), [
    ("Linux machine, bash, vim; kubectl and kind installed", "linux"),
    ("MacBook with zsh and VS Code", "macos"),
    ("Windows 11, PowerShell, Notepad++", "windows"),
    ("Only a browser, I'm on an iPad", "browser"),
    ("A Chromebook", "browser"),
    ("Work laptop running Windows, but I can't install anything", "browser"),
    ("Ubuntu, and Firefox as my browser", "linux"),
    ("a machine with zsh", None),
])  # fmt: skip
def test_platform_from_the_learners_words(said: str, platform: str | None) -> None:
    assert platform_of(said) == platform
    if platform == "browser":  # kepler play: the learner is in a terminal already
        assert platform_of(said, browser=False) != "browser"


def _survey(course: Course) -> TaskBeat:
    [task] = course.tasks(course.find_chapter(1))
    return task


def test_setup_notes_per_platform() -> None:
    task = _survey(load_course())
    browser = task_text(task, "browser")
    assert "/terminal" in browser and "winget" not in browser and "brew" not in browser
    linux = task_text(task, "linux")
    assert "package manager" in linux and "kubectl version --client" in linux
    assert "Only a browser" not in linux and "winget" not in linux
    unknown = task_text(task, None)
    assert all(v.strip() in unknown for v in task.setup.values())
    in_terminal = task_text(task, None, browser=False)
    assert "Only a browser" not in in_terminal and "brew install kubectl" in in_terminal


async def _play_opening(tmp_path: Path, address: Address, environment: str) -> str:
    """Answer the opening (the setup question with ``environment``) and read on to chapter 1's
    task: the task text as delivered."""
    course = load_course()
    transport = RecordingTransport()
    async with SQLiteStore(tmp_path / "kepler.db") as store:
        engine = Engine(course, store, ScriptedCluster(), CannedVoice(), transport)
        mission = await engine.start(address, "learner:1", "Chen")
        for _ in range(60):
            m = await store.get_mission(mission.id)
            assert m is not None
            beat = course.beat(BeatRef(m.chapter, m.beat))
            if isinstance(beat, TaskBeat):
                break
            if isinstance(beat, QuestionBeat):
                answer = environment if beat.profile == "environment" else (
                    "1" if beat.choices else "Many nodes as one system.")
                await engine.say(mission.id, "learner:1", answer)
            else:
                await engine.continue_(mission.id, "learner:1")
        [task] = [m for _, m, _ in transport.delivered if m.kind == "task"]
        opening = [m.text for _, m, _ in transport.delivered if m.kind == "line"]
        assert any("`/terminal`" in t and "no install" in t for t in opening)
        return task.text


async def test_a_browser_only_learner_on_discord_is_sent_to_the_terminal(tmp_path: Path) -> None:
    text = await _play_opening(tmp_path, Address("discord", "solo", "1"),
                               "I only have a browser on a school Chromebook")  # fmt: skip
    assert "already connected" in text and "leave out the `export` line" in text
    assert "winget" not in text and "brew install" not in text


async def test_kepler_play_never_offers_the_browser_terminal(tmp_path: Path) -> None:
    text = await _play_opening(tmp_path, Address("terminal", "solo", "chen"),
                               "Chromebook with the Linux terminal")  # fmt: skip
    assert "Only a browser" not in text
    assert "package manager" in text  # the Linux notes: it has a terminal with Linux
