"""Chapter 6's drill through ``ClusterService.run_drill`` against the emulator, then the
``recovered`` objective as the controllers bring the deployment back."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from bot.content.schema import Drill
from sandbox.objectives import EvalContext, RecoveredObjective, Snapshot, evaluate
from tests.course_states import states as S
from tests.course_states.conftest import seed, service
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

NS = "research"


def _analysis_pods(emu: KubeEmulator, cluster: str) -> list[dict]:
    return [p for p in emu[cluster].list("Pod", NS)
            if p["metadata"]["labels"].get("app") == "atmospheric-analysis"]


async def test_drill_deletes_a_pod_and_recovery_is_judged(emu: KubeEmulator) -> None:
    task = S.task_of(6)
    drill = task.drill
    assert isinstance(drill, Drill) and drill.action == "delete_pods" and drill.count == 1
    healing = next(o for o in task.objectives if o.id == "self-healing")
    station = S.after(6, with_drill=False)
    cluster = seed(emu, "ch6-drill", station)
    c = emu[cluster]
    before = {p["metadata"]["name"] for p in _analysis_pods(emu, cluster)}
    assert len(before) == 4  # three, and one the autoscaler added under load

    svc = service(emu, cluster)
    c.clear_requests()
    started = await svc.run_drill(cluster, drill)

    deletes = [r for r in c.requests if r.method == "DELETE"]
    assert len(deletes) == 1
    victim = deletes[0].path.rsplit("/", 1)[-1]
    assert deletes[0].path == f"/api/v1/namespaces/{NS}/pods/{victim}"
    assert victim in before
    assert c.get("Pod", victim, NS) is None
    assert {p["metadata"]["name"] for p in _analysis_pods(emu, cluster)} == before - {victim}
    # the LIST asked for exactly the drill's pods
    lists = [r for r in c.requests if r.method == "GET"]
    assert [(r.path, r.query.get("labelSelector")) for r in lists] == [
        (f"/api/v1/namespaces/{NS}/pods", "app=atmospheric-analysis")]

    ctx = EvalContext(drill_started_at=started)

    async def healed() -> tuple[bool, str]:
        result = await svc.evaluate(cluster, [healing], ctx)
        assert result.error is None, result.error
        return result.results[0].passed, result.results[0].reason

    # What the controllers do next: the replica set creates a replacement in the same second
    # (the API's creationTimestamp has whole seconds), still ContainerCreating, and the
    # deployment reports one replica short.
    deploy = c.get("Deployment", "atmospheric-analysis", NS)
    assert deploy is not None
    n = deploy["spec"]["replicas"]
    deploy["status"].update(readyReplicas=n - 1, availableReplicas=n - 1, unavailableReplicas=1)
    c.put(deploy)
    gone = next(p for p in station.of("Pod", NS) if p["metadata"]["name"] == victim)
    fresh = station.replace_pod(gone, created=started, ready=False)
    fresh["status"]["phase"] = "Pending"
    c.put(fresh)
    passed, reason = await healed()
    assert not passed
    assert reason.endswith(f"— Deployment atmospheric-analysis: {n - 1} of {n} replicas Ready")

    # the deployment counts three again, but only because an old pod is still counted:
    # the replacement is not Ready yet
    deploy["status"].update(readyReplicas=n, availableReplicas=n)
    deploy["status"].pop("unavailableReplicas")
    c.put(deploy)
    passed, reason = await healed()
    assert not passed
    assert reason.endswith("— Deployment atmospheric-analysis: no Ready pod created since the "
                           "drill yet")

    ready = station.replace_pod(gone, created=started, ready=True)
    ready["metadata"]["name"] = fresh["metadata"]["name"]
    c.put(ready)
    passed, reason = await healed()
    assert passed, reason
    svc.forget(cluster)


def _judge_recovered(created_offset: int) -> bool:
    """Recovered? The drill starts 400 ms into a second; the replacement's creationTimestamp
    is that second plus ``created_offset`` seconds."""
    spec = next(o for o in S.task_of(6).objectives if isinstance(o, RecoveredObjective))
    station = S.after(6, with_drill=False)
    started = station.tick(600).replace(microsecond=400_000)
    objs: dict[str, list[dict]] = defaultdict(list)
    for o in station.objects():
        objs[o["kind"]].append(o)
    victim = next(p for p in objs["Pod"]
                  if p["metadata"].get("labels", {}).get("app") == "atmospheric-analysis")
    objs["Pod"].remove(victim)
    created = started.replace(microsecond=0) + timedelta(seconds=created_offset)
    objs["Pod"].append(station.replace_pod(victim, created=created))
    return evaluate(spec, Snapshot(objs), EvalContext(drill_started_at=started)).passed


def test_replacement_in_the_drills_second_counts() -> None:
    """The API server stores creationTimestamp in whole seconds and the drill's start has
    microseconds: a replacement made 100 ms after the drill reads as created before it."""
    assert _judge_recovered(0)
    assert _judge_recovered(1)
    # a pod from before the drill's second still does not count
    assert not _judge_recovered(-1)


def test_drill_state_in_the_after_state() -> None:
    station = S.after(6)
    assert station.drill_started_at is not None
    pods = [p for p in station.of("Pod", NS) if p["metadata"]["labels"]["app"] ==
            "atmospheric-analysis"]
    newer = [p for p in pods if ob.ts(station.drill_started_at) < p["metadata"]["creationTimestamp"]]
    assert len(pods) == 4 and len(newer) == 1  # 3 + 1 from the load test
    assert station.drill_started_at - S.START < timedelta(days=1)
