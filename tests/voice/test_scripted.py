"""The scripted crew: in character, grounded in the turn, deterministic for a seed."""

from __future__ import annotations

from bot.content.schema import Persona
from bot.voice.scripted import ScriptedVoice
from tests.voice.conftest import collect, turn


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
    assert "count Ready nodes" in out
    assert any(line.replace("Chen", "Chen") in out for line in personas["torres"].fallback)


async def test_judge_agreeing_fact() -> None:
    out = ScriptedVoice().line(turn(purpose="judge", fact="live cluster: 3 ready nodes"))
    assert "The display agrees: 3 ready nodes." in out


async def test_answer_points_at_first_failing_objective(personas: dict[str, Persona]) -> None:
    out = await collect(ScriptedVoice(personas).reply(turn()))
    assert "Life support pods running" in out and "CrashLoopBackOff" in out
    assert "`hint`" in out and "`check`" in out
    assert "Scrubbers online" not in out


async def test_answer_without_objectives_uses_persona_fallback(
    personas: dict[str, Persona],
) -> None:
    t = turn(objectives=(), learner_name="Rivera")
    out = ScriptedVoice(personas, seed=3).line(t)
    assert out in {f.replace("Chen", "Rivera") for f in personas["torres"].fallback}


def test_deterministic_for_a_seed(personas: dict[str, Persona]) -> None:
    t = turn(objectives=())
    picks = {ScriptedVoice(personas, seed=7).line(t) for _ in range(5)}
    assert len(picks) == 1
    texts = [turn(objectives=(), text=f"question {i}") for i in range(12)]
    assert len({ScriptedVoice(personas, seed=7).line(x) for x in texts}) > 1


def test_all_green() -> None:
    out = ScriptedVoice().line(turn(objectives=(("A", True, ""),)))
    assert "green" in out
