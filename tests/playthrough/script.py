"""The learner's path through a chapter, read from the chapter itself.

Every ``kubectl`` line of the task's ``bash`` code blocks, in order, is a step. The files
those steps use are the ones ``kepler play`` writes for the task (its ``manifests``); a file
counts as shown when the chapter's ``yaml`` blocks hold every object in it, as it is, so the
test can require that what the learner reads is what runs, and text and checks cannot drift.

Lines a non-interactive test cannot type are adapted or skipped, each with the reason: a
watch (``-w``) or follow (``-f``) runs once without it; an interactive ``run --rm -it`` pod
runs detached until the cluster settles and is then deleted (what ``--rm`` does when the
session ends); ``exec`` and ``port-forward`` are skipped, as are lines with a
``<placeholder>``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from bot.content.course import Course
from bot.content.schema import TaskBeat

MUTATING = {"create", "apply", "delete", "label", "annotate", "set", "run", "expose", "scale",
            "patch", "autoscale", "cordon", "uncordon", "taint", "replace", "drain"}
_FENCE = re.compile(r"```(\w*)[^\n]*\n(.*?)```", re.S)


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]  # kubectl's arguments
    line: str  # as the chapter shows it
    settle_first: bool = False  # let the cluster settle first (a session's end; a log read)

    @property
    def mutating(self) -> bool:
        verb = self.argv[0] if self.argv else ""
        if verb == "rollout":
            return len(self.argv) > 1 and self.argv[1] in ("undo", "restart", "pause", "resume")
        return verb in MUTATING


@dataclass
class LearnerPath:
    chapter: int  # chapter number
    steps: list[Step]
    files: dict[str, str]  # file name -> text, as the learner has them
    shown: set[str] = field(default_factory=set)  # files whose objects the chapter shows
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (line, why)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder

    # -- mistakes: a changed copy of the path --

    def edit_file(self, name: str, old: str, new: str, count: int = 1) -> LearnerPath:
        text = self.files[name]
        assert text.count(old) >= count, f"{old!r} not in {name}"
        return replace(self, files={**self.files, name: text.replace(old, new, count)})

    def edit_steps(self, old: str, new: str) -> LearnerPath:
        hits = [s for s in self.steps if old in s.line]
        assert hits, f"no step contains {old!r}"
        return replace(self, steps=[_parse(s.line.replace(old, new)) if old in s.line else s
                                    for s in self.steps])

    def drop_steps(self, keep: Callable[[Step], bool] | str) -> LearnerPath:
        test = (lambda s: keep not in s.line) if isinstance(keep, str) else keep
        kept = [s for s in self.steps if test(s)]
        assert len(kept) < len(self.steps), "no step was dropped"
        return replace(self, steps=kept)

    def add_steps(self, *lines: str) -> LearnerPath:
        return replace(self, steps=[*self.steps, *(_parse(line) for line in lines)])


def _step(argv: list[str] | tuple[str, ...], line: str) -> Step:
    """``kubectl logs`` reads a running container's output: a learner who is told the
    container "is waiting to start" waits and types it again, so the step waits for the
    cluster to settle first."""
    return Step(tuple(argv), line, settle_first=bool(argv) and argv[0] == "logs")


def _parse(line: str) -> Step:
    argv = shlex.split(line, comments=True)
    assert argv and argv[0] == "kubectl", line
    return _step(argv[1:], line)


def _adapt(argv: list[str]) -> tuple[list[str] | None, str]:
    """A runnable form of the line, or ``None`` and why it is skipped."""
    if any(re.fullmatch(r".*<[\w-]+>.*", a) for a in argv):
        return None, "a placeholder the learner fills in"
    verb = argv[0] if argv else ""
    if verb in ("exec", "port-forward", "attach", "proxy", "edit"):
        return None, f"`kubectl {verb}` needs a live container or a terminal"
    out = [a for a in argv if a not in ("-w", "--watch", "-f", "--follow")
           or (a == "-f" and verb != "logs")]
    why = "runs once, without watching" if len(out) != len(argv) else ""
    return out, why


_TERMINAL = ("-it", "-ti", "-i", "-t", "--stdin", "--tty", "--rm", "--attach")


def _interactive(argv: list[str], line: str) -> list[Step]:
    """``kubectl run NAME --rm -it ...``: the pod detached, then deleted once the cluster
    settled (the learner's Ctrl+C); ``[]`` for anything else."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    if argv[:1] != ["run"] or not any(a in _TERMINAL for a in head):
        return []
    tail = argv[len(head):]
    kept = [a for a in head if a not in _TERMINAL and not a.startswith(("--rm=", "-i=", "--stdin="))]
    name = kept[1]
    ns = [kept[i + 1] for i, a in enumerate(kept[:-1]) if a in ("-n", "--namespace")] + \
        [a.split("=", 1)[1] for a in kept if a.startswith("--namespace=")]
    delete = ["delete", "pod", name, *(["-n", ns[0]] if ns else []), "--wait=false"]
    return [Step(tuple(kept + tail), line),
            Step(tuple(delete), line + "   # Ctrl+C: --rm deletes the pod", settle_first=True)]


def _bash_lines(text: str) -> list[str]:
    lines, cur = [], ""
    for raw in text.splitlines():
        cur += raw.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    return lines


def learner_path(course: Course, number: int) -> LearnerPath:
    index = course.find_chapter(number)
    [task] = [b for b in course.chapters[index].beats if isinstance(b, TaskBeat)]
    text = task.instructions
    files = {m.file: course.manifest_path(index, m.file).read_text(encoding="utf-8")
             for m in task.manifests}
    steps: list[Step] = []
    skipped: list[tuple[str, str]] = []
    screen: list[dict] = []
    for lang, body in _FENCE.findall(text):
        if lang in ("bash", "sh", "shell", "console", ""):
            for line in _bash_lines(body):
                argv = shlex.split(line, comments=True)
                if not argv or argv[0] != "kubectl":
                    if argv:
                        skipped.append((line, "not a kubectl command"))
                    continue
                runnable, why = _adapt(argv[1:])
                if runnable is None:
                    skipped.append((line, why))
                    continue
                if why:
                    skipped.append((line, why))
                steps.extend(_interactive(runnable, line) or [_step(runnable, line)])
        elif lang in ("yaml", "yml"):
            screen.extend(d for d in yaml.safe_load_all(body) if isinstance(d, dict))
    # A file is shown when the screen holds every object in it, as it is in the file.
    shown = {name for name, content in files.items()
             if (docs := [d for d in yaml.safe_load_all(content) if isinstance(d, dict)])
             and all(d in screen for d in docs)}
    return LearnerPath(number, steps, files, shown, skipped)
