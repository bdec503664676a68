"""Discord's wording comes from the transport's own command words and the engine's check lines.

The crew is handed Discord's words (``render.COMMANDS``) the same way the terminal hands in its
own; Discord no longer rewrites the crew's text. A check result is laid out from the engine's
``CheckLine`` s, whatever its plain text says.
"""

from __future__ import annotations

from bot.content.course import Course
from bot.content.schema import TaskBeat
from bot.engine.feedback import status_message
from bot.engine.ports import Outgoing
from bot.transports.discord.render import COMMANDS, render, wording
from bot.voice import ScriptedVoice
from bot.voice.prompts import build_request
from sandbox.objectives import ObjectiveResult
from sandbox.results import CheckResult
from tests.voice.conftest import turn


def _first_task(course: Course) -> TaskBeat:
    for chapter in course.chapters:
        for beat in chapter.beats:
            if isinstance(beat, TaskBeat) and len(beat.objectives) >= 2:
                return beat
    raise AssertionError("the course has a task with two objectives")


def test_the_check_reply_is_laid_out_from_the_engines_lines(course: Course) -> None:
    task = _first_task(course)
    first, second = task.objectives[:2]
    result = CheckResult(results=[ObjectiveResult(first.id, True, ""),
                                  ObjectiveResult(second.id, False, "no pod is Ready")])  # fmt: skip
    status = status_message(task, result, {})  # the default profile: reasons are given
    # the plain text is not what Discord reads: the structured lines are
    shown = Outgoing(kind=status.kind, text="(plain text no transport should show)",
                     speaker=status.speaker, data=status.data)  # fmt: skip
    [piece] = render(shown, course, persona_mode=False)
    lines = piece.embeds[0].description.splitlines()
    assert lines == [f"❌ {second.title} — no pod is Ready", f"✅ {first.title}"]


def test_discord_text_is_not_rewritten_and_keeps_out_terminal_sentences() -> None:
    # the crew's words are already Discord's; a quoted terminal command is left as written
    assert wording("Type `check` in the terminal.") == "Type `check` in the terminal."
    text = "Apply it. Adapt the copy that `kepler play` writes for you. Then check."
    assert wording(text) == "Apply it. Then check."


def test_the_scripted_crew_and_the_model_are_handed_discords_words(course: Course) -> None:
    line = ScriptedVoice(course.personas, commands=COMMANDS).line(turn())
    assert "`/check`" in line and "`check`" not in line
    request = build_request(turn(), model="m", personas=course.personas, commands=COMMANDS)
    context = request["messages"][-1]["content"][-1]["text"]
    assert "`/hint` or `/check`" in context and "`check`" not in context
    terminal = build_request(turn(), model="m", personas=course.personas)
    assert "`hint` or `check`" in terminal["messages"][-1]["content"][-1]["text"]
