"""Turn a beat into the messages a transport shows. Text is passed through exactly as written."""

from __future__ import annotations

from collections.abc import Mapping

from bot.content.course import BeatRef, Course
from bot.content.schema import (
    INSTALLED,
    Beat,
    DebriefBeat,
    Line,
    NarrativeBeat,
    QuestionBeat,
    ReviewBeat,
    ReviewRow,
    SummaryBeat,
    TaskBeat,
)
from bot.engine.ports import Outgoing


def line_message(line: Line) -> Outgoing:
    speaker = line.speaker or ("narrator" if line.style in ("scene", "narration", "stage") else None)
    return Outgoing(kind="line", text=line.text, speaker=speaker, style=line.style)


def task_key(course: Course, ref: BeatRef) -> str:
    """A stable key for a task: chapter id and beat id survive edits to other beats."""
    return f"{course.chapters[ref.chapter].id}/{course.beat(ref).id}"


def task_text(beat: TaskBeat, platform: str | None, *, browser: bool = True) -> str:
    """The task as shown: title, instructions, then the setup notes for the learner's
    ``platform`` (an operating system's with ``any``'s, or ``browser``'s alone). Unknown: every
    note, the browser's only where a browser terminal exists (``browser``; not ``kepler play``)."""
    parts = [f"**{beat.title}**", beat.instructions.strip()]
    setup = {k: v.strip() for k, v in beat.setup.items() if browser or k != "browser"}
    if platform == "browser" and "browser" in setup:
        parts.append(setup["browser"])
    elif platform in INSTALLED and platform in setup:
        parts += [setup[platform]] + ([setup["any"]] if "any" in setup else [])
    else:
        parts += [v for k, v in setup.items() if k != "browser"]
        parts += [setup["browser"]] if "browser" in setup else []
    return "\n\n".join(parts)


def review_result(row: ReviewRow, results: Mapping[str, bool]) -> str:
    """A review row's result: ✅ when everything that judges it holds, ❌ naming what does not."""
    if row.self_assessed:
        return "🔍 yours to judge"
    missing = [j for j in row.judged_by if not results.get(j, False)]
    return "✅" if not missing else "❌ " + ", ".join(missing)


def render(
    course: Course,
    ref: BeatRef,
    beat: Beat,
    *,
    os_name: str | None = None,
    results: Mapping[str, bool] | None = None,
    browser: bool = True,
) -> list[Outgoing]:
    """The messages that present ``beat``; pauses and gates are the engine's business.

    ``results`` (objective or question id → holds/answered) fills the review table's results.
    ``os_name`` is the learner's platform (an operating system or ``browser``); ``browser``
    says whether the transport offers a browser terminal.
    """
    if isinstance(beat, NarrativeBeat | DebriefBeat):
        return [line_message(line) for line in beat.lines]
    if isinstance(beat, QuestionBeat):
        out = [line_message(line) for line in beat.lines[:-1]]
        last = beat.lines[-1]
        choices = [{"value": c.value, "label": c.label} for c in beat.choices]
        out.append(
            Outgoing(
                kind="question",
                text=last.text,
                speaker=last.speaker or ("torres" if last.style == "dialogue" else None),
                style=last.style,
                data={"title": beat.title, "choices": choices, "beat": beat.id},
            )
        )
        return out
    if isinstance(beat, TaskBeat):
        files = tuple(
            course.manifest_path(ref.chapter, m.file).relative_to(course.root).as_posix()
            for m in beat.manifests
        )
        objectives = [{"id": o.id, "title": o.title} for o in beat.objectives]
        return [
            Outgoing(
                kind="task",
                text=task_text(beat, os_name, browser=browser),
                speaker="torres",
                actions=("check", "hint", "manifest") if files else ("check", "hint"),
                attachments=files,
                data={"title": beat.title, "objectives": objectives},
            )
        ]
    if isinstance(beat, ReviewBeat):
        rows = [[r.aspect, r.assessment] for r in beat.rows]
        marks = [review_result(r, results or {}) for r in beat.rows]
        text = "\n".join(f"- **{a}**: {b} {m}" for (a, b), m in zip(rows, marks, strict=True))
        return [
            Outgoing(
                kind="review",
                text=text,
                speaker="torres",
                data={"rows": rows, "results": marks},
            )
        ]
    if isinstance(beat, SummaryBeat):
        text = "\n\n".join(
            f"**{name}**\n" + "\n".join(f"- {item}" for item in items)
            for name, items in beat.sections.items()
        )
        return [
            Outgoing(
                kind="summary",
                text=f"## {beat.heading}\n\n{text}",
                data={"heading": beat.heading, "sections": beat.sections},
            )
        ]
    raise TypeError(f"unknown beat {type(beat).__name__}")
