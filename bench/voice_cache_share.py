"""How much of a typical voice request's input sits in the cached prefix.

Builds the exact request :class:`bot.voice.claude.ClaudeVoice` would send for a typical turn
(real personas, a real task beat from the course when it loads, the read-only tools, a
conversation summary and two recent exchanges) and estimates tokens as characters / 4 for
each part. Prints the share of input tokens up to each cache breakpoint.

    uv run python bench/voice_cache_share.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.content.schema import Persona, QuestionBeat, TaskBeat
from bot.engine.ports import VoiceTurn
from bot.store.records import TranscriptEntry
from bot.voice import load_personas
from bot.voice.claude import DEFAULT_MODEL
from bot.voice.memory import Recall
from bot.voice.prompts import build_request, prefix_tokens
from bot.voice.tools import TOOL_DEFINITIONS

MINIMUM_CACHEABLE = 1024  # tokens, for Sonnet-class models

_FALLBACK_TASK = (
    "Deploy the backup life support\n"
    "Atmospheric readings are dropping in sections C and D. Apply `life-support.yaml`, watch "
    "the pods come up with `kubectl get pods -n life-support -w`, then scale the deployment "
    "to two replicas so one failure can't take the air out of a section. " * 8
)


def _turns() -> list[TranscriptEntry]:
    now = time.time()
    lines = [
        ("learner", "chen", "What does the READY column mean exactly? Mine says 0/1."),
        (
            "crew",
            "torres",
            "It's the unit's own report, Chen: containers ready out of "
            "containers declared. 0/1 means the single unit aboard hasn't passed its health check "
            "yet. What does the STATUS column say next to it?",
        ),
        ("learner", "chen", "It says ImagePullBackOff."),
        (
            "crew",
            "torres",
            "Then the unit is still waiting for its parts from the supply ship. "
            "Describe the pod and read the Events at the bottom: the image name will tell you "
            "which crate never arrived.",
        ),
    ]
    return [TranscriptEntry(i + 1, role, who, text, 0, now) for i, (role, who, text) in
            enumerate(lines)]  # fmt: skip


SUMMARY = (
    "- Chen surveyed the station's nodes and found two Ready sections.\n"
    "- Torres explained pods as sealed units set down on healthy decks.\n"
    "- Chen prefers hands-on work and wants feedback after each task."
)


def typical_turns() -> tuple[dict[str, Persona], list[tuple[str, VoiceTurn]]]:
    """A free-text question on a task, and a judged Think First answer."""
    personas = load_personas()
    task_text = _FALLBACK_TASK
    chapter = ("ch02-life-support-restoration", "Life Support Restoration")
    question, intent = "How many nodes do you expect to be Ready?", ""
    objectives: list[tuple[str, bool, str]] = [
        ("Backup atmospheric processor running", True, ""),
        ("Redundant life support deployed", False, "deployment life-support has 0/2 ready"),
    ]
    try:
        from bot.content.course import load_course

        course = load_course()
        ch = next(c for c in course.chapters if c.number == 2)
        task = next(b for b in ch.beats if isinstance(b, TaskBeat))
        chapter = (ch.id, ch.title)
        task_text = f"{task.title}\n{task.instructions}"
        objectives = [(o.title, i == 0, "" if i == 0 else "not yet: 0/2 ready")
                      for i, o in enumerate(task.objectives)]  # fmt: skip
        q = next((b for c in course.chapters for b in c.beats
                  if isinstance(b, QuestionBeat) and b.fact is not None), None)  # fmt: skip
        if q is not None:
            question = " ".join(line.text for line in q.lines)
            intent = q.intent
    except Exception as exc:  # the bench still runs while chapters are being written
        print(f"(course not loaded: {exc}; using a stand-in task)")
    common = dict(learner_id="chen", learner_name="Alex Chen", scope="learner:chen",
                  persona="torres", chapter_id=chapter[0], chapter_title=chapter[1],
                  profile={"style": "hands-on", "review": "after", "feedback": "direct",
                           "environment": "kind"}, has_cluster=True, guild="g1")  # fmt: skip
    answer = VoiceTurn(purpose="answer", text="I applied it but the pods still aren't Ready. "
                       "What am I missing?", beat_id="deploy-life-support", beat_text=task_text,
                       objectives=objectives, **common)  # type: ignore[arg-type]  # fmt: skip
    judge = VoiceTurn(purpose="judge", text="Probably 2, one control plane and one worker.",
                      beat_id="think-nodes", beat_text=question, intent=intent,
                      fact="live cluster: 3 ready nodes (the learner said 2)",
                      **common)  # type: ignore[arg-type]  # fmt: skip
    return personas, [("answer on a task", answer), ("judge a Think First answer", judge)]


def measure() -> list[tuple[str, list[tuple[str, int]]]]:
    personas, turns = typical_turns()
    recall = Recall(SUMMARY, _turns())
    out = []
    for label, turn in turns:
        request = build_request(turn, model=DEFAULT_MODEL, personas=personas, recall=recall,
                                tools=TOOL_DEFINITIONS)  # fmt: skip
        out.append((label, prefix_tokens(request)))
    return out


def main() -> None:
    for label, marks in measure():
        total = marks[-1][1]
        print(f"{label}: ~{total} input tokens")
        for name, n in marks[:-1]:
            where = "chapter (all learners)" if name == "breakpoint 1" else "beat (same beat)"
            print(f"  cached up to {name} [{where}]: ~{n} tokens = {n / total:.0%}")
        first = marks[0][1]
        if first < MINIMUM_CACHEABLE:
            print(f"  WARNING: first prefix below the {MINIMUM_CACHEABLE}-token cache minimum")


if __name__ == "__main__":
    main()
