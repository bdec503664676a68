"""Faults on the host or a learner's vcluster: clear statuses, retries, no crash, others fine."""

from __future__ import annotations

import time

import pytest

from sandbox.apply import Kube, Retry
from sandbox.backends.base import SandboxForbidden, SandboxUnavailable
from sandbox.lifecycle import LifecyclePolicy, SandboxManager
from tests.sandbox_lifecycle.conftest import Clock, drain, make_vcluster


def _ns_patches(host) -> int:
    return sum(1 for r in host.requests if r.method == "PATCH" and r.path.startswith(
        "/api/v1/namespaces/kepler-") and r.path.count("/") == 4)


async def test_conflict_is_retried(emu, fake, vbackend) -> None:
    host = emu["host"]
    host.fail(409, "PATCH", r"^/api/v1/namespaces/kepler-[a-f0-9]+$", times=1)
    events = await drain(vbackend.provision("ada"))
    assert events[-1].step == "ready"
    assert _ns_patches(host) == 2  # the conflict, then the retry


async def test_server_errors_are_retried_with_backoff(emu, fake) -> None:
    sleeps: list[float] = []
    backend = make_vcluster(emu, retry=Retry(attempts=4, base=0.01, cap=0.05, sleep=sleeps.append))
    host = emu["host"]
    host.fail(500, "PATCH", r"/statefulsets/kepler$", times=2)
    events = await drain(backend.provision("ada"))
    assert events[-1].step == "ready"
    assert len(sleeps) == 2 and all(0 <= s <= 0.05 for s in sleeps)
    assert host.count("PATCH") >= 3


async def test_retries_give_up_with_a_clear_status(emu, fake, vbackend, store) -> None:
    emu["host"].fail(503, "PATCH", r"/resourcequotas/", times=None)
    m = SandboxManager(vbackend, store)
    events = await drain(m.ensure("ada"))
    assert events[-1].step == "failed"
    assert "HTTP 503" in events[-1].message and "ResourceQuota" in events[-1].message
    record = await store.get_sandbox("ada")
    assert record.phase == "failed" and "503" in record.error


async def test_forbidden_is_not_retried_and_other_learners_are_fine(emu, fake, vbackend, store) -> None:
    host = emu["host"]
    host.fail(403, "PATCH", r"/networkpolicies/", times=1)
    m = SandboxManager(vbackend, store)
    events = await drain(m.ensure("ada"))
    assert events[-1].step == "failed" and "forbidden" in events[-1].message.lower()
    assert sum(1 for r in host.requests if "/networkpolicies/" in r.path) == 1  # no retry
    assert (await drain(m.ensure("bob")))[-1].step == "ready"
    assert (await drain(m.ensure("ada")))[-1].step == "ready"  # trying again works


async def test_host_timeout_is_reported(emu, fake) -> None:
    backend = make_vcluster(emu, timeout=(1.0, 0.2), ready_timeout=0.6,
                            retry=Retry(attempts=2, base=0.001, cap=0.001))
    emu["host"].delay(0.5, "GET", r"/statefulsets/kepler$")
    start = time.monotonic()
    events = await drain(backend.provision("ada"))
    assert events[-1].step == "failed"
    assert "control plane not ready" in events[-1].message and "timed out" in events[-1].message
    assert time.monotonic() - start < 5
    emu["host"].clear_faults()


async def test_unreachable_vcluster(emu, fake, store) -> None:
    backend = make_vcluster(emu, ready_timeout=0.5)
    m = SandboxManager(backend, store)
    assert (await drain(m.ensure("ada")))[-1].step == "ready"
    name = (await store.get_sandbox("ada")).name
    fake.virtual(name).unreachable = True
    api = await backend.client_for("ada")
    with pytest.raises(SandboxUnavailable, match=r"connection failed|unreachable"):
        Kube(api, retry=Retry(attempts=2, base=0.001, cap=0.001)).version()
    api.close()
    # A paused sandbox whose API never comes back: resume fails clearly, nobody else suffers.
    await m.pause("ada")
    events = await drain(m.ensure("ada"))
    assert events[-1].step == "failed" and "virtual API server not ready" in events[-1].message
    assert (await store.get_sandbox("ada")).phase == "failed"
    assert (await drain(m.ensure("bob")))[-1].step == "ready"
    fake.virtual(name).unreachable = False
    assert (await drain(m.resume("ada")))[-1].step in ("ready", "failed")


async def test_housekeeping_survives_an_unreachable_host(emu, fake, vbackend, store) -> None:
    clock = Clock()
    m = SandboxManager(vbackend, store, clock=clock,
                       policy=LifecyclePolicy(idle_pause_after=10, warm_pool=1))
    assert (await drain(m.ensure("ada")))[-1].step == "ready"
    emu["host"].unreachable = True
    clock.advance(60)
    counts = await m.tick()  # no exception
    assert counts["paused"] == 0
    assert (await store.get_sandbox("ada")).phase == "ready"  # unchanged, retried next tick
    emu["host"].unreachable = False
    assert (await m.tick())["paused"] == 1


async def test_forbidden_on_delete_raises_clearly(emu, fake, vbackend) -> None:
    await drain(vbackend.provision("ada"))
    emu["host"].fail(403, "DELETE", r"^/api/v1/namespaces/", times=1)
    with pytest.raises(SandboxForbidden, match=r"(?i)forbidden"):
        await vbackend.delete("ada")
