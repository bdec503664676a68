"""``kepler verify`` end to end against the emulator with kubeconfig files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.commands.verify import main
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "course"
COURSE = ["--chapters-dir", str(FIXTURE / "chapters"), "--personas-dir", str(FIXTURE / "personas")]


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        e.add_cluster("good").put(
            ob.node("n1"), ob.namespace("life"),
            *ob.deployment_pods(ob.deployment("life-support", "life", replicas=2)))
        e.add_cluster("broken").put(
            ob.node("n1"), ob.namespace("life"),
            ob.pod("life-support-a", "life", {"app": "life-support"}),
            ob.pod("life-support-b", "life", {"app": "life-support"},
                   containers=[("pump", "kepler-station/pump:v9")], waiting="ImagePullBackOff"))
        yield e


def test_all_pass(emu: KubeEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = emu.write_kubeconfig(tmp_path / "kc", "good")
    assert main(["--chapter", "1", "--kubeconfig", str(kc), *COURSE]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 objectives passed" in out and "FAILED" not in out


def test_failures_json(emu: KubeEmulator, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    kc = emu.write_kubeconfig(tmp_path / "kc", "broken")
    assert main(["--chapter", "ch01-drills", "--kubeconfig", str(kc), "--json", *COURSE]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["chapter"] == "ch01-drills"
    got = {o["id"]: (o["passed"], o["reason"]) for o in doc["objectives"]}
    assert got["nodes-ready"] == (True, "")
    assert got["life-support-pods"][0] is False
    assert "1 of 2 pods with app=life-support Ready" in got["life-support-pods"][1]
    assert ("Pod life-support-b: container pump is waiting: ImagePullBackOff "
            "(image kepler-station/pump:v9)") in got["no-failures"][1]


def test_unreadable_cluster_exits_2(emu: KubeEmulator, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    kc = emu.write_kubeconfig(tmp_path / "kc", "good", token="wrong-token-value")
    assert main(["--chapter", "1", "--kubeconfig", str(kc), *COURSE]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "401" in err and "wrong-token-value" not in err
    assert main(["--chapter", "1", "--kubeconfig", str(tmp_path / "missing"), *COURSE]) == 2
    (tmp_path / "garbage").write_text("clusters: [unterminated", encoding="utf-8")
    assert main(["--chapter", "1", "--kubeconfig", str(tmp_path / "garbage"), *COURSE]) == 2
    assert main(["--chapter", "7", "--kubeconfig", str(kc), *COURSE]) == 2
    assert "no chapter '7'" in capsys.readouterr().err


def test_unreachable_exits_2(emu: KubeEmulator, tmp_path: Path) -> None:
    emu["good"].unreachable = True
    try:
        kc = emu.write_kubeconfig(tmp_path / "kc", "good")
        assert main(["--chapter", "1", "--kubeconfig", str(kc), "--timeout", "2", *COURSE]) == 2
    finally:
        emu["good"].unreachable = False


@pytest.mark.parametrize("entry", [["-m", "bot.commands.verify"], ["-m", "bot.cli", "verify"]])
def test_subprocess(emu: KubeEmulator, tmp_path: Path, entry: list[str]) -> None:
    kc = emu.write_kubeconfig(tmp_path / "kc", "broken")
    out = subprocess.run([sys.executable, *entry, "--chapter", "1", "--kubeconfig", str(kc),
                          "--json", *COURSE], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["chapter"] == "ch01-drills"


def test_real_course_chapter_1(emu: KubeEmulator, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    if not (ROOT / "chapters").is_dir():
        pytest.skip("no chapters yet")
    kc = emu.write_kubeconfig(tmp_path / "kc", "good")
    code = main(["--chapter", "1", "--kubeconfig", str(kc), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["chapter"].startswith("ch01")
    assert code == (0 if all(o["passed"] for o in doc["objectives"]) else 1)
