"""``kepler lint [PATH]``: validate chapters and personas; every problem as file:line: field."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.content.course import DEFAULT_CHAPTERS, DEFAULT_PERSONAS, load_course
from bot.content.loader import ContentError, load_chapter, load_persona
from bot.content.schema import chapter_json_schema


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lint", help="validate the course (chapters and personas)")
    p.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="a course folder (with chapters/ and personas/), a chapter.yaml or a persona file",
    )
    p.add_argument(
        "--write-schema",
        action="store_true",
        help="also write chapters/schema.json for editor completion",
    )
    p.set_defaults(func=run)


def lint(path: Path | None) -> tuple[str, list[str]]:
    """Return a summary and the problems found (empty when the content is valid)."""
    try:
        if path is None:
            course = load_course(DEFAULT_CHAPTERS, DEFAULT_PERSONAS)
        elif path.is_file() and path.parent.name == "personas":
            load_persona(path)
            return f"{path}: ok", []
        elif path.is_file():
            chapter = load_chapter(path)
            return f"{path}: ok ({len(chapter.beats)} beats)", []
        elif (path / "chapters").is_dir():
            course = load_course(path / "chapters", path / "personas")
        else:
            course = load_course(path, path.parent / "personas")
    except ContentError as exc:
        return "", [str(p) for p in exc.problems]
    except OSError as exc:
        return "", [f"{path}:1: {exc.strerror or exc}"]
    beats = sum(len(c.beats) for c in course.chapters)
    tasks = sum(len(course.tasks(i)) for i in range(len(course.chapters)))
    return (
        f"ok: {len(course.chapters)} chapters, {beats} beats, {tasks} tasks, "
        f"{len(course.personas)} personas"
    ), []


def run(args: argparse.Namespace) -> int:
    summary, problems = lint(args.path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(summary)
    if args.write_schema:
        target = DEFAULT_CHAPTERS / "schema.json"
        target.write_text(json.dumps(chapter_json_schema(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    return 0
