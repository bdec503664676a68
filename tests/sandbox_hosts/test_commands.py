"""``kepler sandbox hosts|drain|undrain|list|cost`` over several emulated hosts."""

from __future__ import annotations

import argparse

from bot.cli import build_parser
from bot.commands.sandbox import execute
from tests.sandbox_hosts.conftest import HOSTS
from tests.sandbox_lifecycle.conftest import drain

ns = argparse.Namespace


def test_parser_knows_the_host_operations() -> None:
    parser = build_parser()
    assert parser.parse_args(["sandbox", "drain", "ams"]).host == "ams"
    assert parser.parse_args(["sandbox", "undrain", "ams"]).op == "undrain"
    assert parser.parse_args(["sandbox", "--hosts", "a= b=", "hosts"]).hosts == "a= b="
    assert parser.parse_args(["sandbox", "cost"]).op == "cost"


async def test_drain_list_and_hosts(emu, pool, store, capsys) -> None:
    assert await execute(ns(op="drain", host="ams"), pool, store) == 0
    assert "ams: drained" in capsys.readouterr().out
    assert await execute(ns(op="create", learner="ada", guild=None), pool, store) == 0
    capsys.readouterr()
    assert await execute(ns(op="list"), pool, store) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["LEARNER", "HOST", "NAMESPACE"]
    assert table[1].split()[:2] == ["ada", "fra"]  # ams is drained; fra before par by name

    emu["par"].unreachable = True
    assert await execute(ns(op="hosts"), pool, store) == 0
    rows = {line.split()[0]: line.split()[1:4] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"ams": ["drained", "0", "0"], "fra": ["ok", "1", "1"],
                    "par": ["unreachable", "0", "0"]}  # fmt: skip
    assert set(rows) == set(HOSTS)

    assert await execute(ns(op="undrain", host="ams"), pool, store) == 0
    assert "ams: taking new sandboxes" in capsys.readouterr().out
    await drain(pool.provision("bob"))  # the pool places by itself too
    assert pool.where("bob") == "ams"


async def test_host_operations_need_several_hosts(emu, fake, vbackend, store, capsys) -> None:
    assert await execute(ns(op="drain", host="ams"), vbackend, store) == 2
    assert "KEPLER_HOSTS" in capsys.readouterr().err
