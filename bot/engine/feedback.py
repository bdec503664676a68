"""How the crew reports a check, shaped by the learner's profile.

- ``feedback: immediate`` (the default) shows why a failing objective fails at every check;
  ``feedback: discover`` shows only which objectives are still open, and the reason comes with
  a hint, when the learner asks.
- ``review: every-change`` acknowledges each objective as it comes good on its own, between
  explicit checks; ``review: independent`` stays quiet until the learner checks or the task passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.content.schema import TaskBeat
from bot.engine.ports import CheckResult, Outgoing
from sandbox.objectives import ObjectiveResult


def tells_reasons(profile: Mapping[str, str]) -> bool:
    return profile.get("feedback", "immediate") != "discover"


def reviews_every_change(profile: Mapping[str, str]) -> bool:
    return profile.get("review") == "every-change"


def status_message(
    task: TaskBeat,
    result: CheckResult,
    profile: Mapping[str, str],
    *,
    only: set[str] | None = None,
    private_to: str | None = None,
) -> Outgoing:
    """The objective list after a check; ``only`` restricts it to newly passed objectives."""
    if result.error:
        return Outgoing(
            kind="status",
            text=result.error,
            speaker="aria",
            private_to=private_to,
            data={"error": True},
        )
    titles = {o.id: o.title for o in task.objectives}
    lines, rows = [], []
    for r in result.results:
        if only is not None and r.id not in only and r.passed:
            continue
        rows.append({"id": r.id, "title": titles.get(r.id, r.id), "passed": r.passed})
        if r.passed:
            lines.append(f"✅ {titles.get(r.id, r.id)}")
        elif tells_reasons(profile):
            lines.append(f"❌ {titles.get(r.id, r.id)} — {r.reason}")
        else:
            lines.append(f"⬜ {titles.get(r.id, r.id)}")
    if result.all_passed:
        lines.append("All objectives hold.")
    elif not tells_reasons(profile):
        lines.append("Ask for a hint when you want the commander's read on what is still open.")
    return Outgoing(
        kind="status",
        text="\n".join(lines),
        speaker="aria",
        private_to=private_to,
        data={"objectives": rows, "passed": result.all_passed},
    )


def newly_passed(previous: Mapping[str, bool], results: Sequence[ObjectiveResult]) -> set[str]:
    return {r.id for r in results if r.passed and not previous.get(r.id, False)}
