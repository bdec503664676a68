"""``kepler sandbox``: the operator commands over the emulated host."""

from __future__ import annotations

import argparse

from bot.cli import build_parser
from bot.commands.sandbox import execute, format_table
from sandbox.backends.base import SandboxInfo


def test_parser_has_every_operation() -> None:
    parser = build_parser()
    for op in ("list", "gc"):
        assert parser.parse_args(["sandbox", op]).op == op
    for op in ("create", "pause", "resume", "reset", "delete"):
        assert parser.parse_args(["sandbox", op, "ada"]).learner == "ada"


def test_list_shows_learner_phase_age_idle() -> None:
    now = 10_000.0
    rows = [(SandboxInfo("ada", "kepler-1", "ready", now - 7200, now - 120), None),
            (SandboxInfo(None, "kepler-2", "spare", now - 30), None)]
    table = format_table(rows, now)
    assert "LEARNER" in table and "IDLE" in table
    assert "ada" in table and "2h" in table and "2m" in table
    assert "(spare)" in table and "30s" in table


async def test_create_list_pause_delete(emu, fake, vbackend, store, capsys) -> None:
    ns = argparse.Namespace
    assert await execute(ns(op="create", learner="ada", guild=None), vbackend, store) == 0
    assert "ready" in capsys.readouterr().out
    assert await execute(ns(op="list"), vbackend, store) == 0
    out = capsys.readouterr().out
    assert "ada" in out and "ready" in out
    assert await execute(ns(op="pause", learner="ada"), vbackend, store) == 0
    await execute(ns(op="list"), vbackend, store)
    assert "paused" in capsys.readouterr().out
    assert await execute(ns(op="gc", dry_run=False), vbackend, store) == 0
    assert "adopted 0" in capsys.readouterr().out
    assert await execute(ns(op="delete", learner="ada"), vbackend, store) == 0
    assert await vbackend.list() == []
