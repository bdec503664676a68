"""``kepler play`` end to end, as a learner would run it: a subprocess with scripted input,
against an emulated cluster served over HTTPS, killed with SIGKILL and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.emulator import KubeEmulator
from tests.emulator import objects as k8s

ROOT = Path(__file__).resolve().parents[2]
PERSONA_PREFIXES = ("Commander Sarah Torres:", "Dr. ", "Marcus Webb:", "Captain ", "ARIA:")

OPENING = ["", "1", "1", "1", "Linux, bash, vim, kind", ""]
CHAPTER1 = ["", "", "Three of them are Ready", "check"]
REPORT = "Three nodes are Ready: bay-alpha, comms-array and life-support"
AFTER_UNLOCK = [REPORT, "", "", "status", "quit"]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEPLER_", "ANTHROPIC"))}
    env.update(COLUMNS="400", TERM="dumb", USER="alex", KEPLER_DB=str(tmp / "play.db"))
    return env


def _play(tmp: Path, kubeconfig: Path | str, lines: list[str], *extra: str,
          timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "play", "--kubeconfig", str(kubeconfig),
         "--manifests", str(tmp / "manifests"), *extra],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=timeout,
        cwd=tmp, env=_env(tmp),
    )


def _dialogue(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(PERSONA_PREFIXES)]


@pytest.fixture
def cluster(tmp_path: Path):
    with KubeEmulator() as emu:
        c = emu.add_cluster("alex")
        c.put(k8s.node("bay-alpha", control_plane=True), k8s.node("comms-array"),
              k8s.node("life-support"), k8s.node("research-vault", ready=False))
        yield emu, emu.write_kubeconfig(tmp_path / "kubeconfig", "alex")


def test_without_a_cluster_the_story_plays_and_says_how_to_get_one(tmp_path: Path):
    proc = _play(tmp_path, tmp_path / "missing-kubeconfig", ["", "1", "quit"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "No Kubernetes cluster answered" in out
    for tool in ("kind create cluster", "minikube start", "k3d cluster create"):
        assert tool in out
    assert "Emergency klaxons pierce the station's usual hum" in out
    assert "Progress saved" in out


def test_a_whole_chapter_with_a_real_check(tmp_path: Path, cluster):
    emu, kubeconfig = cluster
    proc = _play(tmp_path, kubeconfig, OPENING + CHAPTER1 + AFTER_UNLOCK)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "No Kubernetes cluster answered" not in out
    # The task was shown, checked against the emulated cluster, and unlocked the story.
    assert "kubectl get nodes" in out
    assert "All objectives hold." in out
    assert out.index("All objectives hold.") < out.index("Good. You can see the cluster topology now.")
    # The learner's profile answers were stored, and the check read the cluster over HTTP.
    assert emu.cluster("alex").count(method="GET", path="/api/v1/nodes") >= 1
    # The crew calls the learner by the story's name, not the Unix account's.
    assert "Noted, Chen." in out and "alex" not in out.replace("/alex", "")
    assert "Chapter 2 of 6: Life Support Restoration" in out
    assert "(empty)" not in out and "**" not in out


def test_chapter_one_waits_for_the_learners_own_survey(tmp_path: Path, cluster):
    """The check passes by itself, but the story moves only on a report that matches the
    live cluster (three Ready nodes of four here)."""
    _, kubeconfig = cluster
    lines = [*OPENING, *CHAPTER1, "", "I count two", "profile", REPORT, "quit"]
    proc = _play(tmp_path, kubeconfig, lines)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "$ kubectl cluster-info" in out  # the opening shows the command it asks for
    unlocked = out.index("All objectives hold.")
    wrong = out.index("You said 2; the display shows 3 ready nodes.")
    right = out.index("The display agrees: 3 ready nodes.")
    reviewed = out.index("Good. You can see the cluster topology now.")
    assert unlocked < wrong < right < reviewed
    assert out.count("Report your survey") == 1
    assert "No profile yet" not in out  # the opening filled it in
    assert "feedback: immediate" in out


def test_name_and_kubeconfig_lines(tmp_path: Path, cluster):
    _, kubeconfig = cluster
    proc = _play(tmp_path, kubeconfig,
                 [*OPENING, "", "", "A cluster is many nodes run as one.", "quit"],
                 "--name", "Sam Rivera")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"export KUBECONFIG={Path(kubeconfig).resolve()}" in out
    assert "skip the export" not in out
    assert "Noted, Rivera." in out  # the crew's own words use --name; the story's stay


def test_resume_after_quit_continues_at_the_same_beat(tmp_path: Path, cluster):
    _, kubeconfig = cluster
    first = _play(tmp_path, kubeconfig, [*OPENING, "quit"])
    second = _play(tmp_path, kubeconfig, ["status", "quit"])
    assert "Resuming your mission" in second.stdout
    assert set(_dialogue(first.stdout)).isdisjoint(_dialogue(second.stdout))


@pytest.mark.timeout(600)  # three whole plays: a deadline for a hung run, not a speed test
def test_kill_9_and_restart_neither_repeats_nor_loses_a_line(tmp_path: Path, cluster):
    _, kubeconfig = cluster
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    reference = _dialogue(_play(reference_dir, kubeconfig, OPENING + CHAPTER1 + AFTER_UNLOCK).stdout)
    assert len(reference) > 10

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "play", "--kubeconfig", str(kubeconfig),
         "--manifests", str(run_dir / "manifests")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=run_dir, env=_env(run_dir),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n".join(OPENING + CHAPTER1) + "\n")
    proc.stdin.flush()
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # kill as soon as the unlock starts printing
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "All objectives hold." in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = "".join(seen)
    second = _play(run_dir, kubeconfig, AFTER_UNLOCK).stdout
    combined = _dialogue(first) + _dialogue(second)
    assert combined == reference[: len(combined)]
    assert combined == reference
