"""How the crew reports a check, shaped by the learner's profile.

- ``feedback: immediate`` (the default) shows why a failing objective fails at every check;
  ``feedback: discover`` shows only which objectives are still open, and the reason comes with
  a hint, when the learner asks.
- ``review: every-change`` acknowledges each objective as it comes good on its own, between
  explicit checks; ``review: independent`` stays quiet until the learner checks or the task passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.content.schema import TaskBeat
from bot.engine.ports import CheckResult, Outgoing
from sandbox.objectives import ObjectiveResult


def tells_reasons(profile: Mapping[str, str]) -> bool:
    return profile.get("feedback", "immediate") != "discover"


def reviews_every_change(profile: Mapping[str, str]) -> bool:
    return profile.get("review") == "every-change"


@dataclass(frozen=True)
class CheckLine:
    """One objective's result as every transport shows it: a mark, the title and why.

    ``mark`` is ✅ (holds), ❌ (fails, with ``reason``) or ⬜ (fails; the learner chose to
    discover reasons themselves, so none is given).
    """

    id: str
    title: str
    passed: bool
    mark: str
    reason: str = ""

    def text(self) -> str:
        return f"{self.mark} {self.title}" + (f" — {self.reason}" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "passed": self.passed, "mark": self.mark,
                "reason": self.reason}  # fmt: skip


def check_lines(
    task: TaskBeat,
    results: Sequence[ObjectiveResult],
    profile: Mapping[str, str],
    *,
    only: set[str] | None = None,
) -> list[CheckLine]:
    """One line per objective, failures first (each group in the task's order).

    ``only`` keeps the passed objectives named in it (and every failing one).
    """
    titles = {o.id: o.title for o in task.objectives}
    out: list[CheckLine] = []
    for r in results:
        if only is not None and r.passed and r.id not in only:
            continue
        title = titles.get(r.id, r.id)
        if r.passed:
            out.append(CheckLine(r.id, title, True, "✅"))
        elif tells_reasons(profile):
            out.append(CheckLine(r.id, title, False, "❌", r.reason))
        else:
            out.append(CheckLine(r.id, title, False, "⬜"))
    return sorted(out, key=lambda line: line.passed)  # stable: keeps the task's order


def check_text(lines: Sequence[CheckLine], footer: str = "") -> str:
    """Plain text, one objective per line (transports with no richer layout use this)."""
    return "\n".join([*(line.text() for line in lines), *([footer] if footer else [])])


def status_message(
    task: TaskBeat,
    result: CheckResult,
    profile: Mapping[str, str],
    *,
    only: set[str] | None = None,
    private_to: str | None = None,
) -> Outgoing:
    """The objective list after a check; ``only`` restricts it to newly passed objectives.

    ``data["lines"]`` holds the :class:`CheckLine` structure (failures first) for transports
    to lay out; ``text`` is the same as plain lines.
    """
    if result.error:
        return Outgoing(
            kind="status",
            text=result.error,
            speaker="aria",
            private_to=private_to,
            data={"error": True},
        )
    lines = check_lines(task, result.results, profile, only=only)
    footer = ""
    if result.all_passed:
        footer = "All objectives hold."
    elif not tells_reasons(profile):
        footer = "Ask for a hint when you want the commander's read on what is still open."
    return Outgoing(
        kind="status",
        text=check_text(lines, footer),
        speaker="aria",
        private_to=private_to,
        data={
            "lines": [line.to_json() for line in lines],
            "objectives": [{"id": x.id, "title": x.title, "passed": x.passed} for x in lines],
            "footer": footer,
            "passed": result.all_passed,
        },
    )


def newly_passed(previous: Mapping[str, bool], results: Sequence[ObjectiveResult]) -> set[str]:
    return {r.id for r in results if r.passed and not previous.get(r.id, False)}


def newly_failed(previous: Mapping[str, bool], results: Sequence[ObjectiveResult]) -> set[str]:
    """Objectives that held at the last check and fail now: work that broke."""
    return {r.id for r in results if not r.passed and previous.get(r.id, False)}
