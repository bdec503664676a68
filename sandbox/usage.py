"""What sandboxes actually use on their hosts, from the Metrics API, and the requests that fit.

``kepler sandbox cost`` says what a sandbox *requests*; only a real host says what it *uses*.
This module samples the Metrics API that metrics-server serves on each host
(``GET /apis/metrics.k8s.io/v1beta1/pods?labelSelector=...``: per pod, per container, CPU in
nanocores and the memory working set) for the learners' sandboxes, groups the figures by
component and by whether the learner was active, and turns them into a suggested request.

Components, found by the labels the rendered objects and vcluster's syncer put on host pods:

* **control plane**: the vcluster StatefulSet's pod (``app=vcluster,release=kepler``);
* **CoreDNS**: vcluster's DNS pod, synced from the virtual ``kube-system``
  (``vcluster.loft.sh/managed-by=kepler`` and ``k8s-app=vcluster-kube-dns``);
* **workloads**: every other synced pod, i.e. what the learner runs, summed per sandbox.

One *reading* is one component of one sandbox in one sampling round; the request it is
compared with is read from the same pods' specs (what the host scheduler reserved for them,
LimitRange defaults included), so a sandbox made before a change shows its old request.
metrics-server refreshes a pod's figure once per resolution (15 s by default): a round that
finds the same metric windows as the round before adds no reading.

A sandbox is *active* in a round when its learner's last action (the store's record, the IDLE
column of ``kepler sandbox list``) is younger than the threshold, else *idle* (spares too).

The suggestion rule (:func:`suggest`): CPU from the 95th percentile with 25 % headroom
(a CPU request is a share under contention: use above it is throttled, never killed);
memory from the **maximum** with 25 % headroom, never below what was seen (memory above the
request makes the pod a first candidate for eviction, and the control plane is one pod:
evicting it takes the learner's whole cluster down). Nothing is suggested from fewer than
:data:`MIN_SAMPLES` readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from sandbox.apply import NO_RETRY, Kube, classify
from sandbox.backends.base import SandboxError, SandboxInfo
from sandbox.backends.vcluster import CONTROL_PLANE_SELECTOR, SYNCED_SELECTOR
from sandbox.cost import Defaults, pod
from sandbox.provision import VCLUSTER_DNS_LABELS

Obj = dict[str, Any]
State = Literal["active", "idle"]
METRICS_API = "metrics.k8s.io/v1beta1"
POD_METRICS = f"/apis/{METRICS_API}/pods"
METRICS_SERVER = "https://github.com/kubernetes-sigs/metrics-server"
CPU_HEADROOM = 1.25  # suggested CPU request = p95 x this, rounded up to CPU_STEP_M
MEMORY_HEADROOM = 1.25  # suggested memory request = max x this, rounded up to MEMORY_STEP
CPU_STEP_M = 5
MEMORY_STEP = 4 * 2**20
MIN_SAMPLES = 10
RULE = (f"suggested request: CPU = p95 x {CPU_HEADROOM:g} rounded up to {CPU_STEP_M}m; memory = "
        f"max x {MEMORY_HEADROOM:g} rounded up to {MEMORY_STEP // 2**20}Mi (never below the "
        f"observed max); none from fewer than {MIN_SAMPLES} samples")  # fmt: skip

_DNS = f"k8s-app={VCLUSTER_DNS_LABELS['k8s-app']}"


@dataclass(frozen=True)
class Component:
    name: str
    selector: str  # label selector for host pods (and their PodMetrics)
    where: str  # where its requests are set, for the operator
    cut: bool = True  # False: course content, reported for reference only


COMPONENTS = (
    Component("control plane", CONTROL_PLANE_SELECTOR,
              "KEPLER_SANDBOX_CONTROL_PLANE_CPU and KEPLER_SANDBOX_CONTROL_PLANE_MEMORY"),
    Component("CoreDNS", f"{SYNCED_SELECTOR},{_DNS}",
              "controlPlane.coredns.deployment.resources.requests in vcluster_values() "
              "(sandbox/provision.py; today the pinned chart's default)"),
    Component("workloads", f"{SYNCED_SELECTOR},k8s-app!={VCLUSTER_DNS_LABELS['k8s-app']}",
              "the chapters' manifests and the LimitRange defaults (Sizing in "
              "sandbox/provision.py)", cut=False),
)  # fmt: skip


# --- quantities and statistics -------------------------------------------------------------


def cpu_m(text: str | int | float) -> float:
    """A CPU quantity in millicores, fractions kept ("3521873n" is 3.52m, not 3m)."""
    return float(parse_quantity(str(text)) * 1000)


def mem_bytes(text: str | int | float) -> int:
    """A memory quantity ("51236Ki") in bytes."""
    return int(parse_quantity(str(text)))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of values at or
    below it (always one of the samples; no interpolation)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def suggest(cpu_p95_m: float, memory_max: int) -> tuple[int, int]:
    """The rule in :data:`RULE`: (CPU millicores, memory bytes)."""
    cpu = max(CPU_STEP_M, math.ceil(cpu_p95_m * CPU_HEADROOM / CPU_STEP_M - 1e-9) * CPU_STEP_M)
    memory = max(MEMORY_STEP, math.ceil(memory_max * MEMORY_HEADROOM / MEMORY_STEP) * MEMORY_STEP)
    return cpu, memory


# --- sampling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One component of one sandbox in one round (usage summed over its pods)."""

    round: int
    at: float  # epoch seconds of the round
    host: str
    namespace: str
    component: str
    state: State
    cpu_m: float
    memory: int
    request_cpu_m: int
    request_memory: int
    pods: int


@dataclass
class HostStatus:
    """How a host's Metrics API answered over the run."""

    name: str
    rounds: int = 0
    answered: int = 0
    missing: bool = False  # 404: the API is not served at all (no metrics-server); not asked again
    forbidden: bool = False  # 403: our identity may not read it; not asked again
    last_error: str = ""
    last_status: int = 0

    @property
    def stopped(self) -> bool:
        return self.missing or self.forbidden

    def line(self) -> str | None:
        """One line for the operator when this host was not (fully) measured."""
        name = self.name or "the host"
        if self.missing:
            return (f"{name}: no Metrics API ({METRICS_API} answered 404): install "
                    f"metrics-server there ({METRICS_SERVER}; chapter 6's autoscaler needs it "
                    "too), then run this again. Not measured.")  # fmt: skip
        if self.forbidden:
            return (f"{name}: may not read {METRICS_API} pods (403): apply this version's "
                    "deploy/host-rbac.yaml there (get/list on pods.metrics.k8s.io). Not measured.")
        if self.answered == self.rounds:
            return None
        if self.last_status == 503:
            why = ("answered 503: the APIService v1beta1.metrics.k8s.io exists but metrics-server "
                   "is not serving (kubectl get apiservice v1beta1.metrics.k8s.io)")  # fmt: skip
        else:
            why = self.last_error
        return f"{name}: the Metrics API failed in {self.rounds - self.answered} of " \
               f"{self.rounds} rounds (last: {why})."


class NoMetricsApi(Exception):
    """The Metrics API answered with a status that says it cannot be read (403, 404, 503)."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


def read_host(kube: Kube) -> dict[str, tuple[list[Obj], list[Obj]]]:
    """Per component: its PodMetrics and its Pods on one host (blocking; run in a thread)."""
    out: dict[str, tuple[list[Obj], list[Obj]]] = {}
    for comp in COMPONENTS:
        try:
            metrics = kube.raw("GET", POD_METRICS, query={"labelSelector": comp.selector})
        except ApiException as exc:
            if exc.status in (403, 404, 503):
                raise NoMetricsApi(exc.status) from None
            raise classify(exc, "list PodMetrics") from None
        except Exception as exc:  # transport failures, as the rest of the sandbox words them
            raise classify(exc, "list PodMetrics") from None
        pods = kube.list("v1", "Pod", selector=comp.selector)
        out[comp.name] = (metrics.get("items") or [], pods)
    return out


def readings(found: Mapping[str, tuple[list[Obj], list[Obj]]], host: str,
             states: Mapping[str, State], round_: int, at: float,
             seen: dict[tuple[str, str, str], frozenset[tuple[str, str]]]) -> list[Reading]:
    """One host's round as readings, for the sandboxes in ``states`` (namespace -> state).

    ``seen`` remembers each (host, namespace, component)'s metric windows: a round that finds
    exactly the same ones (metrics-server has not refreshed) adds nothing.
    """
    out: list[Reading] = []
    for comp in COMPONENTS:
        metrics, pods = found.get(comp.name, ([], []))
        specs = {(p["metadata"].get("namespace", ""), p["metadata"]["name"]): p.get("spec") or {}
                 for p in pods}  # fmt: skip
        by_ns: dict[str, list[Obj]] = {}
        for m in metrics:
            ns = m["metadata"].get("namespace", "")
            if ns in states and (ns, m["metadata"]["name"]) in specs:
                by_ns.setdefault(ns, []).append(m)
        for ns, items in sorted(by_ns.items()):
            windows = frozenset((m["metadata"]["name"], str(m.get("timestamp"))) for m in items)
            key = (host, ns, comp.name)
            if seen.get(key) == windows:
                continue
            seen[key] = windows
            used = [c.get("usage") or {} for m in items for c in m.get("containers") or []]
            cpu = sum(cpu_m(u.get("cpu", 0)) for u in used)
            mem = sum(mem_bytes(u.get("memory", 0)) for u in used)
            req = [pod(specs[(ns, m["metadata"]["name"])], Defaults()) for m in items]
            out.append(Reading(round_, at, host, ns, comp.name, states[ns], cpu, mem,
                               sum(r.cpu_m for r in req), sum(r.memory for r in req),
                               len(items)))  # fmt: skip
    return out


def sandbox_states(infos: Iterable[SandboxInfo], now: float, idle_after: float,
                   ) -> dict[tuple[str, str], State]:  # fmt: skip
    """(host, namespace) -> active or idle, from the store's last action per learner."""
    out: dict[tuple[str, str], State] = {}
    for info in infos:
        if info.phase in ("deleting", "unreachable"):
            continue
        idle = info.idle(now)
        active = info.learner_id is not None and idle is not None and idle < idle_after
        out[(info.host, info.name)] = "active" if active else "idle"
    return out


@dataclass
class Run:
    """Everything one ``kepler sandbox usage`` measured."""

    every: float
    rounds: int  # planned
    idle_after: float
    hosts: dict[str, HostStatus]
    readings: list[Reading] = field(default_factory=list)
    done: int = 0  # rounds completed (fewer when the operator stopped it)


def new_run(hosts: Iterable[str], *, every: float, rounds: int, idle_after: float) -> Run:
    return Run(every, rounds, idle_after, {h: HostStatus(h) for h in hosts})


def host_kubes(backend: Any) -> dict[str, Kube]:
    """Each host's API client for sampling, by host name ("" for a single host): one try per
    read (a round that fails is reported, not retried into the next round's time)."""
    backends = getattr(backend, "backends", None) or {"": backend}
    return {name: Kube(b.kube.api, retry=NO_RETRY, timeout=b.kube.timeout)
            for name, b in backends.items()}  # fmt: skip


async def sample(run: Run, kubes: Mapping[str, Kube],
                 sandboxes: Callable[[], Awaitable[list[SandboxInfo]]], *,
                 clock: Callable[[], float], sleep: Callable[[float], Awaitable[Any]]) -> Run:
    """``run.rounds`` rounds, one every ``run.every`` seconds, on every host at once, into
    ``run`` (so that what was measured survives a stop halfway).

    ``sandboxes`` lists them with their learners' last action (the lifecycle's ``list``), read
    again each round so that a learner who starts or stops working changes state.
    """
    seen: dict[tuple[str, str, str], frozenset[tuple[str, str]]] = {}
    start = clock()
    for i in range(run.rounds):
        if i:
            await sleep(max(0.0, start + i * run.every - clock()))
        at = clock()
        states = sandbox_states(await sandboxes(), at, run.idle_after)
        live = [h for h, s in run.hosts.items() if not s.stopped]
        results = await asyncio.gather(*(asyncio.to_thread(read_host, kubes[h]) for h in live),
                                       return_exceptions=True)  # fmt: skip
        for host, result in zip(live, results, strict=True):
            status = run.hosts[host]
            status.rounds += 1
            if isinstance(result, NoMetricsApi):
                status.last_status, status.last_error = result.status, str(result)
                status.missing = result.status == 404
                status.forbidden = result.status == 403
                continue
            if isinstance(result, SandboxError):
                status.last_status, status.last_error = 0, str(result)
                continue
            if isinstance(result, BaseException):
                raise result
            status.answered += 1
            mine = {ns: state for (h, ns), state in states.items() if h == host}
            run.readings += readings(result, host, mine, i, at, seen)
        run.done = i + 1
    return run


@contextlib.asynccontextmanager
async def sampling(run: Run, kubes: Mapping[str, Kube],
                   sandboxes: Callable[[], Awaitable[list[SandboxInfo]]], *,
                   clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                   ) -> AsyncIterator[Run]:  # fmt: skip
    """:func:`sample` in the background while the block runs (a play-through on a real host,
    then a quiet stretch), stopped when it ends; what was measured is in ``run``. A failure of
    the sampling itself is raised at the end of the block."""
    task = asyncio.create_task(sample(run, kubes, sandboxes, clock=clock, sleep=sleep))
    try:
        yield run
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One component in one state, over the whole run."""

    component: str
    state: State
    samples: int
    cpu_p50_m: float
    cpu_p95_m: float
    cpu_max_m: float
    memory_p50: int
    memory_p95: int
    memory_max: int
    request_cpu_m: tuple[int, int]  # the smallest and largest request seen
    request_memory: tuple[int, int]
    suggested_cpu_m: int | None
    suggested_memory: int | None


def groups(items: Sequence[Reading]) -> list[Group]:
    out = []
    for comp in COMPONENTS:
        for state in ("active", "idle"):
            mine = [r for r in items if r.component == comp.name and r.state == state]
            if not mine:
                continue
            cpu = [r.cpu_m for r in mine]
            mem = [r.memory for r in mine]
            enough = len(mine) >= MIN_SAMPLES
            s_cpu, s_mem = suggest(percentile(cpu, 95), max(mem)) if enough else (None, None)
            out.append(Group(
                comp.name, state, len(mine), percentile(cpu, 50), percentile(cpu, 95), max(cpu),
                int(percentile(mem, 50)), int(percentile(mem, 95)), max(mem),
                (min(r.request_cpu_m for r in mine), max(r.request_cpu_m for r in mine)),
                (min(r.request_memory for r in mine), max(r.request_memory for r in mine)),
                s_cpu, s_mem))  # fmt: skip
    return out


def _m(v: float) -> str:
    """Millicores: whole numbers as they are (requests), measured ones to 0.1m below 10m."""
    if isinstance(v, int):
        return f"{v}m"
    return f"{v:.1f}m" if v < 10 else f"{v:.0f}m"


def _mi(v: int) -> str:
    return f"{v / 2**20:.0f}Mi"


def _span(span: tuple[int, int], fmt: Callable[[Any], str]) -> str:
    return fmt(span[0]) if span[0] == span[1] else f"{fmt(span[0])}-{fmt(span[1])}"


def report(run: Run) -> str:
    """What ``kepler sandbox usage`` prints."""
    done = f"{run.done} rounds" if run.done == run.rounds else \
        f"{run.done} of {run.rounds} rounds (stopped early)"
    lines = [f"Sampled the Metrics API every {run.every:g} s, {done}, on {len(run.hosts)} "
             f"host(s); active = last action under {run.idle_after:g} s ago."]
    lines += [line for s in run.hosts.values() if (line := s.line())]
    found = groups(run.readings)
    if not found:
        lines.append("No sandbox pod was measured (none running, or no host answered).")
        return "\n".join(lines)
    head = (f"{'':<22} {'samples':>7}  {'p50':>7} {'p95':>7} {'max':>7} {'request':>11} "
            f"{'suggest':>7}")  # fmt: skip
    lines += ["", f"CPU (millicores) {head[17:]}"]
    for g in found:
        lines.append(f"{g.component + ' ' + g.state:<22} {g.samples:>7}  {_m(g.cpu_p50_m):>7} "
                     f"{_m(g.cpu_p95_m):>7} {_m(g.cpu_max_m):>7} "
                     f"{_span(g.request_cpu_m, _m):>11} "
                     f"{'-' if g.suggested_cpu_m is None else _m(g.suggested_cpu_m):>7}")  # fmt: skip
    lines += ["", f"Memory (working set) {head[21:]}"]
    for g in found:
        lines.append(f"{g.component + ' ' + g.state:<22} {g.samples:>7}  {_mi(g.memory_p50):>7} "
                     f"{_mi(g.memory_p95):>7} {_mi(g.memory_max):>7} "
                     f"{_span(g.request_memory, _mi):>11} "
                     f"{'-' if g.suggested_memory is None else _mi(g.suggested_memory):>7}")  # fmt: skip
    lines += ["", f"Rule: {RULE}.",
              "Workloads are per sandbox (all of a learner's pods summed).", "",
              "Suggested requests, covering idle and active (the larger of the two):"]
    for comp in COMPONENTS:
        mine = [g for g in found if g.component == comp.name and g.suggested_cpu_m is not None]
        if not mine:
            lines.append(f"  {comp.name}: too few samples (fewer than {MIN_SAMPLES} per state)")
            continue
        cpu = max(g.suggested_cpu_m or 0 for g in mine)
        mem = max(g.suggested_memory or 0 for g in mine)
        if comp.cut:
            lines.append(f"  {comp.name}: cpu {_m(cpu)}, memory {_mi(mem)}; set in {comp.where}")
        else:
            lines.append(f"  {comp.name} (per sandbox, for reference): cpu {_m(cpu)}, memory "
                         f"{_mi(mem)}; course content ({comp.where}), not cut here")
    lines.append("Then `kepler sandbox cost` shows the requests after the change; sandboxes "
                 "keep their old requests until reset.")
    return "\n".join(lines)


def to_json(run: Run) -> str:
    """The raw figures (``--json FILE``): every reading, each host's status, the groups."""
    return json.dumps({
        "every_seconds": run.every, "rounds": run.rounds, "rounds_done": run.done,
        "idle_after_seconds": run.idle_after,
        "rule": RULE, "min_samples": MIN_SAMPLES,
        "hosts": [{**asdict(s), "note": s.line()} for s in run.hosts.values()],
        "groups": [asdict(g) for g in groups(run.readings)],
        "readings": [asdict(r) for r in run.readings],
    }, indent=1)  # fmt: skip


def write_json(run: Run, path: str | Path) -> None:
    Path(path).write_text(to_json(run) + "\n", encoding="utf-8")
