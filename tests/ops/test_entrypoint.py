"""The container entrypoint: the kubeconfig secret becomes a private file, then ``kepler``."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from bot.ops import entrypoint

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://host.example:6443"}
  name: host
users:
- name: bot
  user: {token: "sha256~abcdefghijklmnopqrstuvwxyz"}
contexts:
- context: {cluster: host, user: bot}
  name: host
current-context: host
"""


@pytest.mark.parametrize("encode", [False, True], ids=["yaml", "base64"])
def test_the_secret_becomes_a_0600_file_and_leaves_the_environment(tmp_path: Path, encode: bool):
    path = tmp_path / "kube" / "host.yaml"
    data = base64.b64encode(KUBECONFIG.encode()).decode() if encode else KUBECONFIG
    env = {"HOST_KUBECONFIG_DATA": data, "HOST_KUBECONFIG": str(path)}
    assert entrypoint.materialize_kubeconfig(env) == str(path)
    assert path.read_text() == KUBECONFIG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "HOST_KUBECONFIG_DATA" not in env and env["HOST_KUBECONFIG"] == str(path)
    assert [p.name for p in path.parent.iterdir()] == ["host.yaml"]  # no temp file left

    # a restart rewrites it (a rotated secret wins)
    env = {"HOST_KUBECONFIG_DATA": KUBECONFIG.replace("abcdef", "rotated"),
           "HOST_KUBECONFIG": str(path)}  # fmt: skip
    entrypoint.materialize_kubeconfig(env)
    assert "rotated" in path.read_text()


def test_no_secret_leaves_host_kubeconfig_alone(tmp_path: Path):
    env = {"HOST_KUBECONFIG": "/etc/kepler/kubeconfig"}
    assert entrypoint.materialize_kubeconfig(env) is None
    assert env == {"HOST_KUBECONFIG": "/etc/kepler/kubeconfig"}


@pytest.mark.parametrize("data", ["not base64 !!", base64.b64encode(b"just: yaml").decode(),
                                  "clusters: [unclosed"])  # fmt: skip
def test_garbage_is_refused_without_echoing_it(tmp_path: Path, data: str):
    env = {"HOST_KUBECONFIG_DATA": data, "HOST_KUBECONFIG": str(tmp_path / "k.yaml")}
    with pytest.raises(entrypoint.KubeconfigDataError) as caught:
        entrypoint.materialize_kubeconfig(env)
    assert data not in str(caught.value)
    assert not (tmp_path / "k.yaml").exists()


def test_main_writes_backs_up_and_execs_kepler(tmp_path: Path, monkeypatch):
    import asyncio

    from bot.store.sqlite import SQLiteStore

    db = tmp_path / "kepler.db"

    async def make() -> None:
        async with SQLiteStore(db) as store:
            await store.ensure_learner("u1", "One")

    asyncio.run(make())
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(entrypoint.os, "execv", lambda path, argv: calls.append((path, argv)))
    monkeypatch.setattr("bot.logs.setup_logging", lambda *a, **k: None)
    monkeypatch.setenv("KEPLER_DB", str(db))
    monkeypatch.setenv("KEPLER_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("HOST_KUBECONFIG", str(tmp_path / "host.yaml"))
    monkeypatch.setenv("HOST_KUBECONFIG_DATA", KUBECONFIG)
    monkeypatch.setenv("KEPLER_LOG_FORMAT", "json")

    entrypoint.main(["serve"])
    assert calls and calls[0][1][1:] == ["serve"] and calls[0][1][0].endswith("kepler")
    assert (tmp_path / "host.yaml").exists()
    assert len(list((tmp_path / "backups").glob("kepler-*-prestart.db"))) == 1

    monkeypatch.setenv("HOST_KUBECONFIG_DATA", "garbage!!")
    assert entrypoint.main(["serve"]) == 78
    assert len(calls) == 1  # a bad secret stops the start
