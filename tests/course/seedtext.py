"""Read the seed story into the pieces the course must carry verbatim, and collect course text.

The seed is markdown with ``<!-- NARRATIVE -->`` / ``<!-- INSTRUCTION -->`` markers. Story text
is everything after the first NARRATIVE marker except the technical task sections (from
``**The Task**`` to the next NARRATIVE marker), code blocks, headings, rules and tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.content.course import Course
from bot.content.schema import Line, ReviewBeat, SummaryBeat, TaskBeat

SEED_NAME = "000_2bb9112117a961ba.txt"
STRUCTURAL = {"Think First", "The Task", "Verification", "Review"}


def seed_path() -> Path | None:
    """The seed beside the checkout (``../shared/seeds``), else where ``KEPLER_SEED`` points."""
    candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "seeds" / SEED_NAME]
    env = os.environ.get("KEPLER_SEED")
    if env:
        p = Path(env)
        candidates.append(p / SEED_NAME if p.is_dir() else p)
    return next((c for c in candidates if c.is_file()), None)


def norm(text: str) -> str:
    return " ".join(text.split())


@dataclass
class SeedStory:
    scenes: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    dialogue: list[str] = field(default_factory=list)
    narration: list[str] = field(default_factory=list)
    review_rows: list[tuple[str, str]] = field(default_factory=list)
    headed_lists: dict[str, list[str]] = field(default_factory=dict)


def _paragraphs(text: str) -> Iterator[list[str]]:
    lines = text.splitlines()
    start = lines.index("<!-- NARRATIVE -->")
    para: list[str] = []
    in_code = in_task = False
    for raw in lines[start:]:
        line = raw.rstrip()
        if line.startswith("```"):
            in_code = not in_code
            if para and not in_task:
                yield para
            para = []
            continue
        if in_code:
            continue
        if line.strip() == "**The Task**":
            in_task = True
        elif line.strip() == "<!-- NARRATIVE -->":
            in_task = False
        if not line.strip():
            if para and not in_task:
                yield para
            para = []
            continue
        if not in_task:
            para.append(line)
    if para:
        yield para


def parse_seed(text: str) -> SeedStory:
    story = SeedStory()
    for para in _paragraphs(text):
        first = para[0]
        whole = "\n".join(para)
        if first.startswith(("<!--", "#")) or first.strip() == "---":
            continue
        if first.startswith("|"):
            for row in para[2:]:
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                story.review_rows.append((cells[0], cells[1]))
        elif first.startswith("> **[Scene: "):
            story.scenes.append(norm(whole.removeprefix("> **[Scene: ").removesuffix("]**")))
        elif len(para) == 1 and first.startswith("**") and first.endswith("**"):
            inner = first[2:-2]
            if inner not in STRUCTURAL:
                story.stages.append(norm(inner))
        elif first.startswith("**") and all(p.startswith("- ") for p in para[1:]):
            story.headed_lists[first.strip("*")] = [norm(p[2:]) for p in para[1:]]
        elif first.startswith('"'):
            story.dialogue.append(norm(whole))
        else:
            story.narration.append(norm(whole))
    return story


def line_sequences(course: Course) -> list[list[Line]]:
    """Every run of consecutive lines in the course: beats' lines and drills' lines."""
    out: list[list[Line]] = []
    for chapter in course.chapters:
        for beat in chapter.beats:
            lines = getattr(beat, "lines", None)
            if lines:
                out.append(list(lines))
            if isinstance(beat, TaskBeat) and beat.drill and beat.drill.lines:
                out.append(list(beat.drill.lines))
    return out


def missing_story(story: SeedStory, sequences: list[list[Line]]) -> list[str]:
    """Seed texts the course does not carry, as many times as the seed has them."""
    scenes = [norm(ln.scene) for seq in sequences for ln in seq if ln.scene is not None]
    stages = [norm(ln.stage) for seq in sequences for ln in seq if ln.stage is not None]
    # A seed paragraph may be split over consecutive lines; joined with a space it is whole.
    joined = [" ".join(norm(ln.text) for ln in seq) for seq in sequences]
    out: list[str] = []

    def need(kind: str, texts: list[str], have) -> None:
        for text in dict.fromkeys(texts):
            want = texts.count(text)
            got = have(text)
            if got < want:
                out.append(f"{kind} (seed has it {want}x, course {got}x): {text[:100]}")

    need("scene", story.scenes, scenes.count)
    need("stage direction", story.stages, stages.count)
    need("dialogue", story.dialogue, lambda t: sum(j.count(t) for j in joined))
    need("narration", story.narration, lambda t: sum(j.count(t) for j in joined))
    return out


def missing_tables(story: SeedStory, course: Course) -> list[str]:
    rows = {
        (r.aspect, r.assessment)
        for ch in course.chapters
        for b in ch.beats
        if isinstance(b, ReviewBeat)
        for r in b.rows
    }
    sections: dict[str, list[str]] = {}
    for ch in course.chapters:
        for b in ch.beats:
            if isinstance(b, SummaryBeat):
                sections.update({k: [norm(i) for i in v] for k, v in b.sections.items()})
    out = [f"review row: {a} | {b}" for a, b in story.review_rows if (a, b) not in rows]
    out += [
        f"summary section: {head}"
        for head, items in story.headed_lists.items()
        if sections.get(head) != items
    ]
    return out
