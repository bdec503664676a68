"""The workbench pod: what is rendered, how it is fenced in, and its life with the sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.provision import HostSettings, SandboxSpec, render
from sandbox.workbench import (
    BASHRC,
    ETC,
    IMAGE_HELP,
    POD,
    WorkbenchSettings,
    image_is_pinned,
    objects,
)
from tests.emulator import KubeEmulator
from tests.sandbox_lifecycle.conftest import (
    ALL_REQUIREMENTS,
    CHART_DEFAULTS,
    FakeVCluster,
    drain,
    make_vcluster,
)
from tests.web.conftest import IMAGE

NS = "kepler-0123456789"


def spec(image: str = IMAGE, paused: bool = False, exposure: str = "Ingress") -> SandboxSpec:
    host = HostSettings(exposure=exposure, node_address="203.0.113.7", workbench_image=image)  # type: ignore[arg-type]
    return SandboxSpec(NS, ALL_REQUIREMENTS, host, CHART_DEFAULTS, "ada", "abc", paused=paused)


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def workbench_sts(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in by_kind(objs, "StatefulSet") if o["metadata"]["name"] == "workbench")


def test_no_image_no_workbench_and_the_sandbox_is_unchanged() -> None:
    assert objects(NS, WorkbenchSettings("")) == []
    plain = render(spec(image=""))
    assert not [o for o in plain if o["metadata"]["name"].startswith("workbench")]


def test_the_image_must_be_pinned_by_digest() -> None:
    assert image_is_pinned(IMAGE)
    for bad in ("alpine/k8s:1.32.4", "alpine/k8s@sha256:abc", "alpine/k8s:latest@sha256:" + "g" * 64):
        assert not image_is_pinned(bad)
        with pytest.raises(ValueError, match="digest"):
            objects(NS, WorkbenchSettings(bad))
    assert "sha256" in IMAGE_HELP


def test_pod_is_small_non_root_without_a_host_token() -> None:
    objs = render(spec())
    sts = workbench_sts(objs)
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == IMAGE
    assert pod["automountServiceAccountToken"] is False
    sa = next(o for o in by_kind(objs, "ServiceAccount") if o["metadata"]["name"] == "workbench")
    assert sa["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Pod Security baseline: nothing from the host, nothing privileged.
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in pod["volumes"])
    assert not c["securityContext"].get("privileged")
    from kubernetes.utils import parse_quantity

    req = c["resources"]["requests"]
    assert parse_quantity(req["cpu"]) <= parse_quantity("50m")
    assert parse_quantity(req["memory"]) <= parse_quantity("96Mi")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/home/learner"]["name"] == "home"  # the claim template: survives pause
    assert mounts["/etc/kepler/kubeconfig"]["readOnly"] is True
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "home"
    assert sts["spec"]["replicas"] == 1
    assert workbench_sts(render(spec(paused=True)))["spec"]["replicas"] == 0


def test_the_learners_kubeconfig_comes_from_vcluster_with_the_inner_service_address() -> None:
    import base64

    import yaml

    objs = render(spec())
    config = next(o for o in by_kind(objs, "Secret") if o["metadata"]["name"] == "vc-config-kepler")
    values = yaml.safe_load(base64.b64decode(config["data"]["config.yaml"]))
    (extra,) = values["exportKubeConfig"]["additionalSecrets"]
    assert extra["name"] == "vc-workbench" and extra["namespace"] == NS
    assert extra["server"] == f"https://kepler.{NS}.svc:443"
    assert extra["serviceAccount"]["name"] == "kepler-learner"
    vols = {v["name"]: v for v in workbench_sts(objs)["spec"]["template"]["spec"]["volumes"]}
    assert vols["kubeconfig"]["secret"]["secretName"] == "vc-workbench"


def test_network_policy_lets_it_reach_only_its_own_api() -> None:
    objs = render(spec())
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(objs, "NetworkPolicy")}
    mine = policies["workbench-only-own-api"]
    assert mine["ingress"] == [] and set(mine["policyTypes"]) == {"Ingress", "Egress"}
    (api,) = mine["egress"]
    assert api["to"] == [{"podSelector": {"matchLabels": {"app": "vcluster", "release": "kepler"}}}]
    assert api["ports"] == [{"protocol": "TCP", "port": 8443}]
    # It selects the workbench only: never a learner's synced pod wearing its label.
    assert mine["podSelector"]["matchExpressions"] == [
        {"key": "vcluster.loft.sh/managed-by", "operator": "DoesNotExist"}]
    # The control plane admits the namespace's own pods (the workbench among them).
    peers = policies["kepler-control-plane"]["ingress"][0]["from"]
    assert {"podSelector": {}} in peers


def test_rc_points_kubectl_at_the_service_ip_and_keeps_the_tls_name(tmp_path: Path) -> None:
    """No DNS in the workbench: the rc file rewrites the copied kubeconfig's server to the
    service-link address and keeps the Service's name for TLS (real bash, real kubectl)."""
    import subprocess

    etc, home = tmp_path / "etc", tmp_path / "home"
    (etc / "kubeconfig").mkdir(parents=True)
    home.mkdir()
    (etc / "kubeconfig" / "config").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kepler-station",
        "clusters": [{"name": "kepler-station", "cluster": {"server": f"https://kepler.{NS}.svc:443"}}],
        "contexts": [{"name": "kepler-station", "context": {"cluster": "kepler-station", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))  # fmt: skip
    rc = etc / "workbench.bashrc"
    rc.write_text(BASHRC.replace(ETC, str(etc)))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "KEPLER_SERVICE_HOST": "10.96.7.9",
           "KEPLER_SERVICE_PORT_HTTPS": "443", "WORKBENCH_API_NAME": f"kepler.{NS}.svc"}
    out = subprocess.run(["bash", "--rcfile", str(rc), "-i", "-c", "true"], env=env, cwd=home,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load((home / ".kube" / "config").read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.96.7.9:443"
    assert cluster["tls-server-name"] == f"kepler.{NS}.svc"
    assert oct((home / ".kube" / "config").stat().st_mode & 0o777) == "0o600"


def test_quota_grows_by_the_home_volume() -> None:
    plain = by_kind(render(spec(image="")), "ResourceQuota")[0]["spec"]["hard"]
    withwb = by_kind(render(spec()), "ResourceQuota")[0]["spec"]["hard"]
    assert int(withwb["persistentvolumeclaims"]) == int(plain["persistentvolumeclaims"]) + 1
    from kubernetes.utils import parse_quantity

    grown = parse_quantity(withwb["requests.storage"]) - parse_quantity(plain["requests.storage"])
    assert grown == parse_quantity("256Mi")


@pytest.mark.parametrize("exposure", ["Ingress", "NodePort"])
def test_rendered_objects_validate(exposure: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    objs = [o for o in render(spec(exposure=exposure))
            if o["metadata"]["name"].startswith("workbench")]  # the rest: tests/sandbox_lifecycle
    assert len(objs) == 4
    for obj in objs:
        kv.validate(obj, "1.31", strict=True)


# --- with the sandbox: paused, resumed, reset, deleted ------------------------------------------


@pytest.fixture
def host() -> Iterator[tuple[KubeEmulator, FakeVCluster]]:
    with KubeEmulator() as e:
        fake = FakeVCluster(e).start()
        try:
            yield e, fake
        finally:
            fake.stop()


async def test_workbench_lives_and_sleeps_with_the_sandbox(host: tuple[KubeEmulator, FakeVCluster]) -> None:
    emu, _ = host
    backend = make_vcluster(emu, settings=HostSettings(host_template="{namespace}.sandbox.test",
                                                       workbench_image=IMAGE))  # fmt: skip
    events = await drain(backend.provision("ada"))
    assert events[-1].step == "ready", events
    ns = backend._namespace_of("ada")
    assert ns is not None
    h = emu.cluster("host")

    def replicas(namespace: str) -> int:
        sts = h.get("StatefulSet", "workbench", namespace)
        assert sts is not None
        return int(sts["spec"]["replicas"])

    assert replicas(ns) == 1
    assert h.get("ConfigMap", "workbench-rc", ns) is not None
    await backend.pause("ada")
    assert replicas(ns) == 0
    events = await drain(backend.resume("ada"))
    assert events[-1].step == "ready"
    assert replicas(ns) == 1
    events = await drain(backend.reset("ada"))
    assert events[-1].step == "ready"
    fresh = backend._namespace_of("ada")
    assert fresh is not None and fresh != ns
    assert replicas(fresh) == 1  # a new workbench (and home) with the new sandbox
    await backend.delete("ada")
    assert h.get("Namespace", fresh) is None or h.get("Namespace", fresh)["metadata"].get(
        "deletionTimestamp")
    assert POD == "workbench-0"
    await backend.close()
