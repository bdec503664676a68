"""Pause and resume keep the learner's work, against a stand-in syncer that behaves like
vcluster's: it recreates host pods deleted while it runs, and on start deletes started bare
Pods whose host pods are gone."""

from __future__ import annotations

import asyncio
import base64
import json

from bot.content.course import load_course
from sandbox.apply import Kube, apply_all, load_manifests
from sandbox.lifecycle import SandboxManager, solution_manifests
from tests.sandbox_lifecycle.conftest import drain, make_vcluster


async def _until(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


def _bare_pods(vc) -> dict[str, dict]:
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in vc.list("Pod")
            if not p["metadata"].get("ownerReferences")}  # fmt: skip


async def test_pause_waits_for_zero_and_resume_restores_bare_pods(emu, fake, store) -> None:
    fake.syncer = True
    backend = make_vcluster(emu)
    m = SandboxManager(backend, store)
    assert (await drain(m.ensure("ada")))[-1].step == "ready"
    ns = (await store.get_sandbox("ada")).name
    vc = fake.virtual(ns)
    host = emu["host"]

    # The learner is in chapter 3: chapters 2-3's solutions, bare Pods included.
    course = load_course()
    api = await backend.client_for("ada")
    try:
        await asyncio.to_thread(apply_all, Kube(api), load_manifests(solution_manifests(course, 4)))
    finally:
        api.close()
    before = _bare_pods(vc)
    assert {"default/atmospheric-processor-backup", "default/data-recovery-service"} <= set(
        before), before
    await _until(lambda: all(p.get("spec", {}).get("nodeName") for p in vc.list("Pod")))
    with vc.lock:  # as a real API server returns it: admission's priority and token volume
        pod = vc.get("Pod", "data-recovery-service", "default")
        pod["spec"]["priority"] = 0
        pod["spec"].setdefault("volumes", []).append({"name": "kube-api-access-x7k2p",
                                                      "projected": {"sources": []}})
        for c in pod["spec"]["containers"]:
            c.setdefault("volumeMounts", []).append({"name": "kube-api-access-x7k2p",
                                                     "mountPath": "/var/run/secrets/x"})
        vc.put(pod)
    before = _bare_pods(vc)
    synced = {fake.host_name(p) for p in vc.list("Pod")}
    assert synced <= {p["metadata"]["name"] for p in host.list("Pod", ns)}

    await m.pause("ada")
    # Pause waited for the control plane to be gone before deleting: nothing was recreated.
    assert fake.recreated == []
    left = {p["metadata"]["name"] for p in host.list("Pod", ns)}
    assert not left, left
    saved = host.get("Secret", "kepler-paused-pods", ns)
    pods = json.loads(base64.b64decode(saved["data"]["pods"]))
    assert {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods} == set(before)
    assert all("nodeName" not in p["spec"] and "status" not in p for p in pods)
    assert all("priority" not in p["spec"] and "uid" not in p["metadata"] for p in pods)

    events = await drain(m.ensure("ada"))  # the learner is back
    assert events[-1].step == "ready"
    assert fake.deleted_on_start, "the stand-in syncer should have deleted the started pods"
    restored = next(e.message for e in events if e.message.startswith("restored"))
    for ref in before:
        assert ref in restored
        assert ref in events[-1].message  # the last line, which transports keep, says it too
    after = _bare_pods(vc)
    assert set(after) == set(before)
    for ref, pod in before.items():
        tokens = {"kube-api-access-x7k2p"}
        want = [{**c, "volumeMounts": [m for m in c.get("volumeMounts", [])
                                       if m["name"] not in tokens]}
                for c in pod["spec"]["containers"]]  # fmt: skip
        got = [{**c, "volumeMounts": c.get("volumeMounts", [])}
               for c in after[ref]["spec"]["containers"]]  # fmt: skip
        assert got == want
        assert [v for v in pod["spec"].get("volumes", []) if v["name"] not in tokens] == (
            after[ref]["spec"].get("volumes") or [])
    assert host.get("Secret", "kepler-paused-pods", ns) is None


async def test_pause_without_the_virtual_api_says_what_was_lost(emu, fake, store) -> None:
    backend = make_vcluster(emu, ready_timeout=1.0)
    m = SandboxManager(backend, store)
    assert (await drain(m.ensure("bob")))[-1].step == "ready"
    ns = (await store.get_sandbox("bob")).name
    fake.virtual(ns).unreachable = True
    await m.pause("bob")
    fake.virtual(ns).unreachable = False
    events = await drain(m.ensure("bob"))
    assert events[-1].step == "ready"
    assert any("could not restore: every standalone pod" in e.message for e in events)


async def test_old_order_would_let_the_syncer_recreate_pods(emu, fake, store) -> None:
    """Control for the stand-in: deleting synced pods while the control plane still runs
    (what pause did before) gets them recreated."""
    fake.syncer = True
    backend = make_vcluster(emu)
    m = SandboxManager(backend, store)
    assert (await drain(m.ensure("cy")))[-1].step == "ready"
    ns = (await store.get_sandbox("cy")).name
    vc = fake.virtual(ns)
    vc.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    await _until(lambda: emu["host"].get("Pod", "p-x-default-x-kepler", ns) is not None)
    await _until(lambda: bool(vc.get("Pod", "p", "default")["spec"].get("nodeName")))
    emu["host"].remove("Pod", "p-x-default-x-kepler", ns)
    await _until(lambda: fake.recreated == ["p-x-default-x-kepler"])
