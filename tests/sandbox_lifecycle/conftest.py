"""Fixtures: an emulated host cluster, a stand-in for vcluster's own behaviour, both backends.

The emulator has no controllers, so :class:`FakeVCluster` plays the parts a real host and
vcluster would: it marks the control plane StatefulSet ready when it has replicas, and — as
vcluster does once its API server is up — writes the kubeconfig Secret ``vc-kepler`` that
points at a fresh logical cluster ``vc-<namespace>`` of the same emulator.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest
import yaml

from bot.store.sqlite import SQLiteStore
from sandbox.apply import Retry
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.backends.vcluster import VClusterBackend
from sandbox.provision import HostSettings
from tests.emulator.server import KubeEmulator
from tests.sandbox_lifecycle.chart_values import PINNED_VALUES

ALL_REQUIREMENTS = frozenset({"storage-class", "network-policy-sync", "metrics-server",
                              "load-balancer"})  # fmt: skip
FAST = Retry(attempts=4, base=0.001, cap=0.005)

# The pinned chart's values at the paths the renderer reads (see chart_values.py).
CHART_DEFAULTS = PINNED_VALUES


class FakeVCluster:
    """Background thread: ready StatefulSets, kubeconfig Secrets, one virtual cluster each."""

    def __init__(self, emu: KubeEmulator, host: str = "host"):
        self.emu = emu
        self.host = emu.cluster(host)
        self.hold: set[str] = set()  # namespaces whose control plane never becomes ready
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-vcluster")

    def start(self) -> FakeVCluster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def virtual(self, namespace: str):
        """The learner's virtual cluster (a fresh one has default and kube-system, as vcluster)."""
        fresh = f"vc-{namespace}" not in self.emu.clusters
        vc = self.emu.cluster(f"vc-{namespace}")
        if fresh:
            for name in ("default", "kube-system"):
                vc.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return vc

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            with self.host.lock:
                for sts in self.host.list("StatefulSet"):
                    self._step(sts)

    def _step(self, sts: dict) -> None:
        ns = sts["metadata"]["namespace"]
        want = sts.get("spec", {}).get("replicas", 1)
        ready = 0 if ns in self.hold else want
        if sts.get("status", {}).get("readyReplicas") != ready:
            sts["status"] = {"replicas": want, "readyReplicas": ready,
                             "availableReplicas": ready}  # fmt: skip
            self.host.put(sts)
        if ready and self.host.get("Secret", "vc-kepler", ns) is None:
            self.virtual(ns)
            kubeconfig = self.emu.kubeconfig_dict(f"vc-{ns}")
            self.host.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                           "metadata": {"name": "vc-kepler", "namespace": ns},
                           "data": {"config": base64.b64encode(
                               yaml.safe_dump(kubeconfig).encode()).decode()}})  # fmt: skip


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


@pytest.fixture
def fake(emu: KubeEmulator) -> Iterator[FakeVCluster]:
    f = FakeVCluster(emu).start()
    yield f
    f.stop()


def make_vcluster(emu: KubeEmulator, requirements: frozenset[str] = ALL_REQUIREMENTS,
                  **kw) -> VClusterBackend:  # fmt: skip
    settings = kw.pop("settings", HostSettings(host_template="{namespace}.sandbox.test"))
    return VClusterBackend(emu.api_client("host"), settings=settings, requirements=requirements,
                           chart_defaults=CHART_DEFAULTS, access="secret", poll=0.01,
                           ready_timeout=kw.pop("ready_timeout", 3.0), retry=kw.pop("retry", FAST), **kw)  # fmt: skip


@pytest.fixture
def vbackend(emu: KubeEmulator, fake: FakeVCluster) -> VClusterBackend:
    return make_vcluster(emu)


@pytest.fixture
def kbackend(emu: KubeEmulator) -> KubeconfigBackend:
    return KubeconfigBackend(config_dict=emu.kubeconfig_dict("byo"), retry=FAST)


@pytest.fixture
async def store() -> Iterator[SQLiteStore]:
    s = await SQLiteStore(":memory:").open()
    yield s
    await s.close()


class Clock:
    def __init__(self, t: float = 1_750_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


async def drain(events) -> list:
    return [e async for e in events]
