"""Two emulated host clusters behind a HostPool, each with a stand-in for vcluster, and a store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.hosts import HostConfig, HostPool
from tests.emulator.server import KubeEmulator
from tests.sandbox_hosts.conftest import EACH, host_backend
from tests.sandbox_lifecycle.conftest import FakeVCluster, store  # noqa: F401 (fixture)

HOSTS = ("ams", "fra")


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


@pytest.fixture
def pool(emu: KubeEmulator) -> Iterator[HostPool]:
    fakes = [FakeVCluster(emu, host=h).start() for h in HOSTS]
    yield HostPool({h: host_backend(emu, h) for h in HOSTS}, [HostConfig(name=h) for h in HOSTS],
                   each=EACH)  # fmt: skip
    for f in fakes:
        f.stop()
