"""End to end on a real host: two learners play the whole course, isolated, one paused.

Run with ``uv run pytest -m cluster tests/sandbox_lifecycle/test_real_cluster.py`` and
``HOST_KUBECONFIG`` set, on a host prepared as docs/sandbox.md says — on kind:
``deploy/kind/prepare-host.sh && source .kind/env`` (what .github/workflows/cluster.yml
does). The chart's values.yaml is downloaded once (or taken from ``KEPLER_VCLUSTER_VALUES``).

What it proves, through the bot's own backend and the learners' own vclusters:

* two learners are provisioned side by side;
* each plays every chapter's solution, and every chapter's objectives pass;
* chapter 4's probes, run as the chapter tells learners to (busybox ``wget -T 3``), time
  out from research and answer from life-support: the learner's own NetworkPolicies decide;
* neither learner's pods can reach the other's (by pod IP), nor the cloud metadata address;
* one learner is paused and resumed in the middle of chapter 3 and passes it without
  redoing anything (the bare Pods come back);
* everything is torn down.

It also measures what the two sandboxes use (the Metrics API, as ``kepler sandbox usage``
does): every 15 s while the learners play, then for ``KEPLER_USAGE_QUIET_SECONDS`` (default
300) while they rest. The report, with the requests it suggests for the control plane and
CoreDNS, is printed and, where ``KEPLER_USAGE_DIR`` is set, written there as ``usage.txt``
and ``usage.json`` (the cluster workflow keeps them). A play-through is faster than a class,
so its active figures are on the high side: a conservative basis for a cut.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.content.course import load_course
from sandbox.apply import Kube, apply_all, load_manifests
from sandbox.lifecycle import solution_manifests
from sandbox.objectives import evaluate_all, kinds_for
from sandbox.snapshot import ClusterReader
from sandbox.usage import MIN_SAMPLES, groups, host_kubes, new_run, report, sampling, to_json

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not os.environ.get("HOST_KUBECONFIG"),
                       reason="HOST_KUBECONFIG is not set: no host cluster to run real vclusters "
                              "on (deploy/kind/prepare-host.sh makes one where Docker exists)"),
]  # fmt: skip

CHAPTER_TIMEOUT = 600.0
PROBE_TIMEOUT = 240.0
USAGE_EVERY = 15.0  # metrics-server's resolution
USAGE_IDLE_AFTER = 60.0
USAGE_QUIET = float(os.environ.get("KEPLER_USAGE_QUIET_SECONDS", "300"))


def _objectives(course: Any, index: int) -> list[Any]:
    return [o for task in course.tasks(index) for o in task.objectives]


async def _apply_chapter(api: Any, course: Any, index: int) -> None:
    before = set(solution_manifests(course, index))
    paths = [p for p in solution_manifests(course, index + 1) if p not in before]
    if paths:
        await asyncio.to_thread(lambda: apply_all(Kube(api), load_manifests(paths)))


async def _passes(api: Any, objectives: list[Any], what: str) -> None:
    if not objectives:
        return
    reader = ClusterReader(api)
    deadline = time.monotonic() + CHAPTER_TIMEOUT
    while True:
        snap = await asyncio.to_thread(reader.read, kinds_for(objectives))
        results = evaluate_all(objectives, snap)
        if all(r.passed for r in results):
            return
        failing = [r.reason for r in results if not r.passed]
        assert time.monotonic() < deadline, f"{what}: {failing}"
        await asyncio.sleep(5)


async def _probe(api: Any, namespace: str, url: str) -> bool:
    """``kubectl run probe -n NS --image=busybox:1.36 --restart=Never -- wget -q -O- -T 3 URL``:
    True if it answered, False if it failed (timed out or refused)."""
    kube = Kube(api)
    name = f"probe-{secrets.token_hex(3)}"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": {"run": name}},
           "spec": {"restartPolicy": "Never", "containers": [{
               "name": name, "image": "busybox:1.36",
               "command": ["wget", "-q", "-O-", "-T", "3", url]}]}}  # fmt: skip
    await asyncio.to_thread(kube.apply, pod)
    try:
        deadline = time.monotonic() + PROBE_TIMEOUT
        while True:
            got = await asyncio.to_thread(kube.get, "v1", "Pod", name, namespace)
            phase = ((got or {}).get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                return phase == "Succeeded"
            assert time.monotonic() < deadline, f"probe {namespace}/{name} stuck in {phase}"
            await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(kube.delete, "v1", "Pod", name, namespace)


async def _pod_ip(api: Any, namespace: str, label: str) -> str:
    pods = await asyncio.to_thread(Kube(api).list, "v1", "Pod", namespace, label)
    ips = [p["status"]["podIP"] for p in pods if (p.get("status") or {}).get("podIP")]
    assert ips, f"no running pod {label} in {namespace}"
    return ips[0]


async def test_two_learners_play_the_course_isolated_and_one_pauses() -> None:
    from bot.commands.sandbox import build_backend

    backend = build_backend(os.environ["HOST_KUBECONFIG"])
    backend.poll = 3.0
    course = load_course()
    run = secrets.token_hex(3)
    learners = [f"cluster-test-{run}-a", f"cluster-test-{run}-b"]
    apis: dict[str, Any] = {}
    try:
        async def provision(who: str) -> list[Any]:
            return [e async for e in backend.provision(who)]

        results = await asyncio.gather(*(provision(who) for who in learners))
        for who, events in zip(learners, results, strict=True):
            assert events[-1].step == "ready", (who, events[-1].message)
            apis[who] = await backend.client_for(who)
            assert "server: https://" in await backend.kubeconfig_for(who)

        rest: list[float] = []  # when the play-through ended

        async def sandboxes() -> list[Any]:  # the learners are active until they rest
            last = rest[0] if rest else time.time()
            return [replace(i, last_active=last) for i in await backend.list()
                    if i.learner_id in learners]

        usage = new_run(host_kubes(backend), every=USAGE_EVERY, rounds=10**6,
                        idle_after=USAGE_IDLE_AFTER)
        async with sampling(usage, host_kubes(backend), sandboxes):
            await _play(backend, course, learners, apis)
            rest.append(time.time())
            await asyncio.sleep(USAGE_QUIET)
        _keep_usage(usage)
    finally:
        for api in apis.values():
            api.close()
        for who in learners:
            await backend.delete(who)
        await backend.close()


def _keep_usage(run: Any) -> None:
    """Print and keep the measured use; the control plane must have been measured in both
    states (metrics-server is a host requirement: chapter 6's autoscaler needs it too)."""
    text = report(run)
    print(text)
    out = os.environ.get("KEPLER_USAGE_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "usage.txt").write_text(text + "\n", encoding="utf-8")
        (Path(out) / "usage.json").write_text(to_json(run) + "\n", encoding="utf-8")
    measured = {g.state for g in groups(run.readings)
                if g.component == "control plane" and g.samples >= MIN_SAMPLES}
    assert measured == {"active", "idle"}, text


async def _play(backend: Any, course: Any, learners: list[str], apis: dict[str, Any]) -> None:
    """Every chapter's solution for both learners, the objectives checked; the first learner
    paused and resumed mid-chapter 3; chapter 4's isolation probed; then each other."""
    paused = learners[0]
    for index in range(len(course.chapters)):
        await asyncio.gather(*(_apply_chapter(apis[w], course, index) for w in learners))
        if index == 3:  # mid-chapter: the work is done, the checks not yet run; an idle
            await backend.pause(paused)  # pause, and the learner comes back to finish
            apis[paused].close()
            events = [e async for e in backend.resume(paused)]
            assert events[-1].step == "ready", events[-1].message
            apis[paused] = await backend.client_for(paused)
        await asyncio.gather(*(_passes(apis[w], _objectives(course, index),
                                       f"{w} chapter {index}") for w in learners))  # fmt: skip
        if index == 4:
            for w in learners:
                url = "http://life-support-service.life-support:8080"
                assert not await _probe(apis[w], "research", url), "research reached life support"
                assert await _probe(apis[w], "life-support", url), "life support is unreachable"

    # The two learners can't reach each other, nor the cloud metadata address.
    for me, them in (learners, learners[::-1]):
        ip = await _pod_ip(apis[them], "life-support", "app=atmospheric-control")
        assert not await _probe(apis[me], "default", f"http://{ip}:9898"), f"{me} -> {them}"
        assert not await _probe(apis[me], "default", "http://169.254.169.254/")
