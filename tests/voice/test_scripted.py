"""The scripted crew: in character, speaking only from the turn's state, in the transport's words."""

from __future__ import annotations

import re

from bot.content.schema import Persona
from bot.voice.scripted import CommandWords, ScriptedVoice
from tests.voice.conftest import collect, turn

# What the crew must never say over a board it cannot see (issue 13: each was seen).
UNREACHABLE = re.compile(r"comm channel|is down|unreachable|can't reach|cannot reach", re.I)


async def test_judge_relates_answer_to_fact_and_intent(personas: dict[str, Persona]) -> None:
    voice = ScriptedVoice(personas, seed=1)
    t = turn(
        purpose="judge",
        text="I think 2",
        beat_text="How many sections are alive?",
        intent="Knows to count Ready nodes",
        fact="live cluster: 3 ready nodes (the learner said 2)",
    )
    out = await collect(voice.reply(t))
    assert "You said 2; the display shows 3 ready nodes." in out
    assert "Look at it again" in out
    assert "count Ready nodes" in out
    assert "The display agrees" not in out


async def test_judge_without_a_number_asks_for_it() -> None:
    t = turn(purpose="judge", text="a few, I guess",
             fact="live cluster: 1 ready node (the learner gave no number)")  # fmt: skip
    out = ScriptedVoice().line(t)
    assert "Give me the number" in out and "1 ready node" in out
    assert "agrees" not in out


async def test_judge_agreeing_fact_says_so_and_nothing_contrary() -> None:
    out = ScriptedVoice().line(turn(purpose="judge", fact="live cluster: 3 ready nodes"))
    assert "The display agrees: 3 ready nodes." in out
    assert not re.search(r"not yet|ask for a hint|again", out, re.I), out


async def test_answer_points_at_first_failing_objective_and_its_next_hint(
    personas: dict[str, Persona],
) -> None:
    t = turn(hint="Compare the STATUS column with what a healthy pod shows.")
    out = await collect(ScriptedVoice(personas).reply(t))
    assert "Life support pods running" in out and "CrashLoopBackOff" in out
    assert "Compare the STATUS column with what a healthy pod shows." in out
    assert "Scrubbers online" not in out
    assert "`check`" in out
    assert "ask for a hint" not in out.lower()  # it gives the hint instead of sending for one


async def test_command_words_come_from_the_transport() -> None:
    discord = CommandWords(check="`/check`", hint="`/hint`", proceed="press Continue")
    voice = ScriptedVoice(commands=discord)
    failing = voice.line(turn())
    assert "`/check`" in failing and "`check`" not in failing.replace("`/check`", "")
    green = voice.line(turn(objectives=(("A", True, ""),)))
    assert "`/check`" in green
    idle = voice.line(turn(objectives=(), beat_text=""))
    assert "press Continue" in idle


def test_all_green_never_says_not_yet() -> None:
    out = ScriptedVoice().line(turn(objectives=(("A", True, ""), ("B", True, ""))))
    assert "green" in out
    assert not re.search(r"not yet|again|stuck|hint", out, re.I), out


def test_no_line_claims_the_crew_is_unreachable(personas: dict[str, Persona]) -> None:
    voice = ScriptedVoice(personas, seed=0)
    turns = [
        turn(),
        turn(objectives=()),
        turn(objectives=(), beat_text=""),
        turn(objectives=(("A", True, ""),)),
        turn(purpose="judge", intent="Knows pods.", fact=""),
        turn(purpose="judge", intent="", fact="live cluster: 2 pods"),
    ]
    for t in turns:
        for i in range(5):
            out = voice.line(turn(**{**t.__dict__, "text": f"question {i}"}))
            assert not UNREACHABLE.search(out), out


def test_learner_name_is_used() -> None:
    out = ScriptedVoice().line(turn(learner_name="Sam Rivera"))
    assert out.startswith("Rivera,")
