"""Broken content: every problem at once, each naming file, line and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content.course import DEFAULT_CHAPTERS, load_course
from bot.content.loader import ContentError, load_chapter
from bot.content.schema import chapter_json_schema

GOOD_TASK = """\
  - id: deploy
    type: task
    title: Deploy
    instructions: Do it.
    objectives:
      - id: pod
        kind: ready_pods
        title: Pod up
        reason: Not up.
        hints: [a, b, c]
        namespace: default
"""


def _chapter(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "chapters" / "01-x" / "chapter.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ContentError) as info:
        load_chapter(path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # YAML syntax error: the line of the fault
        ("id: x\nnumber: 1\ntitle: [oops\nbeats: []\n", [":4: YAML syntax", "(opened at line 3)"]),
        # unknown field at the top
        (
            "id: x\nnumber: 1\ntitle: T\ncolour: red\nbeats:\n" + GOOD_TASK,
            ["4: colour: unknown field"],
        ),
        # missing required field in a beat
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n  - id: a\n    type: narrative\n",
            [":5: beats[0].lines: Field required"],
        ),
        # a line with two texts
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n  - id: a\n    type: narrative\n    lines:\n"
            "      - scene: S\n        narration: N\n",
            ["8: beats[0].lines[0]: a line has exactly one of scene, narration, stage, say"],
        ),
        # an objective on namespaced objects that names no namespace
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n"
            + GOOD_TASK.replace("        namespace: default\n", ""),
            ["5: beats[0]: objectives pod must name the namespace"],
        ),
        # a review row that nothing judges
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n  - id: r\n    type: review\n    rows:\n"
            "      - {aspect: A, assessment: B}\n",
            ["beats[0].rows[0]: a review row is judged_by objectives or questions, or self_assessed"],
        ),
        # dialogue without a speaker
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n  - id: a\n    type: narrative\n    lines:\n"
            "      - say: hi\n",
            ["8: beats[0].lines[0]: dialogue (say) needs a speaker"],
        ),
        # an objective with two hints instead of three
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n" + GOOD_TASK.replace("[a, b, c]", "[a, b]"),
            [":14: beats[0].objectives[0].hints[2]: Field required"],
        ),
        # an unknown objective kind
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n" + GOOD_TASK.replace("ready_pods", "pods_up"),
            ["beats[0].objectives[0]", "pods_up"],
        ),
        # a bad beat type
        ("id: x\nnumber: 1\ntitle: T\nbeats:\n  - id: a\n    type: film\n", ["beats[0]", "film"]),
        # a setup note for a platform the schema does not know
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n"
            + GOOD_TASK.replace("    objectives:", "    setup:\n      tablet: Tap.\n    objectives:"),
            [":10: beats[0].setup.tablet", "browser"],
        ),
        # install notes that leave a learner with only a browser without a word
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n"
            + GOOD_TASK.replace("    objectives:", "    setup:\n      linux: apt.\n    objectives:"),
            [":9: beats[0].setup: install notes for linux need a browser entry"],
        ),
        # a referenced manifest that does not exist
        (
            "id: x\nnumber: 1\ntitle: T\nbeats:\n"
            + GOOD_TASK.replace(
                "    objectives:", "    manifests:\n      - file: nope.yaml\n    objectives:"
            ),
            ["10: beats[0].manifests[0].file: no file"],
        ),
    ],
)
def test_each_broken_file_names_line_and_field(tmp_path: Path, body: str, expected: list[str]):
    path = _chapter(tmp_path, body)
    problems = _problems(path)
    text = "\n".join(problems)
    assert all(p.startswith(str(path) + ":") for p in problems), problems
    for fragment in expected:
        assert fragment in text, text


def test_every_problem_is_reported_at_once(tmp_path: Path):
    body = (
        "id: X Y\nnumber: -1\ntitle: T\nbeats:\n  - id: a\n    type: narrative\n    lines:\n"
        "      - say: hi\n  - id: a\n    type: review\n    rows: []\n"
    )
    problems = _problems(_chapter(tmp_path, body))
    fields = [p.split(": ", 2)[0].rsplit(":", 1)[1] + ": " + p.split(": ", 2)[1] for p in problems]
    assert len(problems) >= 4, problems
    assert any(":1: id:" in p for p in problems)
    assert any(":2: number:" in p for p in problems)
    assert any("beats[0].lines[0]" in p for p in problems)
    assert any("beats[1].rows" in p for p in problems)
    assert fields


def test_unknown_speaker_is_caught_across_files(tmp_path: Path):
    _chapter(
        tmp_path,
        "id: x\nnumber: 1\ntitle: T\nbeats:\n  - id: a\n    type: narrative\n"
        "    lines:\n      - speaker: zed\n        say: hi\n",
    )
    (tmp_path / "personas").mkdir()
    with pytest.raises(ContentError) as info:
        load_course(tmp_path / "chapters", tmp_path / "personas")
    assert "chapter.yaml:8: beats[0].lines[0].speaker: no persona 'zed'" in str(info.value)


def test_kepler_lint_exits_non_zero_with_precise_messages(tmp_path: Path):
    _chapter(tmp_path, "id: x\nnumber: 1\ntitle: T\nextra: 1\nbeats: []\n")
    (tmp_path / "personas").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "lint", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "chapter.yaml:4: extra: unknown field" in proc.stderr
    assert "chapter.yaml:5: beats: List should have at least 1 item" in proc.stderr


def test_kepler_lint_passes_on_the_course():
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "lint"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")


def test_exported_json_schema_is_current():
    on_disk = json.loads((DEFAULT_CHAPTERS / "schema.json").read_text(encoding="utf-8"))
    assert on_disk == chapter_json_schema(), "run: uv run kepler lint --write-schema"
