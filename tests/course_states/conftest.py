"""One emulator for the package; each test seeds fresh logical clusters in it and reads them
through the engine's Cluster port (``ClusterService`` over a kubeconfig backend)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from kubernetes import client

from bot.engine.ports import CheckResult
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.objectives import EvalContext, ObjectiveResult, ObjectiveSpec
from sandbox.service import ClusterService
from tests.course_states.states import Station
from tests.emulator import KubeEmulator

_ids = itertools.count(1)


@pytest.fixture(scope="session")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


def seed(emu: KubeEmulator, label: str, station: Station | Sequence[dict[str, Any]]) -> str:
    """A new logical cluster holding the station's objects; its name."""
    name = f"{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')[:40]}-{next(_ids)}"
    objs = station.objects() if isinstance(station, Station) else list(station)
    emu.add_cluster(name).put(*objs)
    return name


class EmulatedLearners(KubeconfigBackend):
    """Learner id → a logical cluster of the emulator (each with its own kubeconfig)."""

    def __init__(self, emu: KubeEmulator, learners: dict[str, str]):
        super().__init__(config_dict={})
        self.configs = {lid: emu.kubeconfig_dict(cluster) for lid, cluster in learners.items()}

    async def client_for(self, learner_id: str) -> client.ApiClient:
        self._dict = self.configs[learner_id]
        return self._client()


def service(emu: KubeEmulator, cluster: str, timeout: float = 5.0) -> ClusterService:
    return ClusterService(KubeconfigBackend(config_dict=emu.kubeconfig_dict(cluster)),
                          timeout=timeout)


async def evaluate(emu: KubeEmulator, cluster: str, objectives: Sequence[ObjectiveSpec],
                   ctx: EvalContext | None = None, timeout: float = 5.0) -> CheckResult:
    svc = service(emu, cluster, timeout)
    try:
        return await svc.evaluate(cluster, objectives, ctx or EvalContext())
    finally:
        svc.forget(cluster)


async def judge(emu: KubeEmulator, label: str, station: Station,
                objectives: Sequence[ObjectiveSpec]) -> dict[str, ObjectiveResult]:
    """Serve ``station`` and evaluate ``objectives`` over HTTP: id → result."""
    result = await evaluate(emu, seed(emu, label, station), objectives, station.context())
    assert result.error is None, result.error
    return {r.id: r for r in result.results}
