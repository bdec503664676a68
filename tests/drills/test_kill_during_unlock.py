"""kill -9 in the middle of an unlock's delivery, then restart: no beat lost, none repeated.

A subprocess runs the engine against a SQLite file with a transport that posts to a file
(``unlock_worker``). The drill kills it with SIGKILL right after the unlock's status message
was posted and while the beats it opened are still going out, restarts it, and compares what
was posted with an uninterrupted run. Crash points inside the transaction are drilled in
``tests/store/test_outbox.py``; ``kepler play`` itself in ``tests/terminal/test_play.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _worker(tmp: Path, delay: float) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEPLER_", "ANTHROPIC"))}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.drills.unlock_worker", str(tmp / "k.db"),
         str(tmp / "posted.log"), str(delay)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _posted(tmp: Path) -> list[tuple[str, str]]:
    path = tmp / "posted.log"
    if not path.exists():
        return []
    return [tuple(line.split("\t")) for line in path.read_text().splitlines() if line]  # type: ignore[misc]


def _finish(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "DONE" in out


def test_kill_9_mid_unlock_then_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    ref_dir, drill_dir = tmp_path / "ref", tmp_path / "drill"
    ref_dir.mkdir()
    drill_dir.mkdir()
    _finish(_worker(ref_dir, 0.0))
    reference = _posted(ref_dir)
    kinds = [kind for _, kind in reference]
    assert "status" in kinds, kinds  # the unlock's own message
    unlock = kinds.index("status")
    assert len(reference) > unlock + 2, "the unlock should open several beats"

    proc = _worker(drill_dir, 0.3)
    target = unlock + 2  # the status and the first opened beat are out; more are queued
    deadline = time.monotonic() + 60
    while len(_posted(drill_dir)) < target and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.01)
    assert len(_posted(drill_dir)) >= target, "the worker never reached the unlock"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_after = len(_posted(drill_dir))
    assert killed_after < len(reference), "killed too late to test anything"

    _finish(_worker(drill_dir, 0.0))
    assert _posted(drill_dir) == reference  # same beats, same order, each once
    dupes = (drill_dir / "posted.dupes")
    repeated = dupes.read_text().split() if dupes.exists() else []
    # at most the one message in flight at the kill is offered again, under the same key,
    # and the transport (Discord's nonce) drops it
    assert len(repeated) <= 1
    assert all(key == reference[killed_after - 1][0] for key in repeated)
