"""Bad files and clumsy use get one clear line and lose nothing: a corrupt database, a second
`kepler play` on the same file, `backup --to DIR/`, a junk kubeconfig."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.errors import StoreBusy, StoreCorrupt
from bot.store.exclusive import exclusive
from bot.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEPLER_", "ANTHROPIC"))}
    env.update(TERM="dumb", COLUMNS="400", USER="alex", KEPLER_DB=str(tmp / "play.db"))
    return env


async def test_a_corrupt_database_names_the_file_and_how_to_restore(tmp_path: Path):
    db = tmp_path / "kepler.db"
    db.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(StoreCorrupt) as err:
        await SQLiteStore(db).open()
    text = str(err.value)
    assert str(db) in text and "kepler restore" in text and "\n" not in text
    assert db.read_bytes().startswith(b"this is not sqlite")  # nothing overwritten


def test_kepler_play_on_a_corrupt_database_prints_one_line(tmp_path: Path):
    (tmp_path / "play.db").write_bytes(b"\x00garbage" * 512)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "play", "--kubeconfig", str(tmp_path / "none")],
        input="quit\n", capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.strip()]
    assert "play.db" in line and "kepler restore" in line


def _hold(db: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    with exclusive(db):
        ready.set()
        release.wait(30)


def test_a_second_session_on_the_same_database_refuses(tmp_path: Path):
    db = str(tmp_path / "kepler.db")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(db, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(StoreBusy, match=rf"pid {holder.pid}\b.*--db"), exclusive(db):
            pass
    finally:
        release.set()
        holder.join(30)
    with exclusive(db):  # released when the first session ended
        pass


def test_kepler_play_refuses_while_another_plays(tmp_path: Path):
    with exclusive(tmp_path / "play.db"):
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", "play", "--kubeconfig", str(tmp_path / "none")],
            input="quit\n", capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env=_env(tmp_path),
        )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "already in use by another `kepler play`" in proc.stderr


async def test_backup_to_a_new_folder_writes_into_it(tmp_path: Path, monkeypatch):
    db = tmp_path / "kepler.db"
    monkeypatch.setenv("KEPLER_DB", str(db))
    async with SQLiteStore(db) as store:
        await store.ensure_learner("ana", "Ana")
    assert main(["backup", "--to", f"{tmp_path / 'newdir'}/"]) == 0
    made = list((tmp_path / "newdir").glob("kepler-*-manual.db"))
    assert len(made) == 1 and not (tmp_path / "newdir").is_file()


@pytest.mark.parametrize(
    "content", [os.urandom(300), b"apiVersion: v1\nclusters: [ {{\n", b"- just\n- a list\n"]
)
def test_a_junk_kubeconfig_is_one_line_not_a_traceback(tmp_path: Path, content: bytes):
    junk = tmp_path / "kubeconfig"
    junk.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "play", "--kubeconfig", str(junk)],
        input="quit\n", capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    [first] = [x for x in proc.stdout.splitlines() if "No Kubernetes cluster answered" in x]
    assert str(junk) in first
