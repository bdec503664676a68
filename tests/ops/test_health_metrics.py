"""/healthz and /metrics over real HTTP on loopback, fed by a real store, engine and API server."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client

from bot.engine.engine import Engine
from bot.engine.ports import Address
from bot.ops.health import (
    HealthRegistry,
    HealthServer,
    discord_gateway_check,
    host_cluster_check,
    store_check,
)
from bot.ops.metrics import MeteredUsageStore, Metrics, install_discord_rate_limit_counter
from bot.store.sqlite import SQLiteStore
from bot.voice.budget import Budget, Usage
from sandbox.backends.base import SandboxRecord
from tests.emulator import KubeEmulator
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster, fixture_course

DM = Address("terminal", "solo", "alex")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "kepler.db") as s:
        yield s


@pytest.fixture
def emu():
    with KubeEmulator() as e:
        yield e


async def _get(port: int, path: str, headers: dict[str, str] | None = None
               ) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


class FakeGateway:
    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.latency = 0.042
        self.ws = type("WS", (), {"open": True})()

    def is_closed(self) -> bool:
        return False

    def is_ready(self) -> bool:
        return self.ready


async def test_healthz_is_200_when_every_required_check_passes(store, emu):
    health = HealthRegistry(cache_for=0)
    health.register("gateway", discord_gateway_check(FakeGateway()))
    health.register("store", store_check(store))
    health.register("host_cluster", host_cluster_check(emu.api_client("host")))
    async with HealthServer(health, Metrics(), host="127.0.0.1", port=0) as server:
        status, ctype, text = await _get(server.port, "/healthz")
        assert (status, ctype.split(";")[0]) == (200, "application/json")
        body = json.loads(text)
        assert body["status"] == "ok"
        assert body["checks"] == {"gateway": True, "store": True, "host_cluster": True}
        assert "42 ms" in body["details"]["gateway"]
        assert (await _get(server.port, "/livez"))[0] == 200
    # the store check really wrote
    assert await store.get_setting("ops", "healthz") is not None


async def test_a_failing_dependency_is_reported_by_name_with_503(store):
    metrics = Metrics()
    health = HealthRegistry(metrics, cache_for=0)
    health.register("gateway", discord_gateway_check(FakeGateway(ready=False)))
    health.register("store", store_check(store))
    dead = client.Configuration()
    dead.host = "http://127.0.0.1:9"  # nothing listens on the discard port
    health.register("host_cluster", host_cluster_check(client.ApiClient(dead), timeout=1.0))

    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    health.register("slow", slow, timeout=0.2)
    health.register("optional", lambda: asyncio.sleep(0, result=False), required=False)
    async with HealthServer(health, metrics, host="127.0.0.1", port=0) as server:
        status, _, text = await _get(server.port, "/healthz")
        body = json.loads(text)
        assert status == 503 and body["status"] == "fail"
        assert body["checks"] == {"gateway": False, "store": True, "host_cluster": False,
                                  "slow": False, "optional": False}  # fmt: skip
        assert "not ready" in body["details"]["gateway"]
        assert body["details"]["slow"] == "timed out after 0.2s"
        assert body["details"]["host_cluster"]  # the connection error, in one line
        assert "optional" not in body["required"]

        # the gateway comes back; the optional check failing alone keeps it 200
        health.unregister("slow")
        health.register("host_cluster", lambda: asyncio.sleep(0, result=True))
        health.register("gateway", discord_gateway_check(FakeGateway(ready=True)))
        status, _, text = await _get(server.port, "/healthz")
        assert status == 200, text
        assert json.loads(text)["checks"]["optional"] is False

        _, _, page = await _get(server.port, "/metrics")
        assert 'kepler_health_check_up{check="gateway"} 1.0' in page
        assert 'kepler_health_check_up{check="optional"} 0.0' in page

    # a store that cannot write: closed underneath
    await store.close()
    health = HealthRegistry(cache_for=0)
    health.register("store", store_check(store))
    async with HealthServer(health, host="127.0.0.1", port=0) as server:
        status, _, text = await _get(server.port, "/healthz")
        body = json.loads(text)
        assert status == 503 and body["checks"] == {"store": False}
        assert "not open" in body["details"]["store"]


def _value(page: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (("{" + labels + "}") if labels else "")) + r" ([0-9.e+-]+)"
    match = re.search(pattern, page)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


async def test_metrics_expose_every_named_metric_after_observed_events(store, emu, tmp_path):
    metrics = Metrics()
    metrics.track_store(store.path, idle_after=3600)
    cluster = ScriptedCluster()
    transport = RecordingTransport()
    engine = Engine(fixture_course(), store, cluster, CannedVoice(), transport,
                    observe=metrics.observe)  # fmt: skip

    # a learner through a task: one failed check, then the unlock
    mission = await engine.start(DM, "alex", "Alex Chen")
    await engine.say(mission.id, "alex", "1")
    await engine.say(mission.id, "alex", "1")
    await engine.continue_(mission.id, "alex")
    await engine.say(mission.id, "alex", "Three")
    cluster.passing["alex"] = {"pod-running"}
    await engine.check(mission.id, "alex")
    cluster.passing["alex"] = {"pod-running", "no-failures"}
    await engine.check(mission.id, "alex")
    assert (await store.get_mission(mission.id)).state == "done"  # the fixture course ends here
    await engine.start(Address("terminal", "solo", "bea"), "bea", "Bea Ruiz")  # still running

    # Kubernetes requests through an instrumented client (the host's, here)
    api = metrics.instrument_client(emu.api_client("host"), "host")
    metrics.instrument_client(api, "host")  # idempotent
    client.CoreV1Api(api).list_namespace()
    with pytest.raises(client.ApiException):
        client.CoreV1Api(api).read_namespace("nope")

    # LLM tokens, as the voice's budget records them
    budget = Budget(MeteredUsageStore(store, metrics))
    await budget.record("alex", None, Usage(1200, 300, 1000, 200))
    assert (await store.voice_usage(budget.day()))["input_tokens"] == 1200  # still stored

    # Discord rate limits: discord.py's own warnings, and a direct call
    handler = install_discord_rate_limit_counter(metrics)
    try:
        logging.getLogger("discord.http").warning(
            "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.",
            "POST", "https://discord.com/api/v10/channels/1/messages", 1.5,
        )  # fmt: skip
        logging.getLogger("discord.http").warning(
            "Global rate limit has been hit. Retrying in %.2f seconds.", 2.0
        )
    finally:
        for name in ("discord.http", "discord.gateway"):
            logging.getLogger(name).removeHandler(handler)
    metrics.discord_rate_limited("bucket", 0.5)

    await store.save_sandbox(SandboxRecord("alex", "vcluster", "kepler-abc", "ready", 1.0, 2.0))

    server = await HealthServer(HealthRegistry(), metrics, host="127.0.0.1", port=0).start()
    try:
        status, ctype, page = await _get(server.port, "/metrics")
    finally:
        await server.stop()
    assert status == 200 and ctype.startswith("text/plain")

    assert _value(page, "kepler_active_learners") == 1
    assert _value(page, "kepler_active_missions") == 1
    assert _value(page, "kepler_sandboxes", 'phase="ready"') == 1
    assert _value(page, "kepler_sandboxes", 'phase="paused"') == 0
    assert _value(page, "kepler_check_duration_seconds_count", 'outcome="failed"') == 1
    assert _value(page, "kepler_check_duration_seconds_count", 'outcome="passed"') == 1
    assert _value(page, "kepler_unlocks_total") == 1
    assert _value(page, "kepler_unlock_latency_seconds_count") == 1
    assert 0 < _value(page, "kepler_unlock_latency_seconds_sum") < 5
    assert _value(page, "kepler_messages_delivered_total") >= 1
    assert _value(page, "kepler_kube_requests_total", 'code="2xx",method="GET",target="host"') == 1
    assert _value(page, "kepler_kube_requests_total", 'code="4xx",method="GET",target="host"') == 1
    assert _value(page, "kepler_llm_tokens_total", 'kind="input"') == 1200
    assert _value(page, "kepler_llm_tokens_total", 'kind="output"') == 300
    assert _value(page, "kepler_llm_tokens_total", 'kind="cache_read"') == 1000
    assert _value(page, "kepler_llm_tokens_total", 'kind="cache_creation"') == 200
    assert _value(page, "kepler_discord_rate_limits_total", 'scope="bucket"') == 2
    assert _value(page, "kepler_discord_rate_limits_total", 'scope="global"') == 1
    assert _value(page, "kepler_discord_rate_limit_wait_seconds_total") == 4.0
    assert "kepler_build_info{" in page
    assert "kepler_backup_last_success_timestamp_seconds" in page


async def test_unlock_latency_runs_from_the_read_to_the_delivery_in_the_same_task():
    now = [100.0]
    metrics = Metrics(clock=lambda: now[0])

    async def learner(read_at: float, seconds: float, delivered_at: float) -> None:
        now[0] = read_at + seconds
        metrics.observe("check", seconds=seconds, learner="x", passed=True, error=False)
        metrics.observe("unlock", learner="x", task="t")
        await asyncio.sleep(0)  # another learner's task runs here
        now[0] = delivered_at
        metrics.observe("delivered", count=2)

    await asyncio.gather(asyncio.create_task(learner(100.0, 0.5, 101.0)),
                         asyncio.create_task(learner(100.2, 0.2, 103.0)))  # fmt: skip
    samples = _samples(metrics)
    assert samples["kepler_unlock_latency_seconds_count"] == 2
    # 101.0 - 100.0 and 103.0 - 100.2, though the second check's read came last
    assert samples["kepler_unlock_latency_seconds_sum"] == pytest.approx(1.0 + 2.8)

    # a delivery with no unlock before it measures nothing; nor does a bad field raise
    metrics.observe("delivered", count=1)
    metrics.observe("check", seconds="not a number")
    assert _samples(metrics)["kepler_unlock_latency_seconds_count"] == 2


def _samples(metrics: Metrics) -> dict[str, float]:
    return {s.name: s.value for s in metrics.unlock_latency.collect()[0].samples
            if "le" not in s.labels}  # fmt: skip


@pytest.mark.parametrize("header", ["Fly-Client-IP", "X-Forwarded-For", "Forwarded"])
async def test_metrics_are_not_served_through_a_public_edge(header: str) -> None:
    """The browser terminal makes this server public; /metrics stays for the private scrape."""
    async with HealthServer(HealthRegistry(cache_for=0), Metrics(), host="127.0.0.1",
                            port=0) as server:
        assert (await _get(server.port, "/metrics"))[0] == 200
        assert (await _get(server.port, "/metrics", {header: "203.0.113.7"}))[0] == 404
        assert (await _get(server.port, "/livez", {header: "203.0.113.7"}))[0] == 200
