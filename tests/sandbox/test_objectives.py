"""Each objective kind: a passing state, and near misses failing with the right reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from sandbox.objectives import (
    EvalContext,
    ObjectiveSpec,
    Snapshot,
    evaluate,
    evaluate_all,
    kinds_for,
    mismatch,
    quantity,
)
from tests.emulator import objects as ob

_ADAPTER: TypeAdapter[Any] = TypeAdapter(ObjectiveSpec)


def spec(kind: str, **fields: Any) -> Any:
    return _ADAPTER.validate_python({
        "kind": kind, "id": fields.pop("id", "obj"), "title": "T", "reason": "Not yet.",
        "hints": ["a", "b", "c"], **fields})


def snap(*objs: dict[str, Any]) -> Snapshot:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        out.setdefault(o["kind"], []).append(o)
    return Snapshot(out)


def check(s: Any, *objs: dict[str, Any], ctx: EvalContext | None = None) -> tuple[bool, str]:
    r = evaluate(s, snap(*objs), ctx or EvalContext())
    assert r.passed == (r.reason == "")
    if not r.passed:
        assert r.reason.startswith("Not yet.")
    return r.passed, r.reason


# --- match ---------------------------------------------------------------------------------


def test_match_passes_on_a_partial_spec() -> None:
    s = spec("match", target={"kind": "Deployment", "name": "web", "namespace": "ops"},
             fields={"metadata": {"labels": {"tier": "front"}},
                     "spec": {"template": {"spec": {"containers": [
                         {"resources": {"requests": {"cpu": "0.5"}}}]}}}})
    d = ob.deployment("web", "ops", labels={"app": "web", "tier": "front"})
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}}
    assert check(s, d) == (True, "")


def test_match_right_name_wrong_label() -> None:
    s = spec("match", target={"kind": "Deployment", "name": "web", "namespace": "ops"},
             fields={"metadata": {"labels": {"tier": "front"}}})
    passed, reason = check(s, ob.deployment("web", "ops", labels={"app": "web", "tier": "back"}))
    assert not passed
    assert "Deployment web: metadata.labels.tier is 'back', expected 'front'" in reason


def test_match_target_labels_and_other_namespace() -> None:
    s = spec("match", target={"kind": "Pod", "name": "p", "namespace": "ops",
                              "labels": {"app": "x"}})
    assert "Pod p does not carry app=x" in check(s, ob.pod("p", "ops", {"app": "y"}))[1]
    assert "Pod p is in namespace default, not ops" in check(s, ob.pod("p", "default"))[1]
    assert "no Pod named p in namespace ops" in check(s)[1]


def test_match_min_max_and_empty_scope() -> None:
    s = spec("match", target={"kind": "Pod", "labels": {"app": "x"}}, fields={}, min=2, max=2)
    pods = [ob.pod(f"p{i}", labels={"app": "x"}) for i in range(3)]
    assert check(s, *pods[:2])[0]
    assert "3 Pods match, at most 2 allowed" in check(s, *pods)[1]
    assert "no Pods with app=x" in check(s)[1]


def test_mismatch_lists_need_distinct_elements() -> None:
    actual = {"ports": [{"port": 80, "name": "http"}]}
    assert mismatch({"ports": [{"port": 80}]}, actual) is None
    assert mismatch({"ports": [{"port": 80}, {"port": 80}]}, actual) is not None
    assert mismatch({"ports": [{"port": "80"}]}, actual) is None
    assert "ports[0].port is 80, expected 443" in str(mismatch({"ports": [{"port": 443}]}, actual))
    assert quantity("1Gi") == quantity("1024Mi") and quantity("0.5") == quantity("500m")
    assert mismatch({"a": True}, {"a": "True"}) is not None


# --- ready_pods -------------------------------------------------------------------------------


def test_ready_pods() -> None:
    s = spec("ready_pods", namespace="life", labels={"app": "atmospheric-control"}, min=2)
    d = ob.deployment("atmospheric-control", "life", replicas=2)
    assert check(s, *ob.deployment_pods(d)) == (True, "")
    passed, reason = check(s, *ob.deployment_pods(d, ready=1))
    assert not passed
    assert "1 of 2 pods with app=atmospheric-control Ready" in reason
    assert "not Ready" in reason


def test_ready_pods_deleting_and_empty() -> None:
    s = spec("ready_pods", labels={"app": "x"})
    assert "is being deleted" in check(s, ob.pod("p", labels={"app": "x"}, deleting=True))[1]
    assert "no Pods with app=x" in check(s, ob.pod("p", labels={"app": "y"}))[1]


def test_ready_pods_distinct_nodes() -> None:
    s = spec("ready_pods", labels={"app": "x"}, min=2, distinct_nodes=True)
    n1, n2 = ob.node("n1"), ob.node("n2")
    same = [ob.pod(f"p{i}", labels={"app": "x"}, node_name="n1") for i in range(2)]
    spread = [ob.pod(f"p{i}", labels={"app": "x"}, node_name=f"n{i + 1}") for i in range(2)]
    assert check(s, n1, n2, *spread)[0]
    assert "run on 1 node (n1); need 2 distinct nodes" in check(s, n1, n2, *same)[1]
    # one Ready node: as far as the cluster allows
    assert check(s, n1, ob.node("n2", ready=False), *same)[0]
    assert kinds_for([s]) == {"Pod", "Node"}


# --- condition / nodes ---------------------------------------------------------------------------


def test_condition() -> None:
    s = spec("condition", target={"kind": "Deployment", "name": "web"}, type="Available")
    assert check(s, ob.deployment("web"))[0]
    passed, reason = check(s, ob.deployment("web", replicas=2, ready=0))
    assert not passed and "Available is False (MinimumReplicasUnavailable" in reason
    assert "no Deployment named web" in check(s)[1]


def test_nodes_ready() -> None:
    s = spec("nodes_ready", min=2)
    assert check(s, ob.node("a"), ob.node("b"))[0]
    assert "1 of 2 nodes Ready and schedulable (not Ready: b)" in check(
        s, ob.node("a"), ob.node("b", False))[1]
    cordoned = ob.node("c")
    cordoned["spec"]["unschedulable"] = True
    one = spec("nodes_ready", min=1)
    assert "cordoned (SchedulingDisabled): c" in check(one, cordoned)[1]
    assert "no nodes" in check(s)[1]


# --- rollout ------------------------------------------------------------------------------------


def test_rollout_complete() -> None:
    s = spec("rollout_complete", name="web", namespace="ops", image="kepler/web:v2",
             min_replicas=3)
    assert check(s, ob.deployment("web", "ops", 3, image="kepler/web:v2"))[0]


def test_rollout_stuck_on_old_image() -> None:
    s = spec("rollout_complete", name="web", image="kepler/web:v2")
    # spec moved to v2 but the new pods cannot start: stuck
    stuck = ob.deployment("web", replicas=2, image="kepler/web:v2", updated=1, ready=2,
                          available=2, stuck=True)
    passed, reason = check(s, stuck)
    assert not passed and "rollout is stuck: ProgressDeadlineExceeded" in reason
    # spec still on v1
    old = ob.deployment("web", replicas=2, image="kepler/web:v1")
    assert "container web runs image kepler/web:v1, expected kepler/web:v2" in check(s, old)[1]


def test_rollout_partial_and_unobserved() -> None:
    s = spec("rollout_complete", name="web")
    partial = ob.deployment("web", replicas=3, updated=2, ready=2)
    assert "2 updated, 2 ready, 2 available of 3 replicas" in check(s, partial)[1]
    unobserved = ob.deployment("web", generation=3, observed_generation=2)
    assert "has not yet seen generation 3" in check(s, unobserved)[1]
    assert "wants 0 replicas" in check(s, ob.deployment("web", replicas=0))[1]
    assert check(s, ob.deployment("web", image="nginx"))[0]


# --- services --------------------------------------------------------------------------------------


def test_service_endpoints() -> None:
    s = spec("service_endpoints", name="web", namespace="ops", min_ready=2, type="ClusterIP")
    svc = ob.service("web", "ops", {"app": "web"})
    d = ob.deployment("web", "ops", replicas=2)
    pods = ob.deployment_pods(d)
    assert check(s, svc, ob.endpoint_slice(svc, pods))[0]
    half = ob.endpoint_slice(svc, pods, ready=[True, False])
    assert "1 of 2 endpoints ready" in check(s, svc, half)[1]
    assert "selects no pods (selector app=web)" in check(s, svc, ob.endpoint_slice(svc, []))[1]
    lb = spec("service_endpoints", name="web", namespace="ops", type="LoadBalancer")
    assert "is type ClusterIP, expected LoadBalancer" in check(lb, svc)[1]
    # a slice of another service does not count
    other = ob.service("db", "ops", {"app": "db"})
    assert not check(s, svc, ob.endpoint_slice(other, pods))[0]


def _with_port(pod: dict[str, Any], port: int, name: str | None = "http") -> dict[str, Any]:
    pod["spec"]["containers"][0]["ports"] = [
        {"containerPort": port, "protocol": "TCP", **({"name": name} if name else {})}]
    return pod


def test_service_routes_only_to_a_port_the_container_declares() -> None:
    """Endpoints alone are not enough: a numeric targetPort fills them whether or not anything
    listens there, so the selected pods must declare the port (by number or by name)."""
    s = spec("service_endpoints", name="web", namespace="ops", min_ready=2)
    d = ob.deployment("web", "ops", replicas=2)
    pods = [_with_port(p, 9898) for p in ob.deployment_pods(d)]
    right = ob.service("web", "ops", {"app": "web"}, 80, 9898)
    assert check(s, right, ob.endpoint_slice(right, pods), *pods)[0]
    named = ob.service("web", "ops", {"app": "web"}, 80, "http")
    assert check(s, named, ob.endpoint_slice(named, pods), *pods)[0]
    deaf = ob.service("web", "ops", {"app": "web"}, 80, 8080)
    ok, why = check(s, deaf, ob.endpoint_slice(deaf, pods), *pods)
    assert not ok
    assert "sends traffic to targetPort 8080, but Pod " in why
    assert "has no container listening on port 8080 (it declares 9898 (http))" in why
    typo = ob.service("web", "ops", {"app": "web"}, 80, "htpp")
    # a real cluster leaves pods whose named port does not resolve out of the endpoints
    ok, why = check(s, typo, ob.endpoint_slice(typo, []), *pods)
    assert not ok and "has no container port named htpp" in why
    # a UDP port does not answer TCP traffic
    udp = [_with_port(p, 8080) for p in ob.deployment_pods(d)]
    for p in udp:
        p["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert not check(s, deaf, ob.endpoint_slice(deaf, udp), *udp)[0]


def test_resources_set() -> None:
    s = spec("resources_set", namespace="ops", labels={"app": "web"})
    d = ob.deployment("web", "ops", replicas=2)
    pods = ob.deployment_pods(d)
    bounded = {"requests": {"cpu": "50m", "memory": "64Mi"},
               "limits": {"cpu": "0.2", "memory": "128Mi"}}
    for p in pods:
        p["spec"]["containers"][0]["resources"] = bounded
    assert check(s, *pods)[0]
    pods[1]["spec"]["containers"][0]["resources"] = {"requests": bounded["requests"]}
    assert "sets no cpu limit" in check(s, *pods)[1]
    pods[1]["spec"]["containers"][0]["resources"] = {
        "requests": bounded["requests"], "limits": {"cpu": "20m", "memory": "128Mi"}}
    assert "cpu limit 20m is below its request 50m" in check(s, *pods)[1]
    pods[1]["spec"]["containers"][0]["resources"] = bounded
    pods[1]["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "OOMKilled", "exitCode": 137}}
    assert "was OOMKilled" in check(s, *pods)[1]
    elsewhere = spec("resources_set", namespace="default", labels={"app": "web"})
    assert "(found in namespace ops instead)" in check(elsewhere, *pods)[1]


def test_pod_replaced() -> None:
    s = spec("pod_replaced", name="vault", namespace="default", claim="data")
    first = ob.pod("vault", volumes=[ob.pvc_volume("data")], ready=True)
    scheduled = ob.event(first, "Scheduled", "Successfully assigned default/vault", "Normal")
    ok, why = check(s, first, scheduled)
    assert not ok and "is the first of its name" in why
    second = ob.pod("vault", volumes=[ob.pvc_volume("data")], ready=True)
    second["metadata"]["uid"] = "another-uid"
    assert check(s, second, scheduled)[0]
    other_claim = ob.pod("vault", volumes=[ob.pvc_volume("scratch")], ready=True)
    other_claim["metadata"]["uid"] = "another-uid"
    assert "does not mount claim data" in check(s, other_claim, scheduled)[1]
    not_ready = ob.pod("vault", volumes=[ob.pvc_volume("data")], ready=False)
    not_ready["metadata"]["uid"] = "another-uid"
    assert not check(s, not_ready, scheduled)[0]


def test_scaled_up() -> None:
    s = spec("scaled_up", namespace="research", deployment="analysis")
    h = ob.hpa("analysis-hpa", "research", "analysis", min_replicas=2, current=3)
    ok, why = check(s, h)
    assert not ok and "has not scaled up under load yet (3 replicas" in why
    down = ob.event(h, "SuccessfulRescale", "New size: 2; reason: All metrics below target",
                    "Normal")
    assert not check(s, h, down)[0]
    up = ob.event(h, "SuccessfulRescale", "New size: 4; reason: cpu resource utilization "
                  "(percentage of request) above target", "Normal")
    assert check(s, h, down, up)[0]
    elsewhere = spec("scaled_up", namespace="default", deployment="analysis")
    assert "(found in namespace research instead)" in check(elsewhere, h, up)[1]


# --- storage -------------------------------------------------------------------------------------


def test_pvc_bound_and_mounted() -> None:
    s = spec("pvc_bound", name="data", namespace="vault", storage_class="standard")
    claim = ob.pvc("data", "vault")
    user = ob.pod("db", "vault", volumes=[ob.pvc_volume("data")])
    assert check(s, claim, user)[0]
    assert "no Running pod mounts it" in check(s, claim)[1]
    pending_user = ob.pod("db", "vault", phase="Pending", node_name=None,
                          volumes=[ob.pvc_volume("data")])
    assert "its pod is not Running: Pod db is Pending" in check(s, claim, pending_user)[1]
    assert kinds_for([s]) == {"PersistentVolumeClaim", "Pod", "Event"}


def test_pvc_pending_says_why() -> None:
    s = spec("pvc_bound", name="data", namespace="vault", mounted=False)
    claim = ob.pvc("data", "vault", phase="Pending", storage_class_name="fast")
    ev = ob.event(claim, "ProvisioningFailed", 'storageclass.storage.k8s.io "fast" not found')
    passed, reason = check(s, claim, ev)
    assert not passed
    assert 'is Pending: ProvisioningFailed: storageclass.storage.k8s.io "fast" not found' in reason
    assert reason.endswith("not found")
    assert "is Pending" in check(s, claim)[1]
    wrong = spec("pvc_bound", name="data", namespace="vault", storage_class="standard")
    assert "uses storage class fast, expected standard" in check(wrong, claim)[1]


# --- namespaces --------------------------------------------------------------------------------


def test_namespaces() -> None:
    s = spec("namespaces", names=["life", "eng"], labels={"team": "{name}", "station": "kepler"})
    good = [ob.namespace(n, {"team": n, "station": "kepler"}) for n in ("life", "eng")]
    assert check(s, *good)[0]
    wrong = ob.namespace("eng", {"team": "life", "station": "kepler"})
    passed, reason = check(s, good[0], wrong)
    assert not passed
    assert "namespace eng lacks label team=eng (has team=life)" in reason
    assert "namespace eng does not exist" in check(s, good[0])[1]
    term = ob.namespace("eng", {"team": "eng", "station": "kepler"}, phase="Terminating")
    assert "namespace eng is Terminating" in check(s, good[0], term)[1]


# --- network policy ------------------------------------------------------------------------


def test_network_policy() -> None:
    s = spec("network_policy", namespace="vault", name="deny-all", policy_types=["Ingress"])
    assert check(s, ob.network_policy("deny-all", "vault"))[0]
    passed, reason = check(s, ob.network_policy("deny-all", "default"))
    assert not passed and "NetworkPolicy deny-all is in namespace default, not vault" in reason
    some = ob.network_policy("deny-all", "vault", pod_selector={"app": "db"})
    assert "selects only some pods" in check(s, some)[1]
    eg = spec("network_policy", namespace="vault", policy_types=["Ingress", "Egress"])
    assert "missing Egress" in check(eg, ob.network_policy("x", "vault"))[1]
    assert "no NetworkPolicy in namespace vault" in check(eg)[1]


def test_network_policy_allows_from_namespace() -> None:
    s = spec("network_policy", namespace="vault", allows_from_namespace="ops")
    nss = [ob.namespace(n) for n in ("vault", "ops", "dev")]
    ok = ob.network_policy("from-ops", "vault",
                           from_namespace_labels={"kubernetes.io/metadata.name": "ops"})
    assert check(s, ok, *nss)[0]
    wide = ob.network_policy("from-all", "vault", from_namespace_labels={})
    assert "also admits namespaces dev, vault" in check(s, wide, *nss)[1]
    other = ob.network_policy("from-dev", "vault",
                              from_namespace_labels={"kubernetes.io/metadata.name": "dev"})
    assert "also admits namespace dev" in check(s, other, *nss)[1]
    none = ob.network_policy("deny", "vault")
    assert "does not admit ingress from namespace ops" in check(s, none, *nss)[1]
    open_rule = ob.network_policy("open", "vault", ingress=[{}])
    assert "without 'from'" in check(s, open_rule, *nss)[1]


# --- autoscaler --------------------------------------------------------------------------------


def test_autoscaler() -> None:
    s = spec("autoscaler", namespace="ops", deployment="web", min_replicas=2, max_replicas=6,
             metrics=["cpu"], able_to_scale=True)
    d = ob.deployment("web", "ops")
    good = ob.hpa("web", "ops", target="web", min_replicas=2, max_replicas=6)
    assert check(s, d, good)[0]
    other = ob.hpa("web", "ops", target="api", min_replicas=2, max_replicas=6)
    assert "targets Deployment api, not Deployment web" in check(s, d, other)[1]
    bounds = ob.hpa("web", "ops", target="web", min_replicas=1, max_replicas=6)
    assert "minReplicas 1, expected 2" in check(s, d, bounds)[1]
    blind = ob.hpa("web", "ops", target="web", min_replicas=2, max_replicas=6,
                   metrics_available=False)
    assert "ScalingActive is False (FailedGetResourceMetric" in check(s, d, blind)[1]
    assert "which does not exist" in check(s, good)[1]
    assert "no HorizontalPodAutoscaler in namespace ops" in check(s, d)[1]


# --- failing pods ------------------------------------------------------------------------------


def test_no_failing_pods() -> None:
    s = spec("no_failing_pods", namespace="life")
    assert check(s, ob.pod("ok", "life"))[0]
    bad = ob.pod("atmospheric-processor-backup", "life",
                 containers=[("oxygen-recycler", "kepler-station/x:v1")],
                 waiting="ImagePullBackOff")
    passed, reason = check(s, ob.pod("ok", "life"), bad)
    assert not passed
    assert reason.endswith("Pod atmospheric-processor-backup: container oxygen-recycler is "
                           "waiting: ImagePullBackOff (image kepler-station/x:v1)")
    crash = ob.pod("c", "life", waiting="CrashLoopBackOff")
    assert "CrashLoopBackOff" in check(s, crash, bad)[1] and "(and 1 more)" in check(
        s, crash, bad)[1]
    init = ob.pod("i", "life", init_containers=[("setup", "busybox:bad")],
                  init_waiting="ErrImagePull")
    assert "init container setup is waiting: ErrImagePull (image busybox:bad)" in check(s, init)[1]
    assert "no Pods in namespace life" in check(s)[1]
    cfg = ob.pod("k", "life", waiting="CreateContainerConfigError")
    assert "CreateContainerConfigError" in check(s, cfg)[1]


# --- recovered ---------------------------------------------------------------------------------


def test_recovered() -> None:
    s = spec("recovered", deployment="web", namespace="ops")
    drill = ob.ago(60)
    d = ob.deployment("web", "ops", replicas=2)
    old = ob.deployment_pods(d, created=ob.ago(600))
    new = ob.deployment_pods(d, created=ob.ago(10))
    ctx = EvalContext(drill_started_at=drill)
    assert "waiting for the drill" in check(s, d, *new)[1]
    assert "no Ready pod created since the drill" in check(s, d, *old, ctx=ctx)[1]
    assert check(s, d, old[0], new[1], ctx=ctx)[0]
    down = ob.deployment("web", "ops", replicas=2, ready=1)
    assert "1 of 2 replicas Ready" in check(s, down, *new, ctx=ctx)[1]
    assert drill + timedelta(seconds=1) > drill


def test_evaluate_all_keeps_order() -> None:
    specs = [spec("nodes_ready", id="a"), spec("no_failing_pods", id="b")]
    results = evaluate_all(specs, snap(ob.node("n")))
    assert [(r.id, r.passed) for r in results] == [("a", True), ("b", False)]


@pytest.mark.parametrize("kind_fields", [
    ("ready_pods", {}), ("nodes_ready", {}), ("no_failing_pods", {}),
    ("namespaces", {"names": ["x"]}), ("rollout_complete", {"name": "x"}),
    ("service_endpoints", {"name": "x"}), ("pvc_bound", {"name": "x"}),
    ("network_policy", {"namespace": "x"}), ("autoscaler", {"deployment": "x"}),
    ("recovered", {"deployment": "x"}),
    ("resources_set", {}), ("pod_replaced", {"name": "x"}), ("scaled_up", {"deployment": "x"}),
    ("match", {"target": {"kind": "Pod"}}),
    ("condition", {"target": {"kind": "Pod"}, "type": "Ready"}),
])
def test_empty_cluster_never_passes(kind_fields: tuple[str, dict[str, Any]]) -> None:
    kind, fields = kind_fields
    r = evaluate(spec(kind, **fields), Snapshot({}), EvalContext(drill_started_at=ob.ago(5)))
    assert not r.passed and r.detail


@pytest.mark.parametrize(
    ("text", "value"),
    [("500n", "0.0000005"), ("250u", "0.00025"), ("1e3", "1000"), ("500m", "0.5"),
     ("1Gi", "1073741824"), ("2", "2"), (2, "2"), ("0.5", "0.5"), ("1k", "1000")],
)
def test_quantities_parse_as_the_api_does(text: object, value: str) -> None:
    from decimal import Decimal

    from sandbox.objectives import quantity

    assert quantity(text) == Decimal(value)


@pytest.mark.parametrize("junk", ["x", "", "1.2.3", True, None, "Mi5"])
def test_junk_is_not_a_quantity(junk: object) -> None:
    from sandbox.objectives import quantity

    assert quantity(junk) is None
