"""Sandboxes across several emulated host clusters: placement, caps, drain, moves, outages."""

from __future__ import annotations

import pytest

from sandbox.backends.base import SandboxUnavailable
from sandbox.hosts import parse_hosts
from sandbox.lifecycle import LifecyclePolicy, SandboxManager
from sandbox.notices import HOST_BACK, HOST_DOWN
from sandbox.placement import Capacity
from tests.sandbox_hosts.conftest import HOSTS, make_pool, sandboxes_on
from tests.sandbox_lifecycle.conftest import Clock, drain


def manager(pool, store, notes: list | None = None, **policy) -> SandboxManager:
    async def notify(learner: str, text: str) -> None:
        if notes is not None:
            notes.append((learner, text))

    return SandboxManager(pool, store, policy=LifecyclePolicy(**policy), clock=Clock(),
                          notify=notify)  # fmt: skip


async def hosts_of(store) -> dict[str, str]:
    return {r.learner_id: r.host for r in await store.sandboxes()}


async def test_new_sandboxes_spread_over_hosts_until_every_cap_is_reached(emu, pool, store) -> None:
    m = manager(pool, store)
    learners = [f"l{i}" for i in range(6)]
    for learner in learners:
        assert (await drain(m.ensure(learner)))[-1].step == "ready"
    where = await hosts_of(store)
    assert sorted(where.values()) == sorted(HOSTS * 2)  # max=2 on each of three hosts
    for host in HOSTS:  # the store and the hosts agree on who is where
        assert sorted(sandboxes_on(emu, host).values()) == sorted(
            learner for learner, h in where.items() if h == host)
    waiting = await drain(m.ensure("late"))
    assert waiting[-1].step == "waiting" and "every host is full" in waiting[-1].message
    assert await store.get_sandbox("late") is None

    await m.delete("l0")  # frees a place: the waitlist is promoted onto that host
    assert (await store.get_sandbox("late")).host == where["l0"]


async def test_each_learner_is_reached_on_their_own_host(emu, pool, store, fakes) -> None:
    m = manager(pool, store)
    for learner in ("ada", "bob", "cy"):
        await drain(m.ensure(learner))
    where = await hosts_of(store)
    assert len(set(where.values())) == 3
    fresh = make_pool(emu)  # a restarted bot: nothing in memory, routes by searching hosts
    for learner, host in where.items():
        api = await fresh.client_for(learner)
        api.close()
        assert fresh.where(learner) == host
    await m.pause("bob")
    assert emu[where["bob"]].get("StatefulSet", "kepler", next(iter(
        sandboxes_on(emu, where["bob"]))))["spec"]["replicas"] == 0


async def test_free_capacity_decides_placement(emu, fakes, store) -> None:
    """A host with room for one active sandbox by CPU takes one; the bigger one the rest."""
    pool = make_pool(emu, {"ams": Capacity(cpu_m=250), "fra": Capacity(cpu_m=2500),
                           "par": Capacity(cpu_m=250, max_sandboxes=1)})
    m = manager(pool, store)
    for learner in ("a", "b", "c", "d", "e"):
        await drain(m.ensure(learner))
    counts = {h: list((await hosts_of(store)).values()).count(h) for h in HOSTS}
    assert counts == {"ams": 1, "fra": 3, "par": 1}
    await m.pause("a")  # a paused sandbox requests nothing: its host has CPU room again
    placed = {r.learner_id: r.host for r in await store.sandboxes()}
    await drain(m.ensure("f"))
    assert (await store.get_sandbox("f")).host in {placed["a"], "fra"}


async def test_drain_keeps_existing_sandboxes_and_reset_moves_them(emu, pool, store) -> None:
    m = manager(pool, store)
    await drain(m.ensure("ada"))
    home = (await store.get_sandbox("ada")).host
    old_ns = next(iter(sandboxes_on(emu, home)))
    await m.drain(home)
    assert await m.drained() == {home}
    for learner in ("b1", "b2", "b3"):  # one place left, off the drained host
        await drain(m.ensure(learner))
    assert all(h != home for learner, h in (await hosts_of(store)).items() if learner != "ada")
    assert (await drain(m.ensure("ada")))[-1].step == "ready"  # still served where it is

    events = await drain(m.reset("ada"))
    assert events[-1].step == "ready"
    record = await store.get_sandbox("ada")
    assert record.host != home and record.phase == "ready"
    assert old_ns not in sandboxes_on(emu, home)  # the old one went with the move
    assert "ada" in sandboxes_on(emu, record.host).values()
    api = await pool.client_for("ada")
    api.close()

    await m.drain(home, drained=False)
    assert await m.drained() == frozenset()
    await drain(m.ensure("c1"))
    assert (await store.get_sandbox("c1")).host == home  # the emptiest again


async def test_reset_stays_on_a_host_with_room(emu, pool, store) -> None:
    m = manager(pool, store)
    await drain(m.ensure("ada"))
    home = (await store.get_sandbox("ada")).host
    await drain(m.reset("ada"))
    assert (await store.get_sandbox("ada")).host == home
    assert list(sandboxes_on(emu, home).values()) == ["ada"]


async def test_an_unreachable_host_leaves_the_others_alone(emu, pool, store) -> None:
    notes: list = []
    m = manager(pool, store, notes=notes)
    for learner in ("a1", "a2", "a3"):
        await drain(m.ensure(learner))
    where = await hosts_of(store)
    dark = where["a2"]
    others = [learner for learner, h in where.items() if h != dark]
    emu[dark].unreachable = True

    await m.tick()
    assert notes == [("a2", HOST_DOWN)]  # told once, in character; nobody else hears a thing
    await m.tick()
    assert notes == [("a2", HOST_DOWN)]
    restarted = manager(make_pool(emu), store, notes=notes)  # the bot restarts mid-outage
    await restarted.tick()
    assert notes == [("a2", HOST_DOWN)]  # not told twice
    assert (await m.reconcile())["forgotten"] == 0  # its records are kept
    assert (await store.get_sandbox("a2")).host == dark

    failed = await drain(m.ensure("a2"))
    assert failed[-1].step == "failed" and failed[-1].message == HOST_DOWN
    with pytest.raises(SandboxUnavailable, match=dark):
        await pool.client_for("a2")
    for learner in others:  # learners elsewhere: their clusters, pause and resume as before
        assert (await drain(m.ensure(learner)))[-1].step == "ready"
        api = await pool.client_for(learner)
        api.close()
    await m.pause(others[0])
    assert (await drain(m.ensure(others[0])))[-1].step == "ready"
    asked = len(emu[dark].requests)
    await drain(m.ensure("new"))
    assert (await store.get_sandbox("new")).host != dark  # placement skips it
    rows = {(i.learner_id, i.phase, i.host) for i, _ in await m.list()}
    assert ("a2", "unreachable", dark) in rows
    assert len(emu[dark].requests) == asked  # nobody waits on the dark host but housekeeping

    emu[dark].unreachable = False
    await m.tick()
    assert notes[-1] == ("a2", HOST_BACK)
    assert (await drain(m.ensure("a2")))[-1].step == "ready"


async def test_reconcile_removes_the_copy_left_on_the_old_host(emu, pool, store, fakes) -> None:
    """A move whose old host was down at the time leaves a copy there; reconcile deletes it."""
    m = manager(pool, store)
    await drain(m.ensure("ada"))
    home = (await store.get_sandbox("ada")).host
    old_ns = next(iter(sandboxes_on(emu, home)))
    await m.drain(home)
    emu[home].unreachable = True
    await m.tick()
    failed = await drain(m.reset("ada"))  # the old host is dark: still moves the learner
    assert failed[-1].step == "ready"
    assert (await store.get_sandbox("ada")).host != home
    emu[home].unreachable = False
    counts = await m.reconcile()
    assert counts["orphans"] == 1 and old_ns not in sandboxes_on(emu, home)
    assert (await store.get_sandbox("ada")).host != home


async def test_records_from_one_host_days_learn_their_host(emu, pool, store) -> None:
    m = manager(pool, store)
    await drain(m.ensure("ada"))
    record = await store.get_sandbox("ada")
    from dataclasses import replace

    await store.save_sandbox(replace(record, host=""))  # written before hosts were kept
    await m.reconcile()
    assert (await store.get_sandbox("ada")).host == record.host


def test_kepler_hosts_setting() -> None:
    hosts = parse_hosts("ams=/etc/k/ams.yaml;max=60;cpu=24;memory=48Gi,\n"
                        " fra=#fra-ctx;max=30;sandbox-host={namespace}.fra.example.com par=")
    assert [h.name for h in hosts] == ["ams", "fra", "par"]
    ams, fra, par = hosts
    assert (ams.kubeconfig, ams.context) == ("/etc/k/ams.yaml", "")
    assert ams.capacity == Capacity(max_sandboxes=60, cpu_m=24000, memory=48 * 2**30)
    assert (fra.kubeconfig, fra.context, fra.capacity.max_sandboxes) == ("", "fra-ctx", 30)
    assert fra.sandbox_host == "{namespace}.fra.example.com"
    assert par.kubeconfig == "" and par.capacity == Capacity()
    assert parse_hosts("  ") == []


@pytest.mark.parametrize(("text", "error"), [
    ("ams", "NAME=SOURCE"), ("Ams=x", "NAME=SOURCE"), ("ams=x;max", "key=value"),
    ("ams=x;max=lots", "max=lots"), ("ams=x;colour=red", "unknown option"),
    ("ams=x ams=y", "named twice"),
])  # fmt: skip
def test_kepler_hosts_errors_name_the_entry(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_hosts(text)


async def test_reset_with_nowhere_to_go_keeps_the_sandbox(emu, pool, store) -> None:
    m = manager(pool, store)
    await drain(m.ensure("ada"))
    home = (await store.get_sandbox("ada")).host
    await m.drain(home)
    for learner in ("b1", "b2", "b3", "b4"):  # fills both other hosts
        await drain(m.ensure(learner))
    events = await drain(m.reset("ada"))
    assert events[-1].step == "failed" and "no host cluster has room" in events[-1].message
    record = await store.get_sandbox("ada")
    assert (record.host, record.phase) == (home, "ready")
    assert list(sandboxes_on(emu, home).values()) == ["ada"]


async def test_a_class_starting_together_respects_every_cap(emu, pool, store) -> None:
    """Placements in flight count: six at once fill three hosts of two, not one host of six."""
    import asyncio

    m = manager(pool, store, max_per_server=50)
    results = await asyncio.gather(*(drain(m.ensure(f"s{i}", "class")) for i in range(7)))
    steps = sorted(r[-1].step for r in results)
    assert steps == ["ready"] * 6 + ["waiting"]
    assert sorted((await hosts_of(store)).values()) == sorted(HOSTS * 2)
    for host in HOSTS:
        assert len(sandboxes_on(emu, host)) == 2


async def test_warm_spares_spread_and_leave_a_drained_host(emu, pool, store) -> None:
    m = manager(pool, store, warm_pool=3)
    assert await m.refill() == 3
    spares = {h: len([n for n in emu[h].list("Namespace")
                      if n["metadata"]["labels"].get("kepler.station/spare") == "true"])
              for h in HOSTS}  # fmt: skip
    assert spares == dict.fromkeys(HOSTS, 1)
    await m.drain("ams")
    assert await m.refill() == 1  # the one on ams is deleted and replaced elsewhere
    left = [n for n in emu["ams"].list("Namespace")
            if n["metadata"]["labels"].get("kepler.station/spare") == "true"]
    assert left == []
    await drain(m.ensure("ada"))  # claims a spare, never from the drained host
    assert (await store.get_sandbox("ada")).host in {"fra", "par"}
