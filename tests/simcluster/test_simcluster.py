"""The simulated cluster behaves as Kubernetes documents it, seen through real kubectl v1.32."""

from __future__ import annotations

import json
from pathlib import Path

from tests.simcluster import SimCluster
from tests.simcluster.controllers import pod_ready

PODINFO = "ghcr.io/stefanprodan/podinfo"


def _deployment(name: str, image: str, replicas: int = 3, surge: int | str = 1,
                unavailable: int | str = 0, extra: str = "", port_name: str = "http") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: {image}
          ports:
            - name: {port_name}
              containerPort: 9898
{extra}"""


def _apply(sim: SimCluster, text: str, *args: str, check: bool = True):
    return sim.kubectl("apply", "-f", "-", *args, stdin=text, check=check)


def _pods(sim: SimCluster, app: str, ns: str = "default") -> list[dict]:
    return [p for p in sim.list("Pod", ns) if p["metadata"].get("labels", {}).get("app") == app]


def _history(sim: SimCluster, kind: str) -> list[tuple[int, str, dict]]:
    with sim.cluster.lock:
        return [(e.rv, e.type, e.obj) for e in sim.cluster._history if e.kind == kind]


def test_discovery_openapi_and_table_output(sim: SimCluster) -> None:
    out = sim.kubectl("api-resources").stdout
    assert "deployments" in out and "endpointslices" in out and "horizontalpodautoscalers" in out
    nodes = sim.kubectl("get", "nodes").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["kepler-control-plane", "Ready", "control-plane"]
    sc = sim.kubectl("get", "storageclass").stdout
    assert "standard (default)" in sc and "WaitForFirstConsumer" in sc
    # kubectl validates against the served OpenAPI v3 and asks the server to be strict
    typo = _deployment("typo", f"{PODINFO}:6.7.1").replace("image:", "imagee:")
    bad = sim.kubectl("create", "-f", "-", stdin=typo, check=False)
    assert bad.returncode != 0
    assert 'strict decoding error: unknown field "spec.template.spec.containers[0].imagee"' \
        in bad.stderr
    assert sim.get("Deployment", "typo", "default") is None


def test_selector_must_match_template_labels(sim: SimCluster) -> None:
    text = _deployment("web", f"{PODINFO}:6.7.1").replace(
        "matchLabels: {app: web}", "matchLabels: {app: webb}")
    proc = sim.kubectl("create", "-f", "-", stdin=text, check=False)
    assert proc.returncode == 1
    assert "`selector` does not match template `labels`" in proc.stderr


def test_rolling_update_honours_surge_and_unavailable_then_undo(sim: SimCluster) -> None:
    _apply(sim, _deployment("web", f"{PODINFO}:6.7.0", replicas=3, surge=1, unavailable=0))
    sim.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    sim.settle()
    start = max(rv for rv, _, _ in _history(sim, "Pod"))
    sim.kubectl("set", "image", "deployment/web", f"web={PODINFO}:6.7.1")
    sim.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    sim.settle()
    # replay the pod events of the update: never more than 3 + 1 pods, never fewer than 3 ready
    live: dict[str, dict] = {p["metadata"]["uid"]: p for p in _pods(sim, "web")}
    live = {}
    for rv, type_, obj in _history(sim, "Pod"):
        if obj["metadata"].get("labels", {}).get("app") != "web":
            continue
        if type_ == "DELETED":
            live.pop(obj["metadata"]["uid"], None)
        else:
            live[obj["metadata"]["uid"]] = obj
        if rv > start:
            assert len(live) <= 4, f"maxSurge exceeded at rv {rv}: {len(live)} pods"
            assert sum(pod_ready(p) for p in live.values()) >= 3, f"maxUnavailable at rv {rv}"
    images = {p["spec"]["containers"][0]["image"] for p in _pods(sim, "web")}
    assert images == {f"{PODINFO}:6.7.1"}
    assert len(_pods(sim, "web")) == 3
    history = sim.kubectl("rollout", "history", "deployment/web").stdout
    assert "1 " in history and "2 " in history
    sim.kubectl("rollout", "undo", "deployment/web")
    sim.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    sim.settle()
    images = {p["spec"]["containers"][0]["image"] for p in _pods(sim, "web")}
    assert images == {f"{PODINFO}:6.7.0"}
    d = sim.get("Deployment", "web", "default")
    assert d is not None and d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert len(sim.list("ReplicaSet", "default")) == 2  # the undo reused revision 1's set


def test_missing_image_backs_off_and_old_pods_keep_serving(sim: SimCluster) -> None:
    _apply(sim, _deployment("web", f"{PODINFO}:6.7.0", replicas=2, surge=1, unavailable=0))
    sim.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    sim.kubectl("set", "image", "deployment/web", f"web={PODINFO}:0.0.0")
    sim.settle()
    table = sim.kubectl("get", "pods", "-l", "app=web").stdout
    assert table.count("ImagePullBackOff") == 1 and table.count("Running") == 2
    assert sum(pod_ready(p) for p in _pods(sim, "web")) == 2
    proc = sim.kubectl("rollout", "status", "deployment/web", "--timeout=1s", check=False)
    assert proc.returncode != 0
    events = sim.kubectl("get", "events", "--field-selector", "reason=Failed").stdout
    assert "ErrImagePull" in events and "not found" in events
    sim.kubectl("rollout", "undo", "deployment/web")
    sim.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    sim.settle()
    assert "BackOff" not in sim.kubectl("get", "pods").stdout


def test_containers_that_exit_crash_loop_and_ones_that_wait_run(sim: SimCluster) -> None:
    sim.kubectl("run", "crash", "--image=busybox:1.36")
    sim.kubectl("run", "sleeper", "--image=busybox:1.36", "--", "sleep", "3600")
    sim.kubectl("run", "nope", "--image=no-such-registry.example/app:1")
    sim.settle()
    rows = {line.split()[0]: line.split() for line in sim.kubectl("get", "pods").stdout.splitlines()[1:]}
    assert rows["crash"][2] == "CrashLoopBackOff" and rows["crash"][3].startswith("1")
    assert rows["sleeper"][1:3] == ["1/1", "Running"]
    assert rows["nope"][2] == "ImagePullBackOff"


def test_probes_only_pass_on_ports_the_container_listens_on(sim: SimCluster) -> None:
    probe = """          readinessProbe:
            httpGet: {path: /readyz, port: PORT}
"""
    _apply(sim, _deployment("good", f"{PODINFO}:6.7.1", replicas=1,
                            extra=probe.replace("PORT", "http")))
    _apply(sim, _deployment("deaf", f"{PODINFO}:6.7.1", replicas=1,
                            extra=probe.replace("PORT", "8080")))
    live = """          livenessProbe:
            tcpSocket: {port: 8080}
"""
    _apply(sim, _deployment("dying", f"{PODINFO}:6.7.1", replicas=1, extra=live))
    sim.settle()
    [good], [deaf], [dying] = _pods(sim, "good"), _pods(sim, "deaf"), _pods(sim, "dying")
    assert pod_ready(good) and not pod_ready(deaf)
    assert deaf["status"]["phase"] == "Running"
    state = dying["status"]["containerStatuses"][0]
    assert state["state"]["waiting"]["reason"] == "CrashLoopBackOff" and state["restartCount"] >= 1
    described = sim.kubectl("describe", "pod", deaf["metadata"]["name"]).stdout
    assert "Readiness probe failed" in described and ":8080/readyz" in described


def test_services_route_only_to_ready_pods_and_keep_a_wrong_numeric_port(sim: SimCluster) -> None:
    probe = """          readinessProbe:
            httpGet: {path: /readyz, port: http}
"""
    _apply(sim, _deployment("web", f"{PODINFO}:6.7.1", replicas=2, extra=probe))
    sim.kubectl("run", "stray", "--image=nginx:1.27", "--labels=app=web")  # ready, no "http" port
    sim.kubectl("create", "service", "clusterip", "web", "--tcp=80:http")
    sim.kubectl("create", "service", "clusterip", "wrong", "--tcp=80:8080")
    sim.kubectl("set", "selector", "service/wrong", "app=web")
    sim.settle()
    slices = [s for s in sim.list("EndpointSlice", "default")
              if s["metadata"]["labels"]["kubernetes.io/service-name"] == "web"]
    # the nginx pod has no port named http: it lands in a slice without ports
    by_port = {tuple(p["port"] for p in s.get("ports") or []): s for s in slices}
    assert set(by_port) == {(9898,), ()}
    assert len(by_port[(9898,)]["endpoints"]) == 2
    # a numeric targetPort nothing listens on still gets endpoints (Kubernetes does not probe)
    wrong = [s for s in sim.list("EndpointSlice", "default")
             if s["metadata"]["labels"]["kubernetes.io/service-name"] == "wrong"]
    assert sum(len(s.get("endpoints", [])) for s in wrong) == 3
    assert {p["port"] for s in wrong for p in s["ports"]} == {8080}
    out = sim.kubectl("get", "endpoints", "web").stdout
    assert ":9898" in out
    # a pod that stops being ready leaves the ready set
    sim.kubectl("set", "image", "deployment/web", f"web={PODINFO}:0.0.0")
    sim.settle()
    ep = sim.get("Endpoints", "web", "default")
    assert ep is not None and len(ep["subsets"][0]["addresses"]) == 2
    assert ep["subsets"][0].get("notReadyAddresses")


def test_storage_waits_for_first_consumer_and_binds_static_volumes(sim: SimCluster) -> None:
    claim = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: vault}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""
    sim.kubectl("create", "-f", "-", stdin=claim)
    sim.settle()
    pvc = sim.get("PersistentVolumeClaim", "vault", "default")
    assert pvc is not None and pvc["status"]["phase"] == "Pending"
    assert pvc["spec"]["storageClassName"] == "standard"  # DefaultStorageClass admission
    assert "waiting for first consumer" in sim.kubectl("describe", "pvc", "vault").stdout
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"}, "spec": {
        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "vault"}}]}}
    sim.kubectl("create", "-f", "-", stdin=json.dumps(pod))
    sim.settle()
    pvc = sim.get("PersistentVolumeClaim", "vault", "default")
    assert pvc is not None and pvc["status"]["phase"] == "Bound"
    pv = sim.get("PersistentVolume", pvc["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["claimRef"]["name"] == "vault"
    assert "Used By:       user" in sim.kubectl("describe", "pvc", "vault").stdout
    # no class: only a static volume without a class can satisfy it
    classless = claim.replace("vault", "manual").replace("spec:\n", 'spec:\n  storageClassName: ""\n')
    sim.kubectl("create", "-f", "-", stdin=classless)
    sim.settle()
    assert sim.get("PersistentVolumeClaim", "manual", "default")["status"]["phase"] == "Pending"
    static = """apiVersion: v1
kind: PersistentVolume
metadata: {name: shelf}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  hostPath: {path: /tmp/shelf}
"""
    sim.kubectl("create", "-f", "-", stdin=static)
    sim.settle()
    manual = sim.get("PersistentVolumeClaim", "manual", "default")
    assert manual["status"]["phase"] == "Bound" and manual["spec"]["volumeName"] == "shelf"
    # a class that does not exist never provisions
    sim.kubectl("create", "-f", "-", stdin=claim.replace("vault", "ghost").replace(
        "spec:\n", "spec:\n  storageClassName: fast\n"))
    sim.settle()
    assert 'storageclass.storage.k8s.io "fast" not found' in sim.kubectl(
        "describe", "pvc", "ghost").stdout


def test_autoscaler_reads_simulated_metrics(sim: SimCluster) -> None:
    res = """          resources:
            requests: {cpu: 50m, memory: 32Mi}
"""
    _apply(sim, _deployment("calc", f"{PODINFO}:6.7.1", replicas=2, extra=res))
    _apply(sim, _deployment("bare", f"{PODINFO}:6.7.1", replicas=2))
    sim.kubectl("expose", "deployment", "calc", "--port=80", "--target-port=http")
    hpa = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: NAME}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: NAME}
  minReplicas: 2
  maxReplicas: 6
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
"""
    _apply(sim, hpa.replace("NAME", "calc"))
    _apply(sim, hpa.replace("NAME", "bare"))
    sim.settle()
    calc = sim.get("HorizontalPodAutoscaler", "calc", "default")
    assert calc["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 4
    assert calc["status"]["desiredReplicas"] == 2
    bare = sim.get("HorizontalPodAutoscaler", "bare", "default")
    active = next(c for c in bare["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False" and "missing request for cpu" in active["message"]
    sim.set_load("default", "calc", 200)  # 100m a pod on 50m requests: 200 % → 6 (max)
    sim.settle()
    assert sim.get("Deployment", "calc", "default")["spec"]["replicas"] == 6
    out = sim.kubectl("get", "hpa", "calc").stdout
    assert "cpu: " in out and "/70%" in out
    # metrics-server's API, as kubectl top reads it: the same simulated usage
    top = sim.kubectl("top", "pods", "-l", "app=calc").stdout.splitlines()
    assert len(top) == 7 and all(35 <= int(line.split()[1][:-1]) <= 36 for line in top[1:])
    assert sim.kubectl("top", "nodes").stdout.splitlines()[1].startswith("kepler-control-plane")


def test_apply_three_way_and_server_side_apply_remove_what_was_dropped(sim: SimCluster) -> None:
    env = """          env:
            - {name: MODE, value: storm}
"""
    _apply(sim, _deployment("web", f"{PODINFO}:6.7.1", replicas=1, extra=env))
    _apply(sim, _deployment("web", f"{PODINFO}:6.7.1", replicas=2))
    d = sim.get("Deployment", "web", "default")
    assert d["spec"]["replicas"] == 2 and "env" not in d["spec"]["template"]["spec"]["containers"][0]
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, labels: {a: '1', b: '2'}}\n" \
         "data: {k: v}\n"
    sim.kubectl("apply", "--server-side", "-f", "-", stdin=cm)
    sim.kubectl("apply", "--server-side", "-f", "-", stdin=cm.replace(", b: '2'", ""))
    assert sim.get("ConfigMap", "cfg", "default")["metadata"]["labels"] == {"a": "1"}
    sim.kubectl("label", "configmap", "cfg", "c=3")
    assert sim.get("ConfigMap", "cfg", "default")["metadata"]["labels"] == {"a": "1", "c": "3"}


def test_deleting_a_deployment_collects_its_replica_sets_and_pods(sim: SimCluster,
                                                                  tmp_path: Path) -> None:
    _apply(sim, _deployment("web", f"{PODINFO}:6.7.1", replicas=2))
    sim.settle()
    assert len(_pods(sim, "web")) == 2
    sim.kubectl("delete", "deployment", "web")
    sim.settle()
    assert _pods(sim, "web") == [] and sim.list("ReplicaSet", "default") == []
    logs = sim.kubectl("run", "talker", "--image=nginx:1.27")
    assert logs.returncode == 0
    sim.settle()
    assert "Configuration complete" in sim.kubectl("logs", "talker").stdout


def test_typed_commands_send_protobuf_and_it_is_decoded(sim: SimCluster) -> None:
    # kubectl's typed clients (create namespace/deployment/service) send
    # application/vnd.kubernetes.protobuf; the simulator reads it with kubectl's own descriptors
    sim.cluster.clear_requests()
    sim.kubectl("create", "namespace", "bay")
    sim.kubectl("create", "deployment", "web", "-n", "bay", f"--image={PODINFO}:6.7.1",
                "--replicas=2", "--port=9898")
    sim.kubectl("create", "service", "nodeport", "web", "-n", "bay", "--tcp=80:9898")
    sim.settle()
    ns = sim.get("Namespace", "bay")
    assert ns is not None and ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "bay"
    d = sim.get("Deployment", "web", "bay")
    assert d is not None and d["spec"]["replicas"] == 2
    [c] = d["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"{PODINFO}:6.7.1" and c["ports"] == [{"containerPort": 9898,
                                                                  "protocol": "TCP"}]
    svc = sim.get("Service", "web", "bay")
    assert svc is not None and svc["spec"]["ports"][0]["targetPort"] == 9898
    assert svc["spec"]["ports"][0]["nodePort"] >= 30000
    assert d["status"]["readyReplicas"] == 2


def test_the_plain_emulator_refuses_protobuf_bodies(sim_emulator) -> None:
    import urllib.error
    import urllib.request

    plain = sim_emulator.add_cluster("plain-protobuf")
    req = urllib.request.Request(
        sim_emulator.url("plain-protobuf") + "/api/v1/namespaces", data=b"k8s\x00\x0a\x00",
        method="POST", headers={"Content-Type": "application/vnd.kubernetes.protobuf",
                                "Authorization": f"Bearer {plain.token}"})
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 415
        body = json.loads(exc.read())
        assert body["reason"] == "UnsupportedMediaType"
    else:
        raise AssertionError("a protobuf body was accepted without a decoder")
