"""A watched kind that did not change is not listed again: its last LIST answer is kept with the
watch's mark (sandbox.snapshot.ClusterReader.read_async, sandbox.watch.AsyncChangeNotifier.mark).

Over the emulator and real watches: the request log says which kinds were listed, and every
snapshot is compared with what a fresh read of the same cluster returns."""

from __future__ import annotations

import asyncio

from sandbox.snapshot import KINDS, ClusterReader
from sandbox.watch import AsyncChangeNotifier, watch_changes
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

KINDS_READ = {"Deployment", "Pod", "Event"}


def _listed(emu: KubeEmulator, name: str) -> list[str]:
    """The kinds listed since the log was cleared (not watches, not version probes)."""
    by_path = {KINDS[k].path: k for k in KINDS_READ}
    c = emu[name]
    with c.lock:
        return sorted(by_path[r.path] for r in c.requests
                      if r.path in by_path and not r.query.get("watch")
                      and not r.query.get("limit"))


def _names(snap: object, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in snap.objects.get(kind, [])}  # type: ignore[attr-defined]


async def _streaming(n: AsyncChangeNotifier, kinds: set[str]) -> None:
    for _ in range(200):
        if all(n.mark(k) is not None for k in kinds):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the watches did not start")


async def _fresh(emu: KubeEmulator, name: str, kinds: set[str]) -> object:
    reader = ClusterReader.from_configuration(emu.configuration(name))
    try:
        return await reader.read_async(kinds, 5)
    finally:
        reader.close()


async def test_only_kinds_that_changed_are_listed_again(emu: KubeEmulator) -> None:
    name = "kept"
    c = emu.add_cluster(name)
    c.put(ob.namespace("ops"), ob.deployment("web", "ops", replicas=1),
          ob.pod("web-1", "ops", {"app": "web"}))
    reader = ClusterReader.from_configuration(emu.configuration(name, tls=True))
    snap = await reader.read_async(KINDS_READ, 5)
    notifier = watch_changes(reader, snap, window=30.0)  # Deployment and Pod (not Event)
    try:
        await _streaming(notifier, {"Deployment", "Pod"})
        c.clear_requests()
        first = await reader.read_async(KINDS_READ, 5, notifier.mark)
        assert _listed(emu, name) == ["Deployment", "Event", "Pod"]  # nothing kept yet

        c.clear_requests()
        again = await reader.read_async(KINDS_READ, 5, notifier.mark)
        assert _listed(emu, name) == ["Event"]  # unwatched kinds are always asked
        assert again.objects == first.objects and again.versions == first.versions
        assert reader.kept_reads == 2

        c.put(ob.pod("web-2", "ops", {"app": "web"}))
        assert await notifier.wait(3.0)
        c.clear_requests()
        after_pod = await reader.read_async(KINDS_READ, 5, notifier.mark)
        assert _listed(emu, name) == ["Event", "Pod"]
        assert _names(after_pod, "Pod") == {"web-1", "web-2"}
        assert after_pod.objects == (await _fresh(emu, name, KINDS_READ)).objects

        c.remove("Deployment", "web", "ops")  # undoing earlier work is a change too
        assert await notifier.wait(3.0)
        c.clear_requests()
        gone = await reader.read_async(KINDS_READ, 5, notifier.mark)
        assert _listed(emu, name) == ["Deployment", "Event"]
        assert _names(gone, "Deployment") == set()

        notifier.retarget({"Pod": gone.versions["Pod"]})  # the next task: Deployments unwatched
        c.clear_requests()
        await reader.read_async(KINDS_READ, 5, notifier.mark)
        assert _listed(emu, name) == ["Deployment", "Event"]
    finally:
        await notifier.aclose()
    c.clear_requests()
    await reader.read_async(KINDS_READ, 5, notifier.mark)  # no live watch: everything asked
    assert _listed(emu, name) == ["Deployment", "Event", "Pod"]
    reader.close()


async def test_a_watch_gap_makes_the_kept_answer_worthless(emu: KubeEmulator) -> None:
    """After ``410 Expired`` the watch restarts from a fresh version: changes in the gap were
    never heard, so what was kept before it must be asked for again."""
    name = "kept-gap"
    c = emu.add_cluster(name)
    c.put(ob.namespace("ops"), ob.deployment("web", "ops", replicas=1))
    reader = ClusterReader.from_configuration(emu.configuration(name))
    snap = await reader.read_async({"Deployment"}, 5)
    notifier = watch_changes(reader, snap, window=1.0)  # each answer ends after ~1 s
    try:
        await _streaming(notifier, {"Deployment"})
        await reader.read_async({"Deployment"}, 5, notifier.mark)
        before = notifier.mark("Deployment")
        c.fail(410, "GET", KINDS["Deployment"].path + "$", times=1)  # the resume: Expired
        for _ in range(100):
            now_mark = notifier.mark("Deployment")
            if now_mark is not None and now_mark != before:
                break
            await asyncio.sleep(0.05)
        assert now_mark is not None and now_mark[0] != before[0]  # type: ignore[index]
        c.clear_requests()
        await reader.read_async({"Deployment"}, 5, notifier.mark)
        assert _listed(emu, name) == ["Deployment"]
    finally:
        await notifier.aclose()
        reader.close()
