"""Load chapters and personas from YAML, reporting every problem as ``file:line: field: message``.

YAML is composed into nodes first so each value keeps its line; pydantic's error locations
are then mapped back to those lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.content.schema import Chapter, Persona

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f" {self.field}:" if self.field else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


class ContentError(Exception):
    """Raised with every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class _Lines:
    """Line (1-based) of every path in a YAML document."""

    at: dict[Loc, int] = field(default_factory=dict)

    def find(self, loc: Loc) -> int:
        # Walk back up the path until a known node: an unknown field names its parent's line.
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.at:
                return self.at[loc[:n]]
        return 1


# libyaml when present (several times faster: `kepler play`/`verify` start-up parses every
# chapter); the pure-Python one gives the same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = yaml.SafeLoader("")  # turns one composed node into its value


def _value(node: yaml.Node) -> Any:
    return _SCALARS.construct_document(node)


def _walk(node: yaml.Node, loc: Loc, lines: _Lines) -> Any:
    lines.at[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _value(key_node)
            lines.at[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*loc, key), lines)
            lines.at[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return _value(node)


def parse_yaml(text: str, file: str) -> tuple[Any, _Lines]:
    """Parse one YAML document keeping lines; a syntax error becomes a :class:`ContentError`."""
    lines = _Lines()
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context_mark", None)
        if context is not None and context.line + 1 != line:
            problem += f" (opened at line {context.line + 1})"
        raise ContentError([Problem(file, line, "", f"YAML syntax: {problem}")]) from None
    if node is None:
        raise ContentError([Problem(file, 1, "", "the file is empty")])
    return _walk(node, (), lines), lines


def _field_name(loc: Loc) -> str:
    # pydantic puts discriminated-union tags ('task', 'match') in the path; drop them.
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in _TAGS:
            continue
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts).replace(".[", "[")


_TAGS = {
    "narrative",
    "question",
    "task",
    "review",
    "debrief",
    "summary",
    "match",
    "ready_pods",
    "condition",
    "nodes_ready",
    "rollout_complete",
    "service_endpoints",
    "pvc_bound",
    "namespaces",
    "network_policy",
    "autoscaler",
    "no_failing_pods",
    "recovered",
}


def _data_loc(loc: Loc) -> Loc:
    return tuple(p for p in loc if not (isinstance(p, str) and p in _TAGS))


def validate(model: type[M], data: Any, lines: _Lines, file: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = _data_loc(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append(Problem(file, lines.find(loc), _field_name(loc), msg))
        raise ContentError(problems) from None


def load_model(model: type[M], path: Path) -> M:
    data, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    return validate(model, data, lines, str(path))


def load_chapter(path: Path) -> Chapter:
    """Load ``chapter.yaml`` and check that its manifests exist and parse as YAML."""
    data, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    chapter = validate(Chapter, data, lines, str(path))
    problems: list[Problem] = []
    for b, beat in enumerate(chapter.beats):
        for m, manifest in enumerate(getattr(beat, "manifests", [])):
            target = path.parent / "manifests" / manifest.file
            loc: Loc = ("beats", b, "manifests", m, "file")
            if not target.is_file():
                problems.append(
                    Problem(str(path), lines.find(loc), _field_name(loc), f"no file {target}")
                )
                continue
            try:
                list(yaml.load_all(target.read_text(encoding="utf-8"), Loader=_LOADER))
            except yaml.YAMLError as exc:
                problems.append(Problem(str(target), 1, "", f"YAML syntax: {exc}"))
    if problems:
        raise ContentError(problems)
    return chapter


def load_persona(path: Path) -> Persona:
    return load_model(Persona, path)
