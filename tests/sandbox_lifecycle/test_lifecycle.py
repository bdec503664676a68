"""SandboxManager over the vcluster backend and the SQLite store, with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from bot.content.course import load_course
from sandbox.lifecycle import LifecyclePolicy, SandboxManager, solution_manifests
from sandbox.provision import L_LEARNER, L_SANDBOX, MANAGED_BY, MANAGER
from tests.sandbox_lifecycle.conftest import Clock, drain

HOUR = 3600.0


def manager(backend, store, clock=None, notes=None, **policy) -> SandboxManager:
    async def notify(learner: str, message: str) -> None:
        if notes is not None:
            notes.append((learner, message))

    return SandboxManager(backend, store, policy=LifecyclePolicy(**policy),
                          clock=clock or Clock(), notify=notify)  # fmt: skip


def ns_of(emu, learner_hash_value: str | None = None) -> list[dict]:
    return [n for n in emu["host"].list("Namespace")
            if n["metadata"].get("labels", {}).get(L_SANDBOX) == "true"]  # fmt: skip


async def test_ensure_provisions_once_and_records(emu, fake, vbackend, store) -> None:
    m = manager(vbackend, store)
    events = await drain(m.ensure("ada", guild="g1"))
    assert events[-1].step == "ready"
    record = await store.get_sandbox("ada")
    assert record.phase == "ready" and record.name.startswith("kepler-") and record.guild == "g1"
    again = await drain(m.ensure("ada", guild="g1"))
    assert [e.step for e in again] == ["ready"]  # no second sandbox
    assert len(ns_of(emu)) == 1


async def test_idle_pause_and_resume_on_next_action(emu, fake, vbackend, store) -> None:
    clock = Clock()
    m = manager(vbackend, store, clock, idle_pause_after=HOUR)
    await drain(m.ensure("ada"))
    name = (await store.get_sandbox("ada")).name
    host = emu["host"]
    host.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "web-x-default-kepler", "namespace": name,
        "labels": {"vcluster.loft.sh/managed-by": "kepler"}}, "spec": {"containers": []}})

    clock.advance(HOUR - 1)
    assert (await m.tick())["paused"] == 0
    clock.advance(2)
    assert (await m.tick())["paused"] == 1
    sts = host.get("StatefulSet", "kepler", name)
    assert sts["spec"]["replicas"] == 0
    assert sts["metadata"]["annotations"]["loft.sh/paused"] == "true"
    assert sts["metadata"]["annotations"]["loft.sh/paused-replicas"] == "1"
    assert host.list("Pod", name) == []  # the learner's synced pods are gone
    assert (await store.get_sandbox("ada")).phase == "paused"
    assert host.count("PATCH", f"/apis/apps/v1/namespaces/{name}/statefulsets/kepler/scale") == 1

    events = await drain(m.ensure("ada"))  # the learner's next action
    assert [e.step for e in events][-1] == "ready"
    sts = host.get("StatefulSet", "kepler", name)
    assert sts["spec"]["replicas"] == 1 and "loft.sh/paused" not in sts["metadata"].get(
        "annotations", {})
    assert (await store.get_sandbox("ada")).phase == "ready"


async def test_ttl_warning_extend_and_deletion(emu, fake, vbackend, store) -> None:
    clock, notes = Clock(), []
    m = manager(vbackend, store, clock, notes, ttl=48 * HOUR, warn_before=24 * HOUR,
                idle_pause_after=1000 * HOUR)
    await drain(m.ensure("ada"))
    clock.advance(23 * HOUR)
    assert (await m.tick())["warned"] == 0
    clock.advance(2 * HOUR)
    assert (await m.tick())["warned"] == 1 and notes[-1][0] == "ada"
    assert "deleted" in notes[-1][1]
    assert (await m.tick())["warned"] == 0  # warned once
    await m.extend("ada", 24 * HOUR)
    clock.advance(24 * HOUR)  # past the original expiry
    counts = await m.tick()
    assert counts["deleted"] == 0 and (await store.get_sandbox("ada")) is not None
    clock.advance(24 * HOUR)
    assert (await m.tick())["deleted"] == 1
    assert await store.get_sandbox("ada") is None and ns_of(emu) == []


async def test_warm_pool_claim_and_refill(emu, fake, vbackend, store) -> None:
    m = manager(vbackend, store, warm_pool=2)
    assert await m.refill() == 2
    spares = [n["metadata"]["name"] for n in ns_of(emu)]
    assert len(spares) == 2
    events = await drain(m.ensure("ada"))
    assert [e.step for e in events] == ["ready"] and "warm pool" in events[0].message
    record = await store.get_sandbox("ada")
    assert record.name in spares
    claimed = emu["host"].get("Namespace", record.name)
    assert claimed["metadata"]["labels"][L_LEARNER]
    assert "kepler.station/spare" not in claimed["metadata"]["labels"]
    assert claimed["metadata"]["annotations"]["kepler.station/learner"] == "ada"
    await asyncio.sleep(0)  # the background refill
    for _ in range(100):
        if len(ns_of(emu)) == 3 and not m._refilling:
            break
        await asyncio.sleep(0.02)
    assert len(ns_of(emu)) == 3  # one claimed + two spares again
    api = await vbackend.client_for("ada")  # the claimed spare is the learner's now
    api.close()


async def test_caps_and_waitlist(emu, fake, vbackend, store) -> None:
    notes: list = []
    m = manager(vbackend, store, notes=notes, max_per_server=1, max_total=10)
    assert (await drain(m.ensure("ada", "g1")))[-1].step == "ready"
    wait = await drain(m.ensure("bob", "g1"))
    assert wait[-1].step == "waiting" and wait[-1].position == 1
    assert (await drain(m.ensure("cy", "g1")))[-1].position == 2
    assert (await drain(m.ensure("dee", "g2")))[-1].step == "ready"  # another server has room
    assert (await drain(m.ensure("bob", "g1")))[-1].position == 1  # asking again keeps the place
    assert await store.get_sandbox("bob") is None

    await m.delete("ada")
    assert (await store.get_sandbox("bob")).phase == "ready"  # promoted
    assert ("bob", "sandbox ready") in notes
    assert [w.learner_id for w in await store.waitlist()] == ["cy"]


async def test_reconcile_adopts_and_deletes_orphans(emu, fake, vbackend, store) -> None:
    host = emu["host"]
    await drain(vbackend.provision("ghost"))  # exists on the host, unknown to the store
    await drain(vbackend.provision("kept"))
    kept_ns = next(i.name for i in await vbackend.list() if i.learner_id == "kept")
    m = manager(vbackend, store)
    await store.save_sandbox(m._new_record("kept", kept_ns, None, "ready"))
    await store.save_sandbox(m._new_record("gone", "kepler-vanished", None, "ready"))
    host.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "kepler-orphan", "labels": {MANAGED_BY: MANAGER, L_SANDBOX: "true"}}})

    counts = await m.reconcile()
    assert counts == {"adopted": 1, "orphans": 1, "forgotten": 1}
    assert (await store.get_sandbox("ghost")).phase == "ready"
    assert await store.get_sandbox("gone") is None
    assert host.get("Namespace", "kepler-orphan") is None
    assert (await store.get_sandbox("kept")).name == kept_ns
    assert await m.reconcile() == {"adopted": 0, "orphans": 0, "forgotten": 0}


async def test_reset_gives_a_fresh_cluster(emu, fake, vbackend, store) -> None:
    m = manager(vbackend, store)
    await drain(m.ensure("ada"))
    old = (await store.get_sandbox("ada")).name
    fake.virtual(old).put({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "junk", "namespace": "default"}})
    events = await drain(m.reset("ada"))
    assert events[-1].step == "ready"
    new = (await store.get_sandbox("ada")).name
    assert new != old and emu["host"].get("Namespace", old) is None
    assert fake.virtual(new).list("ConfigMap") == []


async def test_catch_up_applies_earlier_solutions(emu, fake, vbackend, store) -> None:
    course = load_course()
    upto = course.find_chapter(4)  # arriving at chapter 4: chapters 0-3 are done
    paths = solution_manifests(course, upto)
    assert [p.name for p in paths] == ["life-support-pod.yaml", "life-support-deployment.yaml",
                                       "research-data-pvc.yaml", "data-recovery-pod.yaml"]
    m = manager(vbackend, store)
    await drain(m.ensure("ada"))
    summary = await m.catch_up("ada", course, upto)
    assert summary.startswith("applied 4 objects")
    vc = fake.virtual((await store.get_sandbox("ada")).name)
    assert vc.get("Deployment", "life-support-system", "default")["spec"]["replicas"] == 2
    assert vc.get("PersistentVolumeClaim", "research-data-claim", "default") is not None
    applies = [r for r in vc.requests if r.method == "PATCH"]
    assert len(applies) == 4 and all(r.query.get("fieldManager") == "kepler-station"
                                     for r in applies)  # fmt: skip
    # Chapter 6's load generator is not part of any solution.
    assert all(p.name != "load-generator.yaml" for p in solution_manifests(course, 99))


@pytest.mark.parametrize("chapter", [0, 1])
def test_nothing_to_catch_up_before_chapter_2(chapter: int) -> None:
    assert solution_manifests(load_course(), chapter) == []
