"""``kepler play`` without an API key must not import what it does not use: the Anthropic SDK
alone took ~3 s of a 7-11 s start-up. Deterministic (which modules, not how long): a real
``kepler play`` subprocess against an emulated cluster reports ``sys.modules`` at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.emulator import KubeEmulator
from tests.emulator import objects as k8s

ROOT = Path(__file__).resolve().parents[2]
# the scripted crew needs none of these: the SDK and its HTTP client, Discord, aiohttp
HEAVY = ("anthropic", "httpx", "httpx2", "discord", "aiohttp")

PLAY = """
import atexit, json, sys
atexit.register(lambda: print("MODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr))
from bot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_play_without_a_key_imports_no_sdk(tmp_path: Path) -> None:
    with KubeEmulator() as emu:
        emu.add_cluster("alex").put(k8s.node("bay-alpha", control_plane=True))
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig", "alex")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEPLER_", "ANTHROPIC"))}
        env.update(COLUMNS="400", TERM="dumb", USER="alex", KEPLER_DB=str(tmp_path / "p.db"),
                   PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [sys.executable, "-c", PLAY, "play", "--kubeconfig", str(kubeconfig),
             "--manifests", str(tmp_path / "manifests")],
            input="\n1\nquit\n", capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Emergency klaxons" in proc.stdout  # it did reach the story
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES="))
    loaded = {m.split(".")[0] for m in json.loads(line.removeprefix("MODULES="))}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
