"""A malformed chapter file at start: ``kepler serve`` and ``kepler play`` exit non-zero with
the ``file:line: field: message`` line, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The course with one unknown field added to chapter 1's file; (folder, expected line)."""
    tmp = tmp_path_factory.mktemp("broken")
    chapters = tmp / "chapters"
    shutil.copytree(ROOT / "chapters", chapters)
    target = sorted(chapters.glob("0*/chapter.yaml"))[1]
    lines = target.read_text(encoding="utf-8").splitlines()
    lines.insert(4, "bogus_field: 1")
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return chapters, f"{target}:5: bogus_field: unknown field"


@pytest.mark.parametrize("command", ["serve", "play"])
def test_a_broken_chapter_stops_the_start_with_file_and_line(
    command: str, broken: tuple[Path, str], tmp_path: Path
) -> None:
    chapters, expected = broken
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEPLER_", "ANTHROPIC", "DISCORD"))}
    env.update(KEPLER_CHAPTERS=str(chapters), KEPLER_DB=str(tmp_path / "k.db"),
               DISCORD_TOKEN="not-a-real-token", KEPLER_HEALTH_PORT="0",
               KUBECONFIG=str(tmp_path / "none"))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", command], input="", capture_output=True, text=True,
        timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode not in (0, None)
    assert expected in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
