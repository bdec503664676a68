"""``kepler sandbox render``: the one render path, as operators run it."""

from __future__ import annotations

import base64

import pytest
import yaml

from bot.cli import build_parser, main
from bot.commands.sandbox import render_yaml
from sandbox.backends.vcluster import VClusterBackend
from sandbox.provision import (
    ANP_API,
    VALUES_SHA256,
    syncer_cluster_roles,
)
from tests.sandbox_lifecycle.chart_values import PINNED_VALUES
from tests.sandbox_lifecycle.conftest import drain, make_vcluster


def _render(*argv: str) -> list[dict]:
    args = build_parser().parse_args(["sandbox", "render", *argv])
    return list(yaml.safe_load_all(render_yaml(args, chart_defaults=PINNED_VALUES, env={})))


def test_render_prints_every_host_object_in_apply_order() -> None:
    docs = _render("--learner", "ada")
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace" and kinds[-1] == "StatefulSet"
    assert {"AdminNetworkPolicy", "ResourceQuota", "LimitRange", "NetworkPolicy", "Secret",
            "Service", "Ingress"} <= set(kinds)  # fmt: skip
    ns = docs[0]["metadata"]["name"]
    assert ns == _render("--learner", "ada")[0]["metadata"]["name"]  # stable per learner
    assert docs[0]["metadata"]["annotations"]["kepler.station/learner"] == "ada"


@pytest.mark.parametrize("exposure", ["Ingress", "LoadBalancer", "NodePort"])
def test_render_exposure_modes(exposure: str) -> None:
    docs = _render("--learner", "ada", "--exposure", exposure)
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "kepler")
    assert svc["spec"]["type"] == ("ClusterIP" if exposure == "Ingress" else exposure)
    assert any(d["kind"] == "Ingress" for d in docs) is (exposure == "Ingress")


def test_in_cluster_lets_the_bot_namespace_in() -> None:
    def callers(docs: list[dict]) -> list:
        cp = next(d for d in docs if d["metadata"]["name"] == "kepler-control-plane")
        return cp["spec"]["ingress"][0]["from"]

    bot = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "kepler-system"}}}
    assert bot in callers(_render("--learner", "ada", "--in-cluster"))
    assert bot not in callers(_render("--learner", "ada"))
    host_wide = _render("--learner", "ada", "--host-wide")
    assert [d["metadata"]["name"] for d in host_wide if d["kind"] == "AdminNetworkPolicy"][:3] == [
        "kepler-sandbox-dns", "kepler-control-planes", "kepler-sandbox-isolation"]


def test_render_refuses_values_that_are_not_the_pinned_file(tmp_path, capsys) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("controlPlane: {}\n")
    assert main(["sandbox", "render", "--learner", "ada", "--values", str(bad)]) == 2
    assert VALUES_SHA256 in capsys.readouterr().err


def test_coredns_forwards_to_public_resolvers_not_the_node() -> None:
    docs = _render("--learner", "ada")
    secret = next(d for d in docs if d["kind"] == "Secret")
    config = yaml.safe_load(base64.b64decode(secret["data"]["config.yaml"]))
    corefile = config["controlPlane"]["coredns"]["overwriteConfig"]
    assert "forward . 1.1.1.1 8.8.8.8" in corefile and "/etc/resolv.conf" not in corefile
    assert ".:1053 {" in corefile  # the port vcluster's CoreDNS listens on, unprivileged


def test_endpoint_sync_matches_the_syncer_role() -> None:
    """chart/templates/role.yaml grants endpoints writes exactly when endpoint sync is on."""
    docs = _render("--learner", "ada")
    secret = next(d for d in docs if d["kind"] == "Secret")
    config = yaml.safe_load(base64.b64decode(secret["data"]["config.yaml"]))
    rules = syncer_cluster_roles()[0]["rules"]
    writes = {v for r in rules if "endpoints" in r["resources"] for v in r["verbs"]}
    assert config["sync"]["toHost"]["endpoints"]["enabled"] is True
    assert {"create", "delete", "patch", "update"} <= writes


async def test_provisioning_refuses_a_host_without_admin_network_policy(emu, fake) -> None:
    emu["host"].fail(404, "GET", f"/apis/{ANP_API}", times=None)
    backend: VClusterBackend = make_vcluster(emu)
    events = await drain(backend.provision("ada"))
    assert events[-1].step == "failed" and "AdminNetworkPolicy" in events[-1].message
    assert emu["host"].list("Namespace") == [] or all(
        not n["metadata"]["name"].startswith("kepler-") for n in emu["host"].list("Namespace"))
