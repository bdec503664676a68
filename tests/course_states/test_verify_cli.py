"""``uv run kepler verify`` end to end on chapter 2: a subprocess reading the emulator through a
kubeconfig file, before and after the chapter's solution, and two ways to be unreadable."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.course_states import states as S
from tests.course_states.conftest import seed
from tests.emulator import KubeEmulator

ROOT = Path(__file__).resolve().parents[2]


def _start(kubeconfig: Path, *extra: str) -> subprocess.Popen[str]:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH"
    return subprocess.Popen([uv, "run", "kepler", "verify", "--chapter", "2", "--kubeconfig",
                             str(kubeconfig), "--json", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_verify_chapter_2(emu: KubeEmulator, tmp_path: Path) -> None:
    before = emu.write_kubeconfig(tmp_path / "before.kubeconfig", seed(emu, "cli-before",
                                                                       S.before(2)))
    after = emu.write_kubeconfig(tmp_path / "after.kubeconfig", seed(emu, "cli-after",
                                                                     S.after(2)))
    down_name = seed(emu, "cli-down", S.after(2))
    down = emu.write_kubeconfig(tmp_path / "down.kubeconfig", down_name)
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {}}]\n"
                   "users: []\ncontexts: []\ncurrent-context: nowhere\n", encoding="utf-8")
    emu[down_name].unreachable = True
    try:
        # four processes at once: each start pays for imports, not for the others
        runs = {k: _start(p, *(["--timeout", "3"] if k == "down" else []))
                for k, p in {"before": before, "after": after, "down": down, "bad": bad}.items()}
        out = {k: (*p.communicate(timeout=60), p.returncode) for k, p in runs.items()}
    finally:
        emu[down_name].unreachable = False

    task = S.task_of(2)
    ids = [o.id for o in task.objectives]
    for key, code in (("before", 1), ("after", 0)):
        stdout, stderr, rc = out[key]
        assert rc == code, (key, stderr)
        doc = json.loads(stdout)
        assert set(doc) == {"chapter", "objectives"}
        assert doc["chapter"] == "ch02-life-support-restoration"
        assert [o["id"] for o in doc["objectives"]] == ids
        for o in doc["objectives"]:
            assert {"id", "passed", "reason"} <= set(o)
            assert o["task"] == task.id
            assert o["passed"] is (key == "after")
            assert (o["reason"] == "") is (key == "after")
    reasons = {o["id"]: o["reason"] for o in json.loads(out["before"][0])["objectives"]}
    assert reasons["backup-pod-running"].endswith(
        "— no Pod atmospheric-processor-backup in namespace default")

    for key, words in (("down", "cannot read the cluster"), ("bad", "invalid kubeconfig: ")):
        stdout, stderr, rc = out[key]
        assert rc == 2, (key, stdout, stderr)
        assert stdout == ""
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kepler verify: ") and words in lines[0], stderr
        assert emu[down_name].token not in stderr


@pytest.mark.parametrize("number", [2])
def test_kubeconfig_file_is_the_emulators(emu: KubeEmulator, tmp_path: Path, number: int) -> None:
    path = emu.write_kubeconfig(tmp_path / "kc", seed(emu, "kc", S.before(number)))
    assert path.stat().st_mode & 0o777 == 0o600
    assert "certificate-authority-data" in path.read_text(encoding="utf-8")
