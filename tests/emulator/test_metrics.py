"""The emulated Metrics API answers as metrics-server does: real ``kubectl top`` reads it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.apply import Kube
from tests.emulator.metrics import BASE, MetricsServer, usage
from tests.emulator.server import KubeEmulator

T0 = 1_750_000_000.0


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


def _pod(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
            "status": {"phase": "Running"}}  # fmt: skip


def _metrics(emu: KubeEmulator) -> MetricsServer:
    c = emu.cluster("ams")
    c.put(_pod("web-1", {"app": "web"}), _pod("db-1", {"app": "db"}), _pod("new-1", {"app": "web"}))
    size = {"cpu": "4", "memory": "16Gi"}
    c.put({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "node-1", "labels": {"role": "worker"}},
           "status": {"capacity": size, "allocatable": size}})  # fmt: skip
    m = MetricsServer.install(c)
    m.set_pod("default", "web-1", {"main": usage(3.521873, 50.03515625)}, T0)
    m.set_pod("default", "db-1", {"main": usage(120, 300), "sidecar": usage(5, 20)}, T0)
    m.set_node("node-1", usage(1500, 4096), T0)
    return m


def test_pod_and_node_metrics_have_metrics_servers_shape(emu: KubeEmulator) -> None:
    _metrics(emu)
    kube = Kube(emu.api_client("ams"))
    listing = kube.raw("GET", f"{BASE}/pods", query={"labelSelector": "app=web"})
    assert listing["kind"] == "PodMetricsList" and listing["apiVersion"] == "metrics.k8s.io/v1beta1"
    [web] = listing["items"]  # new-1 matches but has no figure yet: left out
    assert web["metadata"]["name"] == "web-1" and web["metadata"]["labels"] == {"app": "web"}
    assert web["timestamp"] == "2025-06-15T15:06:40Z" and web["window"] == "15s"
    assert web["containers"] == [{"name": "main", "usage": {"cpu": "3521873n",
                                                            "memory": "51236Ki"}}]
    db = kube.raw("GET", f"{BASE}/namespaces/default/pods/db-1")
    assert db["kind"] == "PodMetrics" and [c["name"] for c in db["containers"]] == ["main",
                                                                                "sidecar"]
    [node] = kube.raw("GET", f"{BASE}/nodes", query={"labelSelector": "role=worker"})["items"]
    assert node["usage"] == {"cpu": "1500000000n", "memory": "4194304Ki"}
    assert kube.raw("GET", f"{BASE}/nodes", query={"labelSelector": "role=db"})["items"] == []


@pytest.mark.parametrize("args,expect", [
    (["top", "pod", "-n", "default", "--containers"],
     {("db-1", "main"): ("120m", "300Mi"), ("db-1", "sidecar"): ("5m", "20Mi"),
      ("web-1", "main"): ("4m", "50Mi")}),  # kubectl rounds 3.52m up
    (["top", "node"], {("node-1",): ("1500m", "4096Mi")}),  # 37% and 25% of allocatable
])  # fmt: skip
def test_kubectl_top_reads_it(emu: KubeEmulator, tmp_path: Path, args: list[str],
                              expect: dict) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    _metrics(emu)
    kc = emu.write_kubeconfig(tmp_path / "kc", "ams")
    out = subprocess.run([kubectl, "--kubeconfig", str(kc), *args], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    n = len(next(iter(expect)))
    assert {tuple(r[:n]): (r[n], r[n + 1] if args[1] == "pod" else r[n + 2]) for r in rows} == expect


def test_a_cluster_without_it_answers_404(emu: KubeEmulator, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    kc = emu.write_kubeconfig(tmp_path / "kc", "fra")
    out = subprocess.run([kubectl, "--kubeconfig", str(kc), "top", "pod"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode != 0 and "Metrics API not available" in out.stderr
