"""``ClusterService`` — the engine's Cluster port — over emulated learners' clusters: request
economy, failures as results, isolation between learners, measure, apply, change notices."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from bot.content.schema import FactCheck
from sandbox.apply import load_manifests
from sandbox.backends.kubeconfig import KubeconfigBackend
from sandbox.objectives import EvalContext, kinds_for
from sandbox.service import ClusterService
from sandbox.snapshot import KINDS
from tests.course_states import states as S
from tests.course_states.conftest import EmulatedLearners, evaluate, seed, service
from tests.emulator import KubeEmulator

CH2 = S.task_of(2).objectives


@pytest.mark.parametrize("number", S.CHAPTERS)
async def test_one_list_per_kind_per_check(emu: KubeEmulator, number: int) -> None:
    objectives = S.task_of(number).objectives
    station = S.after(number)
    cluster = seed(emu, f"economy-{number}", station)
    svc = service(emu, cluster)
    c = emu[cluster]
    expected = sorted(KINDS[k].path for k in kinds_for(objectives))
    for _ in range(2):  # the first check builds the client, the second reuses it
        c.clear_requests()
        result = await svc.evaluate(cluster, objectives, station.context())
        assert result.all_passed, result
        assert sorted(r.path for r in c.requests) == expected
        assert {r.method for r in c.requests} == {"GET"}
        assert all("watch" not in r.query for r in c.requests)
    svc.forget(cluster)


async def test_unreachable_cluster_is_an_error_result(emu: KubeEmulator) -> None:
    cluster = seed(emu, "unreachable", S.after(2))
    emu[cluster].unreachable = True
    try:
        result = await evaluate(emu, cluster, CH2, timeout=2.0)
    finally:
        emu[cluster].unreachable = False
    assert result.results == () and result.error is not None
    first = result.error.splitlines()[0]
    assert first.startswith("No Kubernetes cluster answered (")
    assert f"/clusters/{cluster}/api" in first and "connection" in first
    assert emu[cluster].token not in result.error


async def test_server_error_is_an_error_result(emu: KubeEmulator) -> None:
    cluster = seed(emu, "fails-500", S.after(2))
    emu[cluster].fail(500, times=None, message="etcdserver: request timed out")
    try:
        result = await evaluate(emu, cluster, CH2)
    finally:
        emu[cluster].clear_faults()
    assert result.error is not None and result.results == ()
    assert "500 InternalError" in result.error.splitlines()[0]
    # the next check, once the cluster recovers, works again
    assert (await evaluate(emu, cluster, CH2)).all_passed


async def test_slow_cluster_times_out_as_an_error_result(emu: KubeEmulator) -> None:
    cluster = seed(emu, "slow", S.after(2))
    emu[cluster].delay(30.0)  # answers long after the 1 s deadline
    try:
        result = await evaluate(emu, cluster, CH2, timeout=1.0)
    finally:
        emu[cluster].clear_faults()
    assert result.error is not None  # the deadline, not the cluster, ended the read
    first = result.error.splitlines()[0]
    assert "no answer within" in first or "no snapshot within 1 s" in first, first


async def test_a_slow_learner_does_not_delay_another(emu: KubeEmulator) -> None:
    """The fast learner's check completes while the slow learner's read is still waiting
    (the slow cluster answers in 30 s): no clock is judged, only the order."""
    slow, fast = seed(emu, "learner-slow", S.after(2)), seed(emu, "learner-fast", S.after(2))
    svc = ClusterService(EmulatedLearners(emu, {"slow": slow, "fast": fast}), timeout=25.0)
    ctx = EvalContext()
    await svc.evaluate("fast", CH2, ctx)  # warm: the client is built once per learner
    emu[slow].delay(30.0)
    stuck = asyncio.create_task(svc.evaluate("slow", CH2, ctx))
    try:
        await asyncio.sleep(0)  # the slow learner's check starts first
        fast_result = await svc.evaluate("fast", CH2, ctx)
        assert fast_result.all_passed
        assert not stuck.done()  # still waiting on its cluster
    finally:
        stuck.cancel()
        emu[slow].clear_faults()
    svc.forget("slow")
    svc.forget("fast")


async def test_measure_counts_ready_nodes(emu: KubeEmulator) -> None:
    cluster = seed(emu, "measure", S.before(1))
    svc = service(emu, cluster)
    assert await svc.measure(cluster, FactCheck(measure="ready_nodes")) == 3
    assert await svc.measure(cluster, FactCheck(measure="nodes")) == 4
    assert await svc.measure(cluster, FactCheck(measure="pods", namespace="kube-system")) == 2
    down = seed(emu, "measure-down", S.Station(nodes_ready=False))
    assert await service(emu, down).measure(down, FactCheck(measure="ready_nodes")) == 0
    emu[cluster].unreachable = True
    try:
        svc.forget(cluster)
        assert await svc.measure(cluster, FactCheck(measure="ready_nodes")) is None
    finally:
        emu[cluster].unreachable = False


async def test_apply_is_server_side_and_summarised(emu: KubeEmulator) -> None:
    files = [S.manifests_dir(4) / m.file for m in S.task_of(4).manifests]
    cluster = seed(emu, "apply", S.before(4))
    svc = service(emu, cluster)
    c = emu[cluster]
    c.clear_requests()
    summary = await svc.apply(cluster, files)
    docs = load_manifests(files)
    names = [f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs]
    assert summary == f"Applied {len(docs)} objects: " + ", ".join(names)
    assert names[:4] == ["namespace/life-support", "namespace/research",
                         "namespace/communications", "namespace/navigation"]
    patches = [r for r in c.requests if r.method == "PATCH"]
    assert len(patches) == len(docs)
    assert all(r.query.get("fieldManager") and r.query.get("force") == "true" for r in patches)
    for d in docs:
        ns = d["metadata"].get("namespace", "") if d["kind"] != "Namespace" else ""
        obj = c.get(d["kind"], d["metadata"]["name"], ns)
        assert obj is not None, d["metadata"]["name"]
        assert [e["operation"] for e in obj["metadata"]["managedFields"]] == ["Apply"]
    assert c.get("Namespace", "research")["metadata"]["labels"]["name"] == "research"
    # applying again changes nothing and says the same
    gen = c.get("Deployment", "life-support-system", "life-support")["metadata"]["generation"]
    assert await svc.apply(cluster, files) == summary
    assert c.get("Deployment", "life-support-system", "life-support")["metadata"][
        "generation"] == gen


async def test_apply_to_a_missing_cluster_explains(emu: KubeEmulator, tmp_path: Path) -> None:
    cluster = seed(emu, "apply-down", S.before(2))
    emu[cluster].unreachable = True
    try:
        out = await service(emu, cluster, timeout=2.0).apply(
            cluster, [S.manifests_dir(2) / "life-support-pod.yaml"])
    finally:
        emu[cluster].unreachable = False
    assert out.startswith("No Kubernetes cluster answered (")


async def test_wait_for_change_returns_promptly(emu: KubeEmulator) -> None:
    station = S.after(2)
    cluster = seed(emu, "watch", station)
    svc = service(emu, cluster)
    assert (await svc.evaluate(cluster, CH2, EvalContext())).all_passed
    threads = set(threading.enumerate())
    # nothing changes: it waits out its timeout and says so
    assert await svc.wait_for_change(cluster, 0.5) is False
    assert cluster in svc._watches  # … on a watch, not by re-reading

    waiter = asyncio.create_task(svc.wait_for_change(cluster, 60.0))
    await asyncio.sleep(0)  # the waiter is parked on the watch
    pod = emu[cluster].get("Pod", "atmospheric-processor-backup", "default")
    assert pod is not None
    pod["metadata"].setdefault("labels", {})["checked"] = "yes"
    emu[cluster].put(pod)
    # The change ends the wait (long before its 60 s); the bound only guards against a hang.
    assert await asyncio.wait_for(waiter, 30.0) is True
    new = {t.name for t in set(threading.enumerate()) - threads}
    # the watch streams are asyncio tasks: no thread of ours (the emulator serves each
    # connection in a thread; the loop's resolver may use its default executor)
    assert all("process_request" in t or t.startswith("asyncio_") for t in new), new
    svc.forget(cluster)
    await svc.aclose()


async def test_the_service_keeps_no_snapshot_once_a_read_is_over(emu: KubeEmulator) -> None:
    """A thousand learners' last snapshots held by the service (hundreds of objects each)
    made every full garbage collection of the bot slower; callers own what they read."""
    import gc
    import weakref

    cluster = seed(emu, "no-retention", S.after(5))
    svc = service(emu, cluster)
    kinds = kinds_for(S.task_of(5).objectives)
    snap = await svc.snapshot(cluster, kinds)
    assert snap.of("Pod")
    gone = weakref.ref(snap)
    del snap
    await asyncio.sleep(0)  # done callbacks run
    gc.collect()
    assert gone() is None
    svc.forget(cluster)


async def test_a_slow_read_keeps_the_watch_and_retries_with_backoff(
        emu: KubeEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timed-out read is an overloaded API server, not a broken client: the learner's watch
    stays (a change is still noticed at once) and retries back off, 2 s, 4 s … at most 60 s,
    instead of every learner asking again every two seconds."""
    import sandbox.service as service_module

    monkeypatch.setattr(service_module, "RETRY_FIRST", 0.2)  # the schedule, scaled down
    station = S.after(2)
    cluster = seed(emu, "slow-read", station)
    svc = service(emu, cluster, timeout=0.5)
    waits: list[float] = []

    async def recorded(seconds: float) -> None:  # the back-off asks; nobody waits
        waits.append(seconds)
        await asyncio.sleep(0)

    svc.sleep = recorded
    assert (await svc.evaluate(cluster, CH2, EvalContext())).all_passed
    assert await svc.wait_for_change(cluster, 0.2) is False  # watching now
    watch = svc._watches[cluster]
    emu[cluster].delay(2.0, "GET")
    try:
        for _ in range(3):
            result = await svc.evaluate(cluster, CH2, EvalContext())
            assert result.error is not None and "within" in result.error  # a timeout
        assert svc._watches.get(cluster) is watch  # not torn down
        assert await svc.wait_for_change(cluster, 10.0) is True  # a retry is due ...
        assert waits == [pytest.approx(0.8)]  # ... after 0.2 × 2² s (third failure in a row)
    finally:
        emu[cluster].clear_faults()
    assert (await svc.evaluate(cluster, CH2, EvalContext())).all_passed
    assert await svc.wait_for_change(cluster, 0.3) is False  # healthy again: back to watching
    assert waits == [pytest.approx(0.8)]  # no back-off this time: the watch ran out its wait
    waiter = asyncio.create_task(svc.wait_for_change(cluster, 60.0))
    await asyncio.sleep(0)
    emu[cluster].put(_touched_pod(emu, cluster))
    assert await asyncio.wait_for(waiter, 30.0) is True  # a hang guard, not a latency bound
    assert svc._watches.get(cluster) is watch  # the same watch all along
    svc.forget(cluster)
    await svc.aclose()


def _touched_pod(emu: KubeEmulator, cluster: str) -> dict:
    pod = emu[cluster].get("Pod", "atmospheric-processor-backup", "default")
    assert pod is not None
    pod["metadata"].setdefault("labels", {})["touched"] = str(time.time())
    return pod


async def test_reads_and_watches_are_counted_for_metrics(emu: KubeEmulator) -> None:
    """They bypass the ApiClient (whose requests ``instrument`` counts), so the service
    reports each of them to ``observe``: the operator's request metrics stay whole."""
    from bot.ops.metrics import Metrics

    station = S.after(2)
    cluster = seed(emu, "metered", station)
    metrics = Metrics()
    svc = ClusterService(KubeconfigBackend(config_dict=emu.kubeconfig_dict(cluster)),
                         observe=metrics.learner_request)
    assert (await svc.evaluate(cluster, CH2, station.context())).all_passed
    assert await svc.wait_for_change(cluster, 0.3) is False  # the watches are open now
    emu[cluster].unreachable = True
    try:
        assert (await svc.evaluate(cluster, CH2, station.context())).error
    finally:
        emu[cluster].unreachable = False
    page = metrics.render().decode()
    lists, watched = len(kinds_for(CH2)), len(kinds_for(CH2) - {"Event"})
    ok = [ln for ln in page.splitlines() if ln.startswith("kepler_kube_requests_total{")
          and 'target="learner"' in ln and 'code="2xx"' in ln]
    assert ok and float(ok[0].rsplit(" ", 1)[1]) == lists + watched
    assert any('code="error"' in ln and 'target="learner"' in ln for ln in page.splitlines()
               if ln.startswith("kepler_kube_requests_total{"))
    svc.forget(cluster)
    await svc.aclose()


async def test_a_refreshed_client_with_the_same_credentials_keeps_reader_and_watches(
        emu: KubeEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every READER_TTL the backend is asked for the learner's client again (a reset may
    have rotated the token). The same server and credentials keep the reader, and with it the
    open watches (no new request); a rotated token gets a new reader."""
    import sandbox.service as service_module

    station = S.after(2)
    cluster = seed(emu, "same-credentials", station)
    backend = EmulatedLearners(emu, {cluster: cluster})
    svc = ClusterService(backend, timeout=5.0)
    c = emu[cluster]
    assert (await svc.evaluate(cluster, CH2, station.context())).all_passed
    assert await svc.wait_for_change(cluster, 0.3) is False  # watching now
    first, watch = await svc.reader(cluster), svc._watches[cluster]
    monkeypatch.setattr(service_module, "READER_TTL", 0.0)  # every call refreshes the client
    c.clear_requests()
    assert (await svc.evaluate(cluster, CH2, station.context())).all_passed
    assert await svc.reader(cluster) is first
    assert await svc.wait_for_change(cluster, 0.3) is False
    assert svc._watches[cluster] is watch  # not restarted
    assert c.count(watch=True) == 0  # no watch request since (the reads were the check's)

    c.token = "rotated-" + c.token  # a reset rotated the learner's token
    backend.configs[cluster] = emu.kubeconfig_dict(cluster)
    assert (await svc.evaluate(cluster, CH2, station.context())).all_passed
    assert await svc.reader(cluster) is not first
    await svc.wait_for_change(cluster, 0.3)  # returns at once or after the first read
    await svc.wait_for_change(cluster, 0.3)
    assert svc._watches[cluster] is not watch  # the watches follow the new credentials
    svc.forget(cluster)
    await svc.aclose()


async def test_the_next_task_watches_only_the_kinds_it_adds(emu: KubeEmulator) -> None:
    """Moving on from chapter 2's task (Deployments, Nodes, Pods) to chapter 3's (Pods,
    PersistentVolumeClaims, Events): the Pod watch goes on, the claims' starts, and the
    watches only chapter 2 needed stop (each costs a request per window while idle)."""
    station = S.after(2)
    cluster = seed(emu, "next-task", station)
    svc = service(emu, cluster)
    c = emu[cluster]
    two, three = kinds_for(CH2), kinds_for(S.task_of(3).objectives)
    assert two == {"Deployment", "Node", "Pod"} and three - {"Event"} == {
        "Pod", "PersistentVolumeClaim"}
    await svc.snapshot(cluster, two)
    assert await svc.wait_for_change(cluster, 0.3, two) is False
    watch = svc._watches[cluster]
    assert watch.notifier.kinds == two
    pods = watch.notifier._watches["Pod"]
    deployment = c.get("Deployment", "life-support-system", "default")
    assert deployment is not None
    c.put(deployment)  # a write, even unchanged, is an event the watch hears
    assert await svc.wait_for_change(cluster, 10.0, two) is True

    await svc.snapshot(cluster, three)  # the next task's first read
    c.clear_requests()
    assert await svc.wait_for_change(cluster, 0.3, three) is False
    assert svc._watches[cluster] is watch
    assert watch.notifier.kinds == {"Pod", "PersistentVolumeClaim"}
    assert watch.notifier._watches["Pod"] is pods  # not restarted
    watched = [r.path for r in c.requests if r.query.get("watch") in ("1", "true")]
    assert watched == [KINDS["PersistentVolumeClaim"].path]

    c.put(deployment)  # the same write, to a kind left behind,
    assert await svc.wait_for_change(cluster, 0.5, three) is False  # is no longer watched
    svc.forget(cluster)
    await svc.aclose()
