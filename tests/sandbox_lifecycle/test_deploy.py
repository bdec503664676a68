"""deploy/: the host RBAC is what the code says, and every manifest is valid Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.provision import bot_cluster_role, host_rbac

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_host_rbac_file_matches_the_code() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "host-rbac.yaml").read_text()))
    assert docs == host_rbac()


def test_bot_has_no_wildcards_and_binds_only_the_syncer_roles() -> None:
    rules = bot_cluster_role()["rules"]
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rules)
    binds = [r for r in rules if "bind" in r["verbs"] or "escalate" in r["verbs"]]
    assert binds == [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                      "verbs": ["bind"], "resourceNames": ["kepler-vcluster-syncer",
                                                           "kepler-vcluster-syncer-cluster"]}]
    assert not any("pods/exec" in r["resources"] for r in rules)


@pytest.mark.parametrize("name", ["host-rbac.yaml", "host-admission.yaml"])
def test_manifests_validate(name: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
        kv.validate(doc, "1.31", strict=True)


@pytest.mark.parametrize("exposure", ["Ingress", "LoadBalancer", "NodePort"])
def test_rendered_sandbox_objects_validate(exposure: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    from sandbox.provision import HostSettings, SandboxSpec, render
    from tests.sandbox_lifecycle.conftest import ALL_REQUIREMENTS, CHART_DEFAULTS

    spec = SandboxSpec("kepler-0123456789", ALL_REQUIREMENTS,
                       HostSettings(exposure=exposure, node_address="203.0.113.7"),  # type: ignore[arg-type]
                       CHART_DEFAULTS, "ada", "abc")  # fmt: skip
    for obj in render(spec):
        kv.validate(obj, "1.31", strict=True)
