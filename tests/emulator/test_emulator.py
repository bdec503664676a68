"""The emulator speaks the API as the official client and kubectl expect it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.emulator import KubeEmulator
from tests.emulator import objects as ob
from tests.emulator.server import parse_label_selector


@pytest.fixture(scope="module", params=["threads", "asyncio"])
def emu(request: pytest.FixtureRequest) -> Iterator[KubeEmulator]:
    """Both fronts (a thread per connection, one event loop) pass every test here."""
    with KubeEmulator(io=request.param) as e:
        yield e


@pytest.fixture
def cluster_name(emu: KubeEmulator, request: pytest.FixtureRequest) -> str:
    """A fresh cluster per test, seeded with two nodes and the default namespace."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    c = emu.add_cluster(name)
    c.put(ob.namespace("default"), ob.namespace("kube-system"),
          ob.node("kepler-control-plane", control_plane=True), ob.node("kepler-worker"))
    return name


def apis(emu: KubeEmulator, name: str) -> tuple[client.CoreV1Api, client.AppsV1Api]:
    api = client.ApiClient(emu.configuration(name))
    return client.CoreV1Api(api), client.AppsV1Api(api)


def test_typed_lists(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    c.put(ob.namespace("life-support"),
          ob.pod("a", "life-support", {"app": "x"}), ob.pod("b", "default", {"app": "y"}))
    core, _ = apis(emu, cluster_name)
    assert {n.metadata.name for n in core.list_namespace().items} == {
        "default", "kube-system", "life-support"}
    nodes = core.list_node().items
    assert [n.status.node_info.kernel_version for n in nodes] == ["6.8.0-51-generic"] * 2
    assert {p.metadata.name for p in core.list_pod_for_all_namespaces().items} == {"a", "b"}
    assert [p.metadata.name for p in core.list_namespaced_pod("life-support").items] == ["a"]
    ns = core.read_namespace("life-support")
    assert ns.status.phase == "Active"
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "life-support"


def test_deployment_crud_and_generation(emu: KubeEmulator, cluster_name: str) -> None:
    _, apps = apis(emu, cluster_name)
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}
    created = apps.create_namespaced_deployment("default", body)
    assert created.metadata.generation == 1 and created.metadata.uid
    rv1 = int(created.metadata.resource_version)
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", body)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"

    patched = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels":
                                                                  {"tier": "front"}}})
    assert patched.metadata.generation == 1  # metadata only
    assert int(patched.metadata.resource_version) > rv1
    patched = apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2"}]}}}})
    assert patched.metadata.generation == 2
    assert patched.spec.template.spec.containers[0].image == "nginx:2"
    assert patched.metadata.labels == {"app": "web", "tier": "front"}

    # server-side apply creates and records the field manager
    applied = apps.patch_namespaced_deployment(
        "api", "default", {**body, "metadata": {"name": "api"}}, field_manager="kepler",
        _content_type="application/apply-patch+yaml")
    assert applied.metadata.managed_fields[0].manager == "kepler"

    read = apps.read_namespaced_deployment("web", "default")
    assert read.metadata.uid == created.metadata.uid
    apps.delete_namespaced_deployment("web", "default")
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "default")
    status = json.loads(exc.value.body)
    assert exc.value.status == 404
    assert status["kind"] == "Status" and status["reason"] == "NotFound"
    with pytest.raises(ApiException) as exc:
        apps.delete_namespaced_deployment("web", "default")
    assert exc.value.status == 404


def test_create_in_missing_namespace_is_404(emu: KubeEmulator, cluster_name: str) -> None:
    core, _ = apis(emu, cluster_name)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert exc.value.status == 404


def test_status_is_kept_on_update_and_set_via_subresource(emu: KubeEmulator,
                                                          cluster_name: str) -> None:
    emu[cluster_name].put(ob.deployment("web", ready=3, replicas=3))
    _, apps = apis(emu, cluster_name)
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})
    assert d.status.ready_replicas == 3
    d = apps.patch_namespaced_deployment_status("web", "default",
                                                {"status": {"readyReplicas": 4}})
    assert d.status.ready_replicas == 4 and d.spec.replicas == 4


def test_scale_subresource(emu: KubeEmulator, cluster_name: str) -> None:
    emu[cluster_name].put(ob.deployment("web", replicas=2), ob.stateful_set("db", replicas=1))
    _, apps = apis(emu, cluster_name)
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    d = apps.read_namespaced_deployment("web", "default")
    assert d.spec.replicas == 0 and d.metadata.generation == 2
    apps.patch_namespaced_stateful_set_scale("db", "default", {"spec": {"replicas": 0}})
    assert apps.read_namespaced_stateful_set("db", "default").spec.replicas == 0


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", {"w1", "w2"}),
    ("app==web,tier=front", {"w1"}),
    ("app!=web", {"db", "plain"}),
    ("app in (web,db)", {"w1", "w2", "db"}),
    ("app notin (web)", {"db", "plain"}),
    ("tier", {"w1"}),
    ("!tier", {"w2", "db", "plain"}),
])
def test_label_selectors(emu: KubeEmulator, cluster_name: str, selector: str,
                         expected: set[str]) -> None:
    emu[cluster_name].put(ob.pod("w1", labels={"app": "web", "tier": "front"}),
                          ob.pod("w2", labels={"app": "web"}), ob.pod("db", labels={"app": "db"}),
                          ob.pod("plain"))
    # ob.pod("plain") has no labels
    core, _ = apis(emu, cluster_name)
    got = {p.metadata.name for p in
           core.list_pod_for_all_namespaces(label_selector=selector).items}
    assert got == expected


def test_label_selector_parser_rejects_garbage() -> None:
    assert parse_label_selector("")({"a": "b"})
    assert not parse_label_selector("a=b,c")({"a": "b"})


def test_field_selectors(emu: KubeEmulator, cluster_name: str) -> None:
    emu[cluster_name].put(ob.namespace("ops"), ob.pod("r", labels={"app": "x"}),
                          ob.pod("p", "ops", phase="Pending", node_name=None))
    core, _ = apis(emu, cluster_name)
    names = lambda sel: {p.metadata.name for p in  # noqa: E731
                         core.list_pod_for_all_namespaces(field_selector=sel).items}
    assert names("status.phase=Running") == {"r"}
    assert names("status.phase!=Running") == {"p"}
    assert names("metadata.namespace=ops") == {"p"}
    assert names("metadata.name=r,metadata.namespace=default") == {"r"}


def test_watch_streams_events(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    core, _ = apis(emu, cluster_name)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str, str]] = []

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv,
                           timeout_seconds=3):
            seen.append((ev["type"], ev["object"].metadata.name,
                         ev["object"].metadata.resource_version))
            if len(seen) == 3:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})
    c.put(ob.config_map("other", "kube-system"))  # another namespace: not seen
    core.delete_namespaced_config_map("cm", "default")
    t.join(5)
    assert [(t_, n) for t_, n, _ in seen] == [("ADDED", "cm"), ("MODIFIED", "cm"),
                                              ("DELETED", "cm")]
    rvs = [int(r) for _, _, r in seen]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_rv_lists_then_times_out(emu: KubeEmulator, cluster_name: str) -> None:
    core, _ = apis(emu, cluster_name)
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_node, timeout_seconds=1))
    assert time.monotonic() - started < 3
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]


def test_watch_bookmark_and_raw_lines(emu: KubeEmulator, cluster_name: str) -> None:
    api = client.ApiClient(emu.configuration(cluster_name))
    core = client.CoreV1Api(api)
    rv = core.list_namespace().metadata.resource_version
    resp = core.list_namespace(watch=True, resource_version=rv, timeout_seconds=1,
                               allow_watch_bookmarks=True, _preload_content=False)
    lines = [json.loads(x) for x in resp.data.splitlines() if x]
    assert lines[-1]["type"] == "BOOKMARK"
    assert lines[-1]["object"]["metadata"]["resourceVersion"] == rv



def test_a_watch_that_ends_leaves_its_connection_open(emu: KubeEmulator,
                                                       cluster_name: str) -> None:
    """kube-apiserver (Go's HTTP/1.1 server) ends a watch's chunked answer and keeps the
    connection for the next request; so does the emulator (a client reuses it, no new TLS)."""
    import http.client

    c = emu[cluster_name]
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    headers = {"Authorization": f"Bearer {c.token}"}
    try:
        conn.request("GET", f"/clusters/{cluster_name}/api/v1/nodes?watch=1&timeoutSeconds=1",
                     headers=headers)
        answer = conn.getresponse()
        assert answer.status == 200 and answer.getheader("Connection") != "close"
        assert [json.loads(x)["type"] for x in answer.read().splitlines()] == ["ADDED", "ADDED"]
        sock = conn.sock
        conn.request("GET", f"/clusters/{cluster_name}/version", headers=headers)
        again = conn.getresponse()
        assert again.status == 200 and json.loads(again.read())["major"] == "1"
        assert conn.sock is sock  # the same connection answered
    finally:
        conn.close()

def test_kubectl_get_nodes(emu: KubeEmulator, cluster_name: str, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    kc = emu.write_kubeconfig(tmp_path / "config", cluster_name)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}
    out = subprocess.run([kubectl, "--kubeconfig", str(kc), "get", "nodes", "-o", "json"],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["items"]
    assert [n["metadata"]["name"] for n in items] == ["kepler-control-plane", "kepler-worker"]
    out = subprocess.run([kubectl, "--kubeconfig", str(kc), "get", "deploy", "-A"],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 0, out.stderr
    bad = emu.write_kubeconfig(tmp_path / "bad", cluster_name, token="nope")
    out = subprocess.run([kubectl, "--kubeconfig", str(bad), "get", "nodes"],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode != 0 and "Unauthorized" in out.stderr + out.stdout


def test_load_kube_config(emu: KubeEmulator, cluster_name: str, tmp_path: Path) -> None:
    cfg = client.Configuration()
    config.load_kube_config(str(emu.write_kubeconfig(tmp_path / "kc", cluster_name)),
                            client_configuration=cfg)
    assert cfg.host.endswith(f"/clusters/{cluster_name}")
    core = client.CoreV1Api(client.ApiClient(cfg))
    assert len(core.list_node().items) == 2
    config.load_kube_config_from_dict(emu.kubeconfig_dict(cluster_name), client_configuration=cfg)
    assert len(core.list_node().items) == 2


def test_wrong_token_is_401(emu: KubeEmulator, cluster_name: str) -> None:
    core = client.CoreV1Api(client.ApiClient(emu.configuration(cluster_name, token="wrong")))
    with pytest.raises(ApiException) as exc:
        core.list_node()
    assert exc.value.status == 401
    other = emu.add_cluster(cluster_name + "-b")
    core = client.CoreV1Api(client.ApiClient(emu.configuration(cluster_name, token=other.token)))
    with pytest.raises(ApiException):
        core.list_node()


@pytest.mark.parametrize("code", [403, 409, 500, 503])
def test_fault_injection(emu: KubeEmulator, cluster_name: str, code: int) -> None:
    c = emu[cluster_name]
    core, _ = apis(emu, cluster_name)
    c.fail(code, method="GET", path="^/api/v1/nodes$", times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.list_node()
        assert exc.value.status == code
        assert json.loads(exc.value.body)["code"] == code
    assert len(core.list_node().items) == 2  # exhausted
    assert len(core.list_namespace().items) == 2  # other paths unaffected


def test_fault_always(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    core, _ = apis(emu, cluster_name)
    c.fail(503, times=None)
    for _ in range(3):
        with pytest.raises(ApiException):
            core.list_namespace()
    c.clear_faults()
    core.list_namespace()


def test_delay_and_timeout(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    core, _ = apis(emu, cluster_name)
    c.delay(1.0, path="nodes")
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.list_node(_request_timeout=0.2)
    assert time.monotonic() - started < 0.8
    core.list_namespace(_request_timeout=0.5)  # not delayed


def test_unreachable(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    core, _ = apis(emu, cluster_name)
    c.unreachable = True
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_node(_request_timeout=2)
    c.unreachable = False
    assert len(core.list_node().items) == 2


def test_request_log(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    c.clear_requests()
    core, apps = apis(emu, cluster_name)
    core.list_pod_for_all_namespaces(label_selector="app=x")
    apps.list_deployment_for_all_namespaces()
    assert c.count("GET", "/api/v1/pods") == 1
    assert c.count("GET", "/apis/apps/v1/deployments") == 1
    assert c.requests[0].query == {"labelSelector": "app=x"}


def test_many_clusters_on_one_server(emu: KubeEmulator) -> None:
    names = [f"learner-{i}" for i in range(50)]
    for i, n in enumerate(names):
        emu.add_cluster(n).put(*[ob.node(f"{n}-node-{j}") for j in range(i % 3 + 1)])
    for i, n in enumerate(names):
        core, _ = apis(emu, n)
        assert len(core.list_node().items) == i % 3 + 1
        assert core.list_node().items[0].metadata.name.startswith(n)
    assert emu["learner-7"].count("GET", "/api/v1/nodes") == 2


def test_discovery(emu: KubeEmulator, cluster_name: str) -> None:
    api = client.ApiClient(emu.configuration(cluster_name))
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    core_res = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"namespaces", "nodes", "pods", "persistentvolumes", "events"} <= core_res
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "discovery.k8s.io", "storage.k8s.io", "networking.k8s.io", "autoscaling",
            "rbac.authorization.k8s.io"} <= groups
    apps_res = {r.name for r in client.AppsV1Api(api).get_api_resources().resources}
    assert {"deployments", "deployments/scale", "statefulsets/scale"} <= apps_res


def _deserialize(obj: dict[str, Any], type_name: str) -> Any:
    return client.ApiClient().deserialize(json.dumps(obj), type_name, "application/json")


SHAPES: list[tuple[str, Any]] = [
    ("V1Namespace", lambda: ob.namespace("ops", {"team": "ops"})),
    ("V1Node", lambda: ob.node("n1")),
    ("V1Node", lambda: ob.node("n2", ready=False)),
    ("V1Pod", lambda: ob.pod("p", waiting="ImagePullBackOff")),
    ("V1Pod", lambda: ob.pod("p", waiting="CrashLoopBackOff", restarts=4)),
    ("V1Pod", lambda: ob.pod("p", init_containers=[("init", "busybox")],
                             init_waiting="ErrImagePull", volumes=[ob.pvc_volume("data")])),
    ("V1Pod", lambda: ob.pod("p", phase="Pending", node_name=None)),
    ("V1Deployment", lambda: ob.deployment("d", replicas=3, ready=1, stuck=True)),
    ("V1ReplicaSet", lambda: ob.replica_set(ob.deployment("d"))),
    ("V1StatefulSet", lambda: ob.stateful_set("db")),
    ("V1Service", lambda: ob.service("s", type_="LoadBalancer", selector={"app": "x"})),
    ("V1EndpointSlice", lambda: ob.endpoint_slice(ob.service("s"), [ob.pod("p")])),
    ("V1Endpoints", lambda: ob.endpoints(ob.service("s"), [ob.pod("p")])),
    ("V1PersistentVolumeClaim", lambda: ob.pvc("c")),
    ("V1PersistentVolumeClaim", lambda: ob.pvc("c", phase="Pending")),
    ("V1PersistentVolume", lambda: ob.persistent_volume("pv", claim=ob.pvc("c"))),
    ("V1StorageClass", lambda: ob.storage_class()),
    ("V1NetworkPolicy", lambda: ob.network_policy("deny", "ops", from_namespace_labels={"a": "b"})),
    ("V1Ingress", lambda: ob.ingress("i", "ops", "x.local", "s")),
    ("V2HorizontalPodAutoscaler", lambda: ob.hpa("h", target="web")),
    ("CoreV1Event", lambda: ob.event(ob.pvc("c"), "ProvisioningFailed", "no class")),
    ("V1ConfigMap", lambda: ob.config_map("cm", data={"a": "b"})),
    ("V1ClusterRole", lambda: ob.cluster_role("viewer")),
]


@pytest.mark.parametrize(("type_name", "build"), SHAPES)
def test_builders_deserialise_with_the_client(type_name: str, build: Any) -> None:
    obj = build()
    typed = _deserialize(obj, type_name)
    assert typed.metadata.uid == obj["metadata"]["uid"]
    assert typed.metadata.creation_timestamp is not None
    # round trip: nothing the builder wrote is lost (the model knows every field)
    assert _norm(client.ApiClient().sanitize_for_serialization(typed)) == _norm(obj)


def _norm(v: Any) -> Any:
    """Drop nulls and write times as the API does (…Z), for comparing round trips."""
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, str) and v.endswith("+00:00"):
        return v[:-6] + "Z"
    return v


def test_builders_fail_when_required_fields_are_missing() -> None:
    node = ob.node("n1")
    del node["status"]["nodeInfo"]["kernelVersion"]
    with pytest.raises(ValueError):
        _deserialize(node, "V1Node")


def test_served_objects_read_back_typed(emu: KubeEmulator, cluster_name: str) -> None:
    c = emu[cluster_name]
    d = ob.deployment("web", replicas=2)
    rs = ob.replica_set(d)
    pods = ob.deployment_pods(d, rs)
    svc = ob.service("web", selector={"app": "web"})
    claim = ob.pvc("data")
    c.put(d, rs, *pods, svc, ob.endpoint_slice(svc, pods), claim, ob.persistent_volume(
        "pv1", claim=claim), ob.storage_class(), ob.network_policy("deny", "default"),
        ob.hpa("web"), ob.event(claim, "ProvisioningFailed", "x"))
    api = client.ApiClient(emu.configuration(cluster_name))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    pod = core.list_pod_for_all_namespaces().items[0]
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.metadata.owner_references[0].controller is True
    assert apps.list_replica_set_for_all_namespaces().items[0].metadata.owner_references[0].name \
        == "web"
    assert client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces().items[0] \
        .endpoints[0].conditions.ready is True
    assert core.list_persistent_volume().items[0].spec.claim_ref.name == "data"
    assert client.StorageV1Api(api).list_storage_class().items[0].provisioner
    assert client.NetworkingV1Api(api).list_network_policy_for_all_namespaces().items
    hpa = client.AutoscalingV2Api(api).list_horizontal_pod_autoscaler_for_all_namespaces()
    assert hpa.items[0].status.current_metrics[0].resource.name == "cpu"
    assert core.list_event_for_all_namespaces().items[0].reason == "ProvisioningFailed"
