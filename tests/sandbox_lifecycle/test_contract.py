"""Both backends keep the same contract."""

from __future__ import annotations

import pytest
import yaml

from sandbox.apply import Kube
from sandbox.backends.base import STEPS, SandboxBackend, SandboxRefused
from tests.sandbox_lifecycle.conftest import drain


@pytest.fixture(params=["vcluster", "kubeconfig"])
def backend(request, emu, fake) -> SandboxBackend:
    return request.getfixturevalue("vbackend" if request.param == "vcluster" else "kbackend")


async def test_provision_reports_progress_then_ready(backend) -> None:
    events = await drain(backend.provision("ada"))
    steps = [e.step for e in events]
    assert steps[-1] == "ready" and events[-1].done
    assert steps == [s for s in STEPS if s in steps]  # in order, a subset of the four
    assert all(e.learner_id == "ada" for e in events)


async def test_client_and_kubeconfig_reach_the_cluster(backend, emu) -> None:
    await drain(backend.provision("ada"))
    api = await backend.client_for("ada")
    try:
        assert Kube(api).version()["gitVersion"]
    finally:
        api.close()
    config = yaml.safe_load(await backend.kubeconfig_for("ada"))
    assert config["clusters"] and config["users"] and config["current-context"]


async def test_list_pause_resume(backend) -> None:
    await drain(backend.provision("ada"))
    [info] = [i for i in await backend.list() if i.learner_id == "ada"]
    assert info.phase == "ready" and info.created > 0
    await backend.pause("ada")
    events = await drain(backend.resume("ada"))
    assert events[-1].step == "ready"
    [info] = [i for i in await backend.list() if i.learner_id == "ada"]
    assert info.phase == "ready"


async def test_delete_removes_or_refuses(backend) -> None:
    await drain(backend.provision("ada"))
    if backend.name == "kubeconfig":
        with pytest.raises(SandboxRefused):
            await backend.delete("ada")
        return
    await backend.delete("ada")
    assert [i for i in await backend.list() if i.learner_id == "ada"] == []
    await backend.delete("ada")  # idempotent
