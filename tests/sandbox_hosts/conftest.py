"""Several emulated host clusters, each with its own stand-in for vcluster, behind a HostPool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.backends.vcluster import VClusterBackend
from sandbox.hosts import HostConfig, HostPool
from sandbox.placement import Capacity, Footprint
from sandbox.provision import HostSettings
from tests.emulator.server import KubeEmulator
from tests.sandbox_lifecycle.conftest import (  # noqa: F401 (fixtures)
    ALL_REQUIREMENTS,
    CHART_DEFAULTS,
    FAST,
    FakeVCluster,
    fake,
    store,
    vbackend,
)

HOSTS = ("ams", "fra", "par")
EACH = Footprint(cpu_m=250, memory=512 * 2**20)


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


@pytest.fixture
def fakes(emu: KubeEmulator) -> Iterator[dict[str, FakeVCluster]]:
    running = {h: FakeVCluster(emu, host=h).start() for h in HOSTS}
    yield running
    for f in running.values():
        f.stop()


def host_backend(emu: KubeEmulator, host: str) -> VClusterBackend:
    return VClusterBackend(
        emu.api_client(host), settings=HostSettings(host_template=f"{{namespace}}.{host}.test"),
        requirements=ALL_REQUIREMENTS, chart_defaults=CHART_DEFAULTS, access="secret",
        poll=0.01, ready_timeout=3.0, retry=FAST)  # fmt: skip


def make_pool(emu: KubeEmulator, caps: dict[str, Capacity] | None = None) -> HostPool:
    caps = caps or {}
    configs = [HostConfig(name=h, capacity=caps.get(h, Capacity(max_sandboxes=2))) for h in HOSTS]
    return HostPool({h: host_backend(emu, h) for h in HOSTS}, configs, each=EACH)


@pytest.fixture
def pool(emu: KubeEmulator, fakes: dict[str, FakeVCluster]) -> Iterator[HostPool]:
    yield make_pool(emu)


def sandboxes_on(emu: KubeEmulator, host: str) -> dict[str, str]:
    """namespace -> learner, for the learners' sandboxes on one emulated host."""
    out = {}
    for ns in emu[host].list("Namespace"):
        meta = ns["metadata"]
        learner = (meta.get("annotations") or {}).get("kepler.station/learner")
        if learner and (meta.get("labels") or {}).get("kepler.station/learner-hash"):
            out[meta["name"]] = learner
    return out
