"""``kepler sandbox usage`` against two emulated hosts over HTTP: one serves metrics-server's
Metrics API with figures this test sets round by round, the other has no Metrics API.

The command runs for real (``execute`` with a HostPool of VClusterBackends, the store, the
lifecycle's listing); only time is the test's: ``sleep`` advances a fake clock and sets the
next round's usage, so nothing waits and every figure below follows from the inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.commands.sandbox import execute
from sandbox.hosts import HostPool
from sandbox.usage import (
    cpu_m,
    groups,
    host_kubes,
    mem_bytes,
    new_run,
    percentile,
    sampling,
    suggest,
)
from tests.emulator.metrics import BASE, MetricsServer, usage
from tests.emulator.server import KubeEmulator
from tests.sandbox_lifecycle.conftest import Clock

MI = 2**20
T0 = 1_750_000_000.0
ns = argparse.Namespace


def put_pod(emu: KubeEmulator, host: str, namespace: str, name: str, labels: dict[str, str],
            cpu: str, memory: str) -> None:
    """A running host pod with one container requesting ``cpu``/``memory``."""
    emu[host].put({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": namespace, "labels": labels},
                   "spec": {"containers": [{"name": "main", "image": "x", "resources": {
                       "requests": {"cpu": cpu, "memory": memory}}}]},
                   "status": {"phase": "Running"}})  # fmt: skip


CONTROL_PLANE = {"app": "vcluster", "release": "kepler"}
SYNCED = {"vcluster.loft.sh/managed-by": "kepler"}
DNS = {**SYNCED, "k8s-app": "vcluster-kube-dns", "vcluster.loft.sh/namespace": "kube-system"}
DNS_POD = "coredns-5d8c7-x-kube-system-x-kepler"


def sandbox_pods(emu: KubeEmulator, host: str, namespace: str, workloads: int) -> None:
    put_pod(emu, host, namespace, "kepler-0", CONTROL_PLANE, "200m", "256Mi")
    put_pod(emu, host, namespace, DNS_POD, DNS, "20m", "64Mi")
    for i in range(workloads):
        put_pod(emu, host, namespace, f"life-support-{i}-x-default-x-kepler",
                {**SYNCED, "app": "life-support"}, "50m", "64Mi")


async def create(pool: HostPool, store, learner: str, capsys) -> tuple[str, str]:
    """A sandbox made by the real command; (host, namespace)."""
    assert await execute(ns(op="create", learner=learner, guild=None), pool, store) == 0
    capsys.readouterr()
    record = await store.get_sandbox(learner)
    return pool.where(learner) or "", record.name


class Rounds:
    """The fake time: each sleep advances the clock and publishes the next round's usage."""

    SKIP = 5  # metrics-server has not refreshed for this round: same figures, same timestamps

    def __init__(self, metrics: MetricsServer, active_ns: str, idle_ns: str):
        self.clock = Clock(T0)
        self.metrics = metrics
        self.active_ns, self.idle_ns = active_ns, idle_ns
        self.round = 0
        self.publish()

    def publish(self) -> None:
        if self.round == self.SKIP:
            return
        k = self.round if self.round < self.SKIP else self.round - 1  # 0..9 over 11 rounds
        at, m, a, i = self.clock.t, self.metrics, self.active_ns, self.idle_ns
        m.set_pod(a, "kepler-0", {"syncer": usage(10 * (k + 1), 100 + 2 * k)}, at)
        m.set_pod(a, DNS_POD, {"coredns": usage(2 + k / 10, 20 + k)}, at)
        m.set_pod(a, "life-support-0-x-default-x-kepler", {"main": usage(1 + k, 30 + k)}, at)
        m.set_pod(a, "life-support-1-x-default-x-kepler", {"main": usage(2, 30)}, at)
        m.set_pod(i, "kepler-0", {"syncer": usage(5, 90)}, at)
        m.set_pod(i, DNS_POD, {"coredns": usage(1.5, 18)}, at)

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.round += 1
        self.publish()


def table(out: str, title: str) -> dict[str, list[str]]:
    """The rows of one printed table: 'component state' -> the figures."""
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(title))
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        *name, samples, p50, p95, top, request, suggested = line.split()
        rows[" ".join(name)] = [samples, p50, p95, top, request, suggested]
    return rows


def test_parser_knows_usage() -> None:
    args = build_parser().parse_args(["sandbox", "usage", "--minutes", "2", "--every", "15",
                                      "--idle-after", "60", "--json", "u.json"])  # fmt: skip
    assert (args.op, args.minutes, args.every, args.idle_after, args.json) == \
        ("usage", 2.0, 15.0, 60.0, "u.json")
    defaults = build_parser().parse_args(["sandbox", "usage"])
    assert (defaults.minutes, defaults.every, defaults.idle_after, defaults.json) == \
        (10.0, 30.0, 300.0, None)


async def test_usage_by_component_and_state_with_one_host_lacking_metrics(
        emu, pool, store, capsys, tmp_path: Path) -> None:
    placed = {learner: await create(pool, store, learner, capsys)
              for learner in ("ada", "bob", "cyd")}  # fmt: skip
    assert [placed[x][0] for x in ("ada", "bob", "cyd")] == ["ams", "fra", "ams"]
    for learner, idle in (("ada", 10.0), ("cyd", 3600.0), ("bob", 10.0)):
        record = await store.get_sandbox(learner)
        await store.save_sandbox(replace(record, last_active=T0 - idle))
    (_, ada), (_, bob), (_, cyd) = placed["ada"], placed["bob"], placed["cyd"]
    sandbox_pods(emu, "ams", ada, workloads=2)
    sandbox_pods(emu, "ams", cyd, workloads=0)
    sandbox_pods(emu, "fra", bob, workloads=1)
    # Another release's vcluster pod outside any sandbox namespace: not ours, not counted.
    emu["ams"].put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    put_pod(emu, "ams", "other", "kepler-0", CONTROL_PLANE, "1", "1Gi")

    metrics = MetricsServer.install(emu["ams"])
    metrics.set_pod("other", "kepler-0", {"syncer": usage(900, 900)}, T0)
    rounds = Rounds(metrics, ada, cyd)
    emu["ams"].clear_requests()
    out_json = tmp_path / "usage.json"
    args = ns(op="usage", minutes=5.5, every=30.0, idle_after=900.0, json=str(out_json))
    assert await execute(args, pool, store, clock=rounds.clock, sleep=rounds.sleep) == 0
    out = capsys.readouterr().out
    assert rounds.round == 10 and rounds.clock.t == T0 + 300  # 11 rounds, 30 s apart

    # fra: one clear line, asked once, then left alone; ams goes on.
    [fra] = [line for line in out.splitlines() if line.startswith("fra:")]
    assert "no Metrics API" in fra and "install metrics-server" in fra and "404" in fra
    assert emu["fra"].count("GET", f"{BASE}/pods") == 1
    assert emu["ams"].count("GET", f"{BASE}/pods") == 11 * 3  # three components per round
    # Host load per round: the sandbox listing (namespaces, statefulsets), then per component
    # its PodMetrics and its Pods (for their requests): 8 requests, all reads.
    assert emu["ams"].count() == emu["ams"].count("GET") == 11 * 8
    assert "Traceback" not in out and not [x for x in out.splitlines() if x.startswith("ams:")]

    cpu = table(out, "CPU (millicores)")
    assert cpu == {
        # 10..100m over ten distinct windows (round 5 repeated round 4's and is not counted)
        "control plane active": ["10", "50m", "100m", "100m", "200m", "125m"],
        "control plane idle": ["10", "5.0m", "5.0m", "5.0m", "200m", "10m"],
        "CoreDNS active": ["10", "2.4m", "2.9m", "2.9m", "20m", "5m"],
        "CoreDNS idle": ["10", "1.5m", "1.5m", "1.5m", "20m", "5m"],
        # two pods summed per sandbox: (1+k) + 2; requests 2 x 50m
        "workloads active": ["10", "7.0m", "12m", "12m", "100m", "15m"],
    }
    memory = table(out, "Memory (working set)")
    assert memory == {
        "control plane active": ["10", "108Mi", "118Mi", "118Mi", "256Mi", "148Mi"],
        "control plane idle": ["10", "90Mi", "90Mi", "90Mi", "256Mi", "116Mi"],
        "CoreDNS active": ["10", "24Mi", "29Mi", "29Mi", "64Mi", "40Mi"],
        "CoreDNS idle": ["10", "18Mi", "18Mi", "18Mi", "64Mi", "24Mi"],
        "workloads active": ["10", "64Mi", "69Mi", "69Mi", "128Mi", "88Mi"],
    }
    assert "CPU = p95 x 1.25 rounded up to 5m; memory = max x 1.25 rounded up to 4Mi" in out
    assert "control plane: cpu 125m, memory 148Mi; set in KEPLER_SANDBOX_CONTROL_PLANE_CPU " \
        "and KEPLER_SANDBOX_CONTROL_PLANE_MEMORY" in out
    assert "CoreDNS: cpu 5m, memory 40Mi; set in controlPlane.coredns.deployment" in out
    assert "workloads (per sandbox, for reference): cpu 15m, memory 88Mi; course content" in out

    raw = json.loads(out_json.read_text())
    assert {h["name"]: (h["rounds"], h["answered"], h["missing"]) for h in raw["hosts"]} == \
        {"ams": (11, 11, False), "fra": (1, 0, True)}
    readings = raw["readings"]
    assert len(readings) == 10 * 5 and {r["host"] for r in readings} == {"ams"}
    assert {r["namespace"] for r in readings} == {ada, cyd}  # "other" is not a sandbox
    first = next(r for r in readings if r["component"] == "control plane" and r["namespace"] == ada)
    assert (first["cpu_m"], first["memory"], first["state"], first["round"]) == \
        (10.0, 100 * MI, "active", 0)
    assert sorted({r["round"] for r in readings}) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]


async def test_state_follows_the_learners_last_action(emu, pool, store, capsys) -> None:
    """A learner who comes back mid-run is counted active from that round on."""
    _, ada = await create(pool, store, "ada", capsys)
    record = await store.get_sandbox("ada")
    await store.save_sandbox(replace(record, last_active=T0 - 3600))
    sandbox_pods(emu, "ams", ada, workloads=0)
    metrics = MetricsServer.install(emu["ams"])
    clock = Clock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        metrics.set_pod(ada, "kepler-0", {"syncer": usage(40, 120)}, clock.t)
        if clock.t >= T0 + 60:  # the learner acts again at the third round
            await store.save_sandbox(replace(record, last_active=clock.t))

    metrics.set_pod(ada, "kepler-0", {"syncer": usage(4, 100)}, T0)
    args = ns(op="usage", minutes=2, every=30.0, idle_after=300.0, json=None)
    assert await execute(args, pool, store, clock=clock, sleep=sleep) == 0
    cpu = table(capsys.readouterr().out, "CPU (millicores)")
    assert cpu["control plane idle"][:4] == ["2", "4.0m", "40m", "40m"]  # rounds 0 and 1
    assert cpu["control plane active"][:4] == ["2", "40m", "40m", "40m"]  # rounds 2 and 3
    assert cpu["control plane active"][5] == "-"  # fewer than 10 samples: no suggestion


async def test_a_registered_but_down_metrics_api_and_no_readings(
        emu, pool, store, capsys) -> None:
    _, ada = await create(pool, store, "ada", capsys)
    sandbox_pods(emu, "ams", ada, workloads=0)
    MetricsServer.install(emu["ams"]).available = False  # APIService there, metrics-server down
    emu["fra"].fail(403, path=r"^/apis/metrics\.k8s\.io/", times=None)  # an older host RBAC
    clock = Clock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    args = ns(op="usage", minutes=1, every=30.0, idle_after=300.0, json=None)
    assert await execute(args, pool, store, clock=clock, sleep=sleep) == 1
    out = capsys.readouterr().out
    [ams] = [line for line in out.splitlines() if line.startswith("ams:")]
    assert "failed in 2 of 2 rounds" in ams and "503" in ams and "apiservice" in ams
    [fra] = [line for line in out.splitlines() if line.startswith("fra:")]
    assert "(403)" in fra and "deploy/host-rbac.yaml" in fra
    assert emu["fra"].count("GET", f"{BASE}/pods") == 1  # not asked again
    assert "No sandbox pod was measured" in out and "Traceback" not in out


def test_quantities_as_metrics_server_writes_them() -> None:
    assert cpu_m("3521873n") == pytest.approx(3.521873)
    assert cpu_m("250m") == 250.0 and cpu_m("1") == 1000.0 and cpu_m("1500u") == 1.5
    assert mem_bytes("51236Ki") == 51236 * 1024 and mem_bytes("1Gi") == 2**30
    assert mem_bytes("128974848") == 128974848 and mem_bytes("129M") == 129_000_000


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 50) == 10 and percentile(values, 95) == 19
    assert percentile(values, 100) == 20 and percentile([7.0], 95) == 7.0
    assert percentile(list(reversed(values)), 50) == 10  # order of samples does not matter
    with pytest.raises(ValueError):
        percentile([], 50)


def test_suggestion_rule() -> None:
    assert suggest(100.0, 118 * MI) == (125, 148 * MI)
    assert suggest(0.4, 1 * MI) == (5, 4 * MI)  # never below one step
    assert suggest(80.0, 200 * MI) == (100, 252 * MI)  # 250 Mi rounds up to a 4 Mi step
    cpu, memory = suggest(33.3, 100 * MI + 1)
    assert cpu == 45 and memory >= (100 * MI + 1) * 1.25


async def test_an_unreachable_host_leaves_the_others_measured(emu, pool, store,
                                                              capsys) -> None:
    _, ada = await create(pool, store, "ada", capsys)
    sandbox_pods(emu, "ams", ada, workloads=0)
    metrics = MetricsServer.install(emu["ams"])
    emu["fra"].unreachable = True
    clock = Clock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        metrics.set_pod(ada, "kepler-0", {"syncer": usage(30, 100)}, clock.t)

    metrics.set_pod(ada, "kepler-0", {"syncer": usage(30, 100)}, T0)
    args = ns(op="usage", minutes=1.5, every=30.0, idle_after=300.0, json=None)
    assert await execute(args, pool, store, clock=clock, sleep=sleep) == 0
    out = capsys.readouterr().out
    [fra] = [line for line in out.splitlines() if line.startswith("fra:")]
    assert "failed in 3 of 3 rounds" in fra and "Traceback" not in out
    assert table(out, "CPU (millicores)")["control plane active"][:4] == ["3", "30m", "30m", "30m"]


async def test_stopped_halfway_it_reports_what_it_measured(emu, pool, store, capsys,
                                                           tmp_path: Path) -> None:
    """Ctrl-C cancels the command's task: the rounds done so far are still printed."""
    _, ada = await create(pool, store, "ada", capsys)
    sandbox_pods(emu, "ams", ada, workloads=0)
    metrics = MetricsServer.install(emu["ams"])
    clock = Clock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if clock.t >= T0 + 90:
            raise asyncio.CancelledError  # what asyncio.run does to the task on SIGINT
        metrics.set_pod(ada, "kepler-0", {"syncer": usage(20, 100)}, clock.t)

    metrics.set_pod(ada, "kepler-0", {"syncer": usage(20, 100)}, T0)
    out_json = tmp_path / "u.json"
    args = ns(op="usage", minutes=10, every=30.0, idle_after=300.0, json=str(out_json))
    assert await execute(args, pool, store, clock=clock, sleep=sleep) == 0
    out = capsys.readouterr().out
    assert "3 of 20 rounds (stopped early)" in out
    assert table(out, "CPU (millicores)")["control plane active"][:2] == ["3", "20m"]
    raw = json.loads(out_json.read_text())
    assert (raw["rounds"], raw["rounds_done"], len(raw["readings"])) == (20, 3, 3)


async def test_sampling_beside_a_play_through_then_a_quiet_stretch(emu, pool, store,
                                                                    capsys) -> None:
    """How the real-cluster run measures (tests/sandbox_lifecycle/test_real_cluster.py): rounds
    in the background while the learners play, then while they rest, the caller saying which
    (no store there); the sampling stops with the block and keeps what it measured."""
    host, ada = await create(pool, store, "ada", capsys)
    sandbox_pods(emu, host, ada, workloads=1)
    metrics = MetricsServer.install(emu[host])
    clock = Clock(T0)
    rest: list[float] = []  # when the play-through ended

    async def sleep(seconds: float) -> None:  # metrics-server refreshes once a round
        clock.advance(seconds)
        metrics.set_pod(ada, "kepler-0", {"syncer": usage(5 if rest else 50, 200)}, clock.t)

    async def sandboxes() -> list:
        last = rest[0] if rest else clock.t
        return [replace(i, last_active=last) for i in await pool.list() if i.learner_id == "ada"]

    metrics.set_pod(ada, "kepler-0", {"syncer": usage(50, 200)}, T0)
    run = new_run(host_kubes(pool), every=15.0, rounds=10**6, idle_after=60.0)
    async with sampling(run, host_kubes(pool), sandboxes, clock=clock, sleep=sleep):
        while clock.t < T0 + 15 * 11:  # the play-through
            await asyncio.sleep(0.005)
        rest.append(clock.t)
        while clock.t < rest[0] + 60 + 15 * 11:  # the quiet stretch, past --idle-after
            await asyncio.sleep(0.005)
    done = run.done
    await asyncio.sleep(0.05)
    assert run.done == done  # stopped with the block
    cp = {g.state: g for g in groups(run.readings) if g.component == "control plane"}
    assert cp["active"].samples >= 10 and cp["idle"].samples >= 10
    assert (cp["active"].cpu_p95_m, cp["idle"].cpu_p95_m) == (50.0, 5.0)
    assert cp["active"].suggested_cpu_m == 65 and cp["idle"].suggested_cpu_m == 10
