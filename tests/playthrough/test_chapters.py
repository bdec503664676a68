"""Each chapter played as a learner plays it: the chapter's own commands and files, typed with
real kubectl against the simulated cluster, while the story watches through the live loop of
``kepler play``. The story must unlock by itself within 2 s of the cluster settling.

The 2 s bound is measured from the simulator's settle point (its last write once the
controllers went idle) to the engine's unlock, not from wall-clock command times, so a slow
machine delays both ends alike. Reproduce: ``uv run pytest tests/playthrough -q``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.content.course import Course
from bot.content.schema import QuestionBeat, TaskBeat
from tests.playthrough.conftest import Campaign
from tests.playthrough.player import Player
from tests.playthrough.script import learner_path

CHAPTERS = [1, 2, 3, 4, 5, 6]
UNLOCK_BOUND = float(os.environ.get("KEPLER_UNLOCK_BOUND", "2.0"))  # the 2 s


def _fact_before_task(course: Course, number: int) -> bool:
    """A Think First question reading live state before the task (its read leaves the live
    loop nothing new to look at until the cluster changes)."""
    for beat in course.chapters[course.find_chapter(number)].beats:
        if isinstance(beat, TaskBeat):
            return False
        if isinstance(beat, QuestionBeat) and beat.fact is not None:
            return True
    return False


@pytest.mark.parametrize("number", CHAPTERS)
def test_every_chapter_shows_commands_to_type(course: Course, number: int) -> None:
    path = learner_path(course, number)
    assert path.steps, f"chapter {number} shows no kubectl command in its task"
    if number > 1:
        assert any(s.mutating for s in path.steps), f"chapter {number} changes nothing"
    used = {a for s in path.steps for a in s.argv if a.endswith((".yaml", ".yml"))}
    assert used <= set(path.files), f"chapter {number} uses files it does not provide: " \
        f"{sorted(used - set(path.files))}"


@pytest.mark.parametrize("number", CHAPTERS)
async def test_the_chapter_unlocks_by_itself(course: Course, campaign: Campaign, number: int,
                                             tmp_path: Path, request: pytest.FixtureRequest
                                             ) -> None:
    if number == 1 and _fact_before_task(course, 1):
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "chapter 1's work (kubectl get/describe nodes) changes nothing in the cluster, and "
            "the live loop (bot/engine/live.py) re-checks only on a change after the task's "
            "kinds were read once (here by the Think First fact, ready_nodes): objective "
            "ch01 nodes-ready is never re-judged, so the story waits for an explicit check")))
    sim = campaign.before(number, tmp_path)
    path = learner_path(course, number)
    async with Player(course, sim, tmp_path) as player:
        await player.open_task(number)
        await player.read_the_task()
        await player.type(path)
        delay = await player.unlock_delay(UNLOCK_BOUND)
        assert await player.verify() == 0, "kepler verify disagrees with the live unlock"
    print(f"chapter {number}: unlocked {delay:+.2f} s after the cluster settled")
    assert delay <= UNLOCK_BOUND


@pytest.mark.parametrize("number", CHAPTERS)
async def test_nothing_unlocks_before_the_learner_acts(course: Course, campaign: Campaign,
                                                       number: int, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    sim = campaign.before(number, tmp_path)
    async with Player(course, sim, tmp_path) as player:
        await player.open_task(number)
        await player.check()  # the learner asks for a check before doing anything
        if number == 1:
            # the survey task holds on any working cluster, so chapter 1 waits instead for
            # the learner's own report of what `kubectl get nodes` shows
            mission = await player.engine.store.get_mission(player.mission_id)
            assert mission is not None
            beat = course.beat_at(mission.chapter, mission.beat)
            assert mission.chapter == 1 and isinstance(beat, QuestionBeat), beat
            assert beat.id == "survey-report", beat.id
            return
        assert player.unlocked_at is None, f"chapter {number} unlocked with no work done"
        assert await player.failing(), "the check found nothing open"
