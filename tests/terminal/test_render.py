"""What the terminal draws: every beat of the course fits the screen, check results read one
objective per line with failures first, and no raw Markdown or false speaker labels show."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from bot.content.course import BeatRef, load_course
from bot.content.schema import TaskBeat
from bot.engine.beats import render
from bot.engine.feedback import status_message
from bot.engine.ports import Address, CheckResult, Outgoing
from bot.transports.terminal import Ledger, TerminalTransport, kubeconfig_line
from sandbox.objectives import ObjectiveResult

COURSE = load_course()


def _terminal(tmp_path: Path, width: int) -> tuple[TerminalTransport, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, highlight=False)
    return TerminalTransport(COURSE, Ledger(tmp_path / "printed"), tmp_path / "m", console), out


def _everything() -> list[Outgoing]:
    messages = []
    for c, chapter in enumerate(COURSE.chapters):
        for b, beat in enumerate(chapter.beats):
            messages += render(COURSE, BeatRef(c, b), beat, results={})
    return messages


@pytest.mark.parametrize("width", [60, 80, 120])
def test_every_beat_fits_the_terminal(tmp_path: Path, width: int) -> None:
    terminal, out = _terminal(tmp_path, width)
    for message in _everything():
        terminal.show(message)
    task = COURSE.tasks(COURSE.find_chapter(6))[0]
    results = [ObjectiveResult(o.id, i % 2 == 0, "" if i % 2 == 0 else f"{o.reason} — detail")
               for i, o in enumerate(task.objectives)]
    terminal.show(status_message(task, CheckResult(results), {}))
    lines = out.getvalue().splitlines()
    assert len(lines) > 500
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, too_wide[:3]


def test_no_raw_markdown_and_narration_is_not_labelled(tmp_path: Path) -> None:
    terminal, out = _terminal(tmp_path, 200)
    for message in _everything():
        if message.kind in ("line", "question"):
            terminal.show(message)
    text = out.getvalue()
    assert "**" not in text
    assert "Advanced Kubernetes patterns" in text
    # a dialogue paragraph that opens with action names its speaker itself
    assert "Commander Sarah Torres: Commander Torres' jaw tightens." not in text
    assert "\nCommander Torres' jaw tightens." in text
    assert 'Commander Sarah Torres: "Chen, I need you to listen carefully.' in text
    assert "$ kubectl cluster-info" in text


def test_check_results_one_line_each_failures_first(tmp_path: Path) -> None:
    terminal, out = _terminal(tmp_path, 100)
    task = COURSE.tasks(COURSE.find_chapter(2))[0]
    ids = [o.id for o in task.objectives]
    results = [ObjectiveResult(i, i != ids[2], "" if i != ids[2] else "Broken — because")
               for i in ids]
    terminal.show(status_message(task, CheckResult(results), {}))
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith(("✅", "❌"))]
    assert len(lines) == len(ids)
    assert lines[0].startswith(f"❌ {task.objectives[2].title} — Broken — because")
    assert all(ln.startswith("✅") for ln in lines[1:])


def test_review_shows_each_rows_result(tmp_path: Path) -> None:
    terminal, out = _terminal(tmp_path, 160)
    chapter = COURSE.find_chapter(2)
    b, review = next((b, x) for b, x in enumerate(COURSE.chapters[chapter].beats)
                     if x.type == "review")
    task = next(x for x in COURSE.chapters[chapter].beats if isinstance(x, TaskBeat))
    results = {o.id: True for o in task.objectives} | {"resources-bounded": False}
    [message] = render(COURSE, BeatRef(chapter, b), review, results=results)
    terminal.show(message)
    text = out.getvalue()
    assert "Result" in text
    row = next(ln for ln in text.splitlines() if "Resource management" in ln)
    assert "❌ resources-bounded" in row
    assert "✅" in next(ln for ln in text.splitlines() if "Pod creation" in ln)


def test_streamed_answers_wrap_between_words(tmp_path: Path) -> None:
    terminal, out = _terminal(tmp_path, 40)
    words = "orchestration " * 12 + "keeps the station breathing"

    async def chunks() -> AsyncIterator[str]:
        for i in range(0, len(words), 7):  # chunks cut words in the middle
            yield words[i : i + 7]

    said = asyncio.run(terminal.stream(Address("terminal", "solo", "x"), "torres", chunks()))
    assert said == words
    lines = out.getvalue().splitlines()
    assert len(lines) > 3
    allowed = {"Commander", "Sarah", "Torres:", "orchestration", "keeps", "the", "station",
               "breathing"}
    for line in lines:
        assert cell_len(line) <= 40
        assert set(line.split()) <= allowed, line


def test_kubeconfig_line_names_the_file_kepler_watches(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    assert f"export KUBECONFIG={path.resolve()}" in kubeconfig_line(path, None)
    assert "skip the export" in kubeconfig_line(None, "/etc/kc")
    assert "skip the export" in kubeconfig_line(None, None)
