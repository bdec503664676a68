"""Start-up time of ``kepler play`` (to the first story text) and ``kepler verify`` (to its
answer), each measured as a whole process, several runs, min / median / max.

    uv run python bench/startup.py --runs 7

The cluster is the API emulator (``tests/emulator``) in this process, on 127.0.0.1 over TLS,
seeded with chapter 1's recorded state; the commands get its kubeconfig as a file, as a
learner's would be. ``play`` runs with no ``ANTHROPIC_API_KEY`` (the scripted crew), a fresh
state file each run and stdin closed, so it prints the opening and exits at the first prompt;
its time is from ``exec`` to the first line of the chapter's opening on stdout. ``verify`` is
timed to its exit. The first run of each warms the OS's file cache and the bytecode cache and
is not counted: "warm" as on a learner's machine after the first ``kepler play``. (Bytecode
goes to a temporary ``PYTHONPYCACHEPREFIX``, so a ``PYTHONDONTWRITEBYTECODE`` environment, as
on CI, does not make every run compile ~1,300 modules, and the checkout stays clean.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.emulator import KubeEmulator  # noqa: E402

KEPLER = [sys.executable, "-m", "bot.cli"]


def first_story_words() -> str:
    """A few words of chapter 1's first line, to recognise the story on stdout."""
    from bot.content.course import load_course

    chapter = load_course().chapters[0]
    for beat in chapter.beats:
        for line in getattr(beat, "lines", None) or []:
            words = " ".join(str(line.text).split()[:4])
            if words:
                return words
    raise SystemExit("chapter 1 has no story line")


def environment(workdir: Path) -> dict[str, str]:
    """No API key; bytecode cached under ``workdir``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANTHROPIC_API_KEY", "PYTHONDONTWRITEBYTECODE")}  # fmt: skip
    env.update(COLUMNS="400", PYTHONUNBUFFERED="1", PYTHONPYCACHEPREFIX=str(workdir / "pyc"))
    return env


def time_play(kubeconfig: Path, workdir: Path, words: str, timeout: float = 60.0) -> float:
    env = environment(workdir)
    env["KEPLER_DB"] = str(workdir / "kepler.db")
    for f in workdir.glob("kepler.db*"):
        f.unlink()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*KEPLER, "play", "--kubeconfig", str(kubeconfig), "--name", "Bench",
         "--manifests", str(workdir / "manifests"), "--db", str(workdir / "kepler.db")],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    seen = None
    try:
        for raw in proc.stdout:
            if words in " ".join(raw.decode("utf-8", "replace").split()):
                seen = time.monotonic() - t0
                break
    finally:
        proc.kill()
        proc.wait(timeout)
    if seen is None:
        raise SystemExit(f"kepler play never printed {words!r}")
    return seen


def time_verify(kubeconfig: Path, workdir: Path) -> float:
    t0 = time.monotonic()
    done = subprocess.run([*KEPLER, "verify", "--chapter", "1", "--kubeconfig", str(kubeconfig)],
                          cwd=ROOT, env=environment(workdir), capture_output=True,
                          timeout=120)  # fmt: skip
    took = time.monotonic() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"kepler verify failed: {done.stderr.decode()[-300:]}")
    return took


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="timed runs of each command")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    from tests.course_states import states

    words = first_story_words()
    with KubeEmulator() as emu, tempfile.TemporaryDirectory(prefix="kepler-startup-") as tmp:
        work = Path(tmp)
        emu.cluster("default").put(*states.before(1).objects())
        kubeconfig = emu.write_kubeconfig(work / "kubeconfig")
        time_play(kubeconfig, work, words)  # warm the file cache
        time_verify(kubeconfig, work)
        play = [time_play(kubeconfig, work, words) for _ in range(args.runs)]
        verify = [time_verify(kubeconfig, work) for _ in range(args.runs)]
    out = {"play_first_story_s": summary(play), "verify_s": summary(verify), "runs": args.runs,
           "load_average": os.getloadavg()[0]}  # fmt: skip
    for name in ("play_first_story_s", "verify_s"):
        s = out[name]
        print(f"{name:<20} min {s['min']:.2f}  median {s['median']:.2f}  max {s['max']:.2f}")
    print(f"(load average at the end: {out['load_average']:.1f} on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
