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
        # Syncer mode (opt-in): the control plane takes ``lag`` ticks to change its replica
        # count and runs as a host pod; while it runs, it syncs each virtual pod to a host pod
        # and recreates host pods deleted under it; when it starts again after being at 0,
        # it deletes the virtual bare pods that had started and whose host pod is gone — as
        # vcluster's syncer does.
        self.syncer = False
        self.lag = 5
        self._lagging: dict[str, int] = {}
        self.recreated: list[str] = []  # host pods the "syncer" recreated after a deletion
        self.deleted_on_start: list[str] = []
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
        if self.syncer:
            want = self._lagged(ns, sts, want)
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


    # -- syncer mode --

    def _lagged(self, ns: str, sts: dict, want: int) -> int:
        running = (sts.get("status") or {}).get("replicas", 0)
        if running != want:
            self._lagging[ns] = self._lagging.get(ns, 0) + 1
            if self._lagging[ns] < self.lag:
                want = running
            else:
                self._lagging.pop(ns)
                self._control_plane_pod(ns, want > 0)
                if running == 0 and want > 0:
                    self._on_start(ns)
        if want > 0:
            self._sync_pods(ns)
        return want

    def _control_plane_pod(self, ns: str, exists: bool) -> None:
        if exists:
            self.host.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "kepler-0", "namespace": ns,
                "labels": {"app": "vcluster", "release": "kepler"}}, "spec": {}})
        else:
            self.host.remove("Pod", "kepler-0", ns)

    @staticmethod
    def host_name(pod: dict) -> str:
        return f"{pod['metadata']['name']}-x-{pod['metadata']['namespace']}-x-kepler"

    def _sync_pods(self, ns: str) -> None:
        if f"vc-{ns}" not in self.emu.clusters:
            return
        vc = self.emu.cluster(f"vc-{ns}")
        for pod in vc.list("Pod"):
            name = self.host_name(pod)
            if self.host.get("Pod", name, ns) is None:
                if (pod.get("spec") or {}).get("nodeName"):
                    self.recreated.append(name)
                self.host.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": name, "namespace": ns,
                    "labels": {"vcluster.loft.sh/managed-by": "kepler"}}, "spec": {}})
            if not (pod.get("spec") or {}).get("nodeName"):
                pod["spec"]["nodeName"] = "node-1"
                pod["status"] = {"phase": "Running"}
                vc.put(pod)

    def _on_start(self, ns: str) -> None:
        if f"vc-{ns}" not in self.emu.clusters:
            return
        vc = self.emu.cluster(f"vc-{ns}")
        for pod in vc.list("Pod"):
            started = (pod.get("spec") or {}).get("nodeName")
            bare = not (pod.get("metadata") or {}).get("ownerReferences")
            if started and bare and self.host.get("Pod", self.host_name(pod), ns) is None:
                vc.remove("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
                self.deleted_on_start.append(pod["metadata"]["name"])


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
