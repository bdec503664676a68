"""Read-only tools over the learner's own cluster, against the emulated API server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient

from bot.voice.tools import MAX_CHARS, TOOL_DEFINITIONS, ClusterTools
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob
from tests.voice.conftest import seed_station


@pytest.fixture
def tools(emu: KubeEmulator) -> ClusterTools:
    seed_station(emu, "chen")
    seed_station(emu, "rivera")
    emu["rivera"].put(ob.pod("rivera-only", "life-support", labels={"app": "x"}))
    clients = {"chen": emu.api_client("chen"), "rivera": emu.api_client("rivera")}
    return ClusterTools(clients.get, timeout=5)


async def test_list_pods_is_kubectl_like(tools: ClusterTools) -> None:
    text, err = await tools.run("chen", "list_objects", {"kind": "po", "namespace": "life-support"})
    assert not err
    assert "life-support/oxygen-7f9c ready=0/1 status=CrashLoopBackOff restarts=5" in text
    assert "scrubber-5d2a ready=1/1 status=Running" in text
    text, _ = await tools.run(
        "chen", "list_objects", {"kind": "pods", "namespace": "*", "label_selector": "app=scrubber"}
    )
    assert "scrubber" in text and "oxygen" not in text
    text, _ = await tools.run("chen", "list_objects", {"kind": "nodes"})
    assert "kepler-worker Ready=True" in text


async def test_describe_includes_events(tools: ClusterTools) -> None:
    text, err = await tools.run(
        "chen",
        "describe_object",
        {"kind": "Pod", "name": "oxygen-7f9c", "namespace": "life-support"},
    )
    assert not err
    assert "CrashLoopBackOff" in text and "BackOff" in text and "Back-off restarting" in text


async def test_events_in_namespace(tools: ClusterTools) -> None:
    text, err = await tools.run("chen", "list_events", {"namespace": "life-support"})
    assert not err and "Pod/oxygen-7f9c" in text


async def test_get_object_strips_secret_values(emu: KubeEmulator, tools: ClusterTools) -> None:
    pod = ob.pod("vault", "default", labels={"app": "vault"})
    pod["spec"]["containers"][0]["env"] = [
        {"name": "MODE", "value": "restore"},
        {"name": "DB_PASSWORD", "value": "hunter2-plain"},
        {
            "name": "API",
            "value": "leaked-if-kept",
            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
        },
    ]
    pod["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    cm = ob.config_map(
        "kubeconfig-copy",
        data={
            "config": "users:\n- user:\n    token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        },
    )
    emu["chen"].put(pod, cm)
    text, err = await tools.run("chen", "get_object", {"kind": "pod", "name": "vault"})
    assert not err
    obj = json.loads(text)
    env = {e["name"]: e for e in obj["spec"]["containers"][0]["env"]}
    assert env["MODE"]["value"] == "restore"
    assert env["DB_PASSWORD"]["value"] == "[redacted]"
    assert "value" not in env["API"] and env["API"]["valueFrom"]["secretKeyRef"]["name"] == "db"
    assert "managedFields" not in obj["metadata"]
    text, _ = await tools.run("chen", "get_object", {"kind": "cm", "name": "kubeconfig-copy"})
    assert "eyJhbGci" not in text


async def test_secrets_are_refused(emu: KubeEmulator, tools: ClusterTools) -> None:
    emu["chen"].put({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "db", "namespace": "default"}, "data": {"password": "aHVudGVyMg=="}})  # fmt: skip
    before = len(emu["chen"].requests)
    for kind in ("secret", "Secrets", "SECRET"):
        for name, args in (
            ("list_objects", {"kind": kind}),
            ("get_object", {"kind": kind, "name": "db"}),
            ("describe_object", {"kind": kind, "name": "db"}),
        ):
            text, err = await tools.run("chen", name, args)
            assert err and "sealed" in text and "aHVudGVy" not in text
    assert len(emu["chen"].requests) == before  # refused before any request


async def test_only_the_turns_learner_cluster_is_reachable(
    emu: KubeEmulator, tools: ClusterTools
) -> None:
    """Model input cannot name another cluster: the schemas have no such field, extra keys
    are ignored, and the learner id comes from the turn."""
    for tool in TOOL_DEFINITIONS:
        props = set(tool["input_schema"]["properties"])
        assert not props & {"learner", "learner_id", "cluster", "context", "kubeconfig", "user"}
        assert tool["input_schema"]["additionalProperties"] is False
    emu["rivera"].clear_requests()
    text, _ = await tools.run(
        "chen",
        "list_objects",
        {"kind": "pods", "namespace": "*", "cluster": "rivera", "learner_id": "rivera"},
    )
    assert "rivera-only" not in text and "oxygen" in text
    assert emu["rivera"].requests == []
    text, err = await tools.run("nobody", "list_objects", {"kind": "pods"})
    assert err and "no cluster" in text


async def test_tools_only_ever_read(emu: KubeEmulator, tools: ClusterTools) -> None:
    emu["chen"].clear_requests()
    for name, args in (
        ("list_objects", {"kind": "deploy"}),
        ("list_events", {}),
        ("get_object", {"kind": "node", "name": "kepler-worker"}),
        ("describe_object", {"kind": "pod", "name": "oxygen-7f9c", "namespace": "life-support"}),
        ("pod_logs", {"name": "oxygen-7f9c", "namespace": "life-support"}),
        ("delete_object", {"kind": "pod", "name": "oxygen-7f9c"}),
    ):
        await tools.run("chen", name, args)
    methods = {r.method for r in emu["chen"].requests}
    assert methods == {"GET"}


async def test_invalid_input_is_refused(tools: ClusterTools) -> None:
    for args in (
        {"kind": "pods", "namespace": "../../api"},
        {"kind": "pods", "label_selector": "a=b&watch=1"},
        {"kind": "widgets"},
    ):
        text, err = await tools.run("chen", "list_objects", args)
        assert err, text
    text, err = await tools.run("chen", "get_object", {"kind": "pod", "name": "x/../../secrets"})
    assert err and "invalid name" in text


async def test_unreachable_cluster_is_a_tool_error(emu: KubeEmulator, tools: ClusterTools) -> None:
    emu["chen"].fail(503)
    text, err = await tools.run("chen", "list_objects", {"kind": "pods"})
    emu["chen"].clear_faults()
    assert err and "503" in text


class LogClient(ApiClient):
    """An ApiClient whose transport returns a huge log (the emulator has no log endpoint)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def call_api(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
        self.urls.append(f"{method} {url}")

        class Resp:
            status, reason = 200, "OK"
            data = ("booting oxygen recycler\n" * 2000 + "FATAL: O2 sensor offline\n").encode()

            def read(self) -> bytes:
                return self.data

        return Resp()


async def test_pod_logs_are_tailed_and_capped() -> None:
    client = LogClient()
    tools = ClusterTools(lambda learner: client if learner == "chen" else None)
    text, err = await tools.run(
        "chen", "pod_logs", {"name": "oxygen-7f9c", "namespace": "life-support", "tail_lines": 5000}
    )
    assert not err
    assert len(text) <= MAX_CHARS
    assert client.urls[0].startswith("GET ") and "tailLines=200" in client.urls[0]
    assert "limitBytes=" in client.urls[0] and "/pods/oxygen-7f9c/log" in client.urls[0]


async def test_output_is_capped(emu: KubeEmulator, tools: ClusterTools) -> None:
    emu["chen"].put(*[ob.pod(f"crew-pod-with-a-long-name-{i}", "default", labels={"app": "c"})
                      for i in range(60)])  # fmt: skip
    text, _ = await tools.run("chen", "list_objects", {"kind": "pods"})
    assert len(text) <= MAX_CHARS
    assert text.startswith("50 pods") or "more than 50" in text or "truncated" in text
    small = ClusterTools(lambda _: emu.api_client("chen"), max_chars=800)
    text, _ = await small.run("chen", "list_objects", {"kind": "pods"})
    assert len(text) <= 800 and "truncated" in text


async def test_config_values_url_passwords_and_control_sequences_never_reach_the_model(
    emu: KubeEmulator, tools: ClusterTools
) -> None:
    cm = ob.config_map(
        "app-settings",
        data={
            "DATABASE_URL": "postgres://app:pg-pass-1234@db.station:5432/kepler",
            "SMTP_PASSWORD": "mail-pass-5678",
            "GREETING": "\x1b]0;pwned\x07\x1b[2Jhello",
        },
    )
    emu["chen"].put(cm)
    text, err = await tools.run("chen", "get_object", {"kind": "cm", "name": "app-settings"})
    assert not err
    assert "pg-pass-1234" not in text and "mail-pass-5678" not in text
    assert "postgres://app:[redacted]@db.station:5432/kepler" in text
    assert "\x1b" not in text and "\x07" not in text and "u001b" not in text
    assert '"GREETING": "hello"' in text
