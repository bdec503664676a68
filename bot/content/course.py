"""The whole course: chapters in order, the personas who speak in them, and beat addressing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.content.loader import ContentError, Problem, load_chapter, load_persona
from bot.content.schema import Beat, Chapter, Persona, TaskBeat

ROOT = Path(__file__).resolve().parents[2]
# A line ``{{yaml FILE}}`` in a task's instructions shows that manifest, as the seed shows its
# YAML for the learner to read, type and adapt. The file under manifests/ is the one source:
# what the learner reads is exactly what catch-up and the tests apply.
SHOW_YAML = re.compile(r"^(?P<indent>[ \t]*)\{\{yaml (?P<file>[A-Za-z0-9._-]+)\}\}[ \t]*$", re.M)
DEFAULT_CHAPTERS = ROOT / "chapters"
DEFAULT_PERSONAS = ROOT / "personas"


@dataclass(frozen=True)
class BeatRef:
    """A beat's place in the course: chapter position and beat position (both 0-based)."""

    chapter: int
    beat: int

    @property
    def key(self) -> str:
        return f"{self.chapter}.{self.beat}"


@dataclass(frozen=True)
class Course:
    chapters: tuple[Chapter, ...]
    personas: dict[str, Persona]
    chapter_dirs: tuple[Path, ...]

    def beat(self, ref: BeatRef) -> Beat:
        return self.chapters[ref.chapter].beats[ref.beat]

    def beat_at(self, chapter: int, beat: int) -> Beat:
        return self.chapters[chapter].beats[beat]

    def next_ref(self, ref: BeatRef) -> BeatRef | None:
        if ref.beat + 1 < len(self.chapters[ref.chapter].beats):
            return BeatRef(ref.chapter, ref.beat + 1)
        if ref.chapter + 1 < len(self.chapters):
            return BeatRef(ref.chapter + 1, 0)
        return None

    def find_chapter(self, key: str | int) -> int:
        """Position of a chapter by number (``3``) or id (``ch03-data-vault``)."""
        for i, ch in enumerate(self.chapters):
            if str(ch.number) == str(key) or ch.id == str(key):
                return i
        raise KeyError(
            f"no chapter {key!r}; chapters are "
            + ", ".join(f"{c.number} ({c.id})" for c in self.chapters)
        )

    def manifest_path(self, chapter: int, file: str) -> Path:
        return self.chapter_dirs[chapter] / "manifests" / file

    @property
    def root(self) -> Path:
        """The folder holding ``chapters/``: attachment paths are relative to it."""
        return self.chapter_dirs[0].parent.parent if self.chapter_dirs else ROOT

    def resolve(self, relative: str) -> Path:
        return self.root / relative

    def tasks(self, chapter: int) -> list[TaskBeat]:
        return [b for b in self.chapters[chapter].beats if isinstance(b, TaskBeat)]

    def persona(self, speaker: str | None) -> Persona | None:
        return self.personas.get(speaker or "")


def load_course(
    chapters_dir: Path = DEFAULT_CHAPTERS, personas_dir: Path = DEFAULT_PERSONAS
) -> Course:
    """Load and cross-check everything; raise :class:`ContentError` listing every problem."""
    problems: list[Problem] = []
    personas: dict[str, Persona] = {}
    for path in sorted(personas_dir.glob("*.yaml")):
        try:
            p = load_persona(path)
        except ContentError as exc:
            problems += exc.problems
            continue
        if p.id in personas:
            problems.append(Problem(str(path), 1, "id", f"persona id {p.id!r} used twice"))
        personas[p.id] = p

    loaded: list[tuple[Chapter, Path]] = []
    for path in sorted(chapters_dir.glob("*/chapter.yaml")):
        try:
            loaded.append((load_chapter(path), path))
        except ContentError as exc:
            problems += exc.problems
    if not loaded and not problems:
        problems.append(Problem(str(chapters_dir), 1, "", "no */chapter.yaml found"))

    seen: dict[int, Path] = {}
    for chapter, path in loaded:
        if chapter.number in seen:
            problems.append(
                Problem(
                    str(path),
                    1,
                    "number",
                    f"chapter number {chapter.number} also used by {seen[chapter.number]}",
                )
            )
        seen[chapter.number] = path
        problems += _unknown_speakers(chapter, path, personas)
    loaded = [(_show_manifests(c, p, problems), p) for c, p in loaded]
    if problems:
        raise ContentError(problems)
    loaded.sort(key=lambda cp: cp[0].number)
    return Course(tuple(c for c, _ in loaded), personas, tuple(p.parent for _, p in loaded))


def manifest_block(file: str, text: str) -> str:
    """A manifest as the learner sees it: a yaml code block headed by its file name."""
    return f"```yaml\n# {file}\n{text.rstrip()}\n```"


def _show_manifests(chapter: Chapter, path: Path, problems: list[Problem]) -> Chapter:
    """Replace ``{{yaml FILE}}`` lines by the manifest's text; every listed file must be shown."""
    beats = list(chapter.beats)
    for b, beat in enumerate(beats):
        if not isinstance(beat, TaskBeat):
            continue
        listed = {m.file for m in beat.manifests}
        shown: set[str] = set()

        def expand(m: re.Match[str], b: int = b, listed: set[str] = listed,
                   shown: set[str] = shown) -> str:
            file, indent = m.group("file"), m.group("indent")
            source = path.parent / "manifests" / file
            if file not in listed or not source.is_file():
                problems.append(Problem(str(path), 1, f"beats[{b}].instructions",
                                        f"{{{{yaml {file}}}}} names no manifest of this task"))
                return m.group(0)
            shown.add(file)
            block = manifest_block(file, source.read_text(encoding="utf-8"))
            return "\n".join(indent + line if line else line for line in block.splitlines())

        text = SHOW_YAML.sub(expand, beat.instructions)
        for file in sorted(listed - shown):
            problems.append(Problem(str(path), 1, f"beats[{b}].instructions",
                                    f"manifest {file} is never shown: add a {{{{yaml {file}}}}} line"))
        beats[b] = beat.model_copy(update={"instructions": text})
    return chapter.model_copy(update={"beats": beats})


def _unknown_speakers(chapter: Chapter, path: Path, personas: dict[str, Persona]) -> list[Problem]:
    from bot.content.loader import parse_yaml

    _, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    out = []
    for b, beat in enumerate(chapter.beats):
        for key in ("lines",):
            for i, line in enumerate(getattr(beat, key, []) or []):
                if line.speaker and line.speaker not in personas:
                    loc = ("beats", b, key, i, "speaker")
                    out.append(
                        Problem(
                            str(path),
                            lines.find(loc),
                            f"beats[{b}].lines[{i}].speaker",
                            f"no persona {line.speaker!r} in personas/",
                        )
                    )
    return out
