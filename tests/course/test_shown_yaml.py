"""The YAML a task shows is its manifest file, byte for byte: one source for what the learner
reads, what kepler play writes to kepler-manifests/, what catch-up applies and what the tests
play; lint refuses a manifest that is listed but never shown, or a block naming no manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bot.content.course import DEFAULT_CHAPTERS, DEFAULT_PERSONAS, load_course, manifest_block
from bot.content.loader import ContentError

COURSE = load_course()


def test_every_manifest_is_shown_whole_in_its_task() -> None:
    shown = 0
    for c, _chapter in enumerate(COURSE.chapters):
        for task in COURSE.tasks(c):
            assert "{{yaml" not in task.instructions
            for m in task.manifests:
                text = COURSE.manifest_path(c, m.file).read_text(encoding="utf-8")
                block = manifest_block(m.file, text)
                assert block in task.instructions, f"{m.file} not shown as it is on disk"
                body = block.split("\n", 1)[1].rsplit("```", 1)[0]
                assert list(yaml.safe_load_all(body)) == list(yaml.safe_load_all(text))
                shown += 1
    assert shown == sum(len(t.manifests) for c in range(len(COURSE.chapters))
                        for t in COURSE.tasks(c))
    assert shown >= 19


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "chapters"
    shutil.copytree(DEFAULT_CHAPTERS, root)
    return root


def test_a_manifest_never_shown_is_a_lint_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "02-life-support-restoration" / "chapter.yaml"
    path.write_text(path.read_text().replace("{{yaml life-support-pod.yaml}}", ""))
    with pytest.raises(ContentError) as info:
        load_course(root, DEFAULT_PERSONAS)
    assert "manifest life-support-pod.yaml is never shown" in str(info.value)


def test_a_block_naming_no_manifest_is_a_lint_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "02-life-support-restoration" / "chapter.yaml"
    path.write_text(path.read_text().replace("{{yaml life-support-pod.yaml}}",
                                             "{{yaml life-support-pod.yaml}}\n\n      {{yaml nope.yaml}}"))
    with pytest.raises(ContentError) as info:
        load_course(root, DEFAULT_PERSONAS)
    assert "{{yaml nope.yaml}} names no manifest of this task" in str(info.value)


def test_an_edited_manifest_changes_what_the_learner_reads(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pod = root / "02-life-support-restoration" / "manifests" / "life-support-pod.yaml"
    pod.write_text(pod.read_text().replace('cpu: "50m"', 'cpu: "75m"'))
    course = load_course(root, DEFAULT_PERSONAS)
    (task,) = course.tasks(course.find_chapter(2))
    assert 'cpu: "75m"' in task.instructions
