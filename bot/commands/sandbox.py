"""``kepler sandbox list|create|pause|resume|reset|delete|gc|hosts|drain|undrain|cost|usage``.

Talks to the host clusters in ``KEPLER_HOSTS`` (several; see docs/operating.md), else to the
one in ``HOST_KUBECONFIG`` (or the in-cluster config), and to the store in ``KEPLER_DB``.
Kubeconfigs are never printed here: a learner gets theirs from the bot.

Also ``render``: like ``helm template`` it prints, as YAML, every host object the bot would
apply for one learner, rendered with the pinned chart's values (SHA-256 checked) through the
same :func:`sandbox.provision.render` the backend uses. It needs no host and no store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bot.config import Settings
from bot.content.course import load_course
from bot.store.sqlite import SQLiteStore
from sandbox.backends.base import SandboxError
from sandbox.lifecycle import SandboxManager
from sandbox.provision import HostSettings, course_requirements, load_chart_defaults


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="operate learners' sandboxes on the host cluster")
    p.add_argument("--kubeconfig", default=None,
                   help="host cluster kubeconfig (default: HOST_KUBECONFIG, else in-cluster)")  # fmt: skip
    p.add_argument("--hosts", default=None,
                   help="several host clusters (default: KEPLER_HOSTS; see docs/operating.md)")
    p.add_argument("--db", default=None, help="state file (default: KEPLER_DB)")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    ops.add_parser("list", help="learner, host, phase, age, idle time")
    ops.add_parser("hosts", help="each host cluster: reachable, drained, sandboxes, caps")
    for name, text in (("drain", "no new sandboxes on HOST (existing ones stay until reset)"),
                       ("undrain", "let HOST take new sandboxes again")):  # fmt: skip
        ops.add_parser(name, help=text).add_argument("host", help="host name from KEPLER_HOSTS")
    ops.add_parser("cost", help="host CPU, memory and storage one learner's sandbox requests")
    u = ops.add_parser("usage", help="measured use of sandboxes (Metrics API) and the requests "
                       "that would fit", description="Samples metrics-server on every host; "
                       "exit 0 when something was measured, 1 when nothing was.")  # fmt: skip
    u.add_argument("--minutes", type=float, default=10.0, help="how long to sample (default 10)")
    u.add_argument("--every", type=float, default=30.0,
                   help="seconds between samples (default 30; metrics-server refreshes every 15)")
    u.add_argument("--idle-after", type=float, default=300.0,
                   help="a learner whose last action is older than this many seconds counts "
                        "as idle (default 300)")  # fmt: skip
    u.add_argument("--json", default=None, metavar="FILE", help="also write the raw figures here")
    for name, text in (("create", "provision (or resume) a learner's sandbox"),
                       ("pause", "scale a learner's control plane to 0"),
                       ("resume", "wake a paused sandbox"),
                       ("reset", "replace a learner's sandbox by a fresh one"),
                       ("delete", "delete a learner's sandbox")):  # fmt: skip
        op = ops.add_parser(name, help=text)
        op.add_argument("learner", help="learner id")
        if name == "create":
            op.add_argument("--guild", default=None, help="Discord server id (for the caps)")
    gc = ops.add_parser("gc", help="reconcile with the host, then pause/warn/delete as due")
    gc.add_argument("--dry-run", action="store_true", help="only show what exists")
    r = ops.add_parser("render", help="print a learner's host objects as YAML (no host needed)")
    r.add_argument("--learner", required=True, help="learner id")
    r.add_argument("--exposure", choices=["Ingress", "LoadBalancer", "NodePort"], default=None,
                   help="default: KEPLER_SANDBOX_EXPOSURE, else Ingress")
    r.add_argument("--in-cluster", action="store_true",
                   help="the bot runs in the host (dials kepler.<ns>.svc from its namespace)")
    r.add_argument("--namespace", default=None, help="default: derived from the learner id")
    r.add_argument("--values", default=None,
                   help="the chart's values.yaml (default: KEPLER_VCLUSTER_VALUES, else download)")
    r.add_argument("--host-wide", action="store_true",
                   help="also print the once-per-host AdminNetworkPolicies for these settings")
    p.set_defaults(func=run)


def render_yaml(args: argparse.Namespace, chart_defaults: Any = None,
                env: dict[str, str] | None = None) -> str:
    """What ``kepler sandbox render`` prints (tests call this with the same arguments)."""
    import yaml

    from sandbox.backends.base import learner_hash
    from sandbox.provision import (
        SandboxSpec,
        cluster_admin_policies,
        render,
        render_namespace,
    )

    config = Settings.from_env(env)
    settings = config.host_settings()
    settings = replace(settings, in_cluster=bool(args.in_cluster),
                       exposure=args.exposure or settings.exposure)  # fmt: skip
    if chart_defaults is None:
        chart_defaults = load_chart_defaults(args.values or config.vcluster_values or None)
    spec = SandboxSpec(
        namespace=args.namespace or render_namespace(args.learner),
        requirements=course_requirements(load_course().chapters), host=settings,
        chart_defaults=chart_defaults, learner_id=args.learner,
        learner_hash=learner_hash(args.learner),
    )  # fmt: skip
    objects = render(spec)
    if args.host_wide:
        objects = [*cluster_admin_policies(settings), *objects]

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(objects, Dumper=NoAliases, sort_keys=False, explicit_start=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def format_table(rows: list[tuple[Any, Any]], now: float) -> str:
    lines = [f"{'LEARNER':<24} {'HOST':<12} {'NAMESPACE':<18} {'PHASE':<13} {'AGE':>6} {'IDLE':>6}"]
    for info, _record in rows:
        learner = info.learner_id or "(spare)"
        lines.append(f"{learner[:24]:<24} {(info.host or '-')[:12]:<12} {info.name[:18]:<18} "
                     f"{info.phase:<13} {_duration(info.age(now)):>6} "
                     f"{_duration(info.idle(now)):>6}")  # fmt: skip
    return "\n".join(lines)


def format_hosts(pool: Any, found: dict[str, Any]) -> str:
    """One line per host: state, sandboxes (active of all), the caps placement uses."""
    lines = [f"{'HOST':<12} {'STATE':<12} {'SANDBOXES':>9} {'ACTIVE':>6} {'MAX':>5} {'CPU':>7} "
             f"{'MEMORY':>8}"]  # fmt: skip
    for load in pool.loads(found):
        cap = load.capacity
        state = "unreachable" if not load.reachable else "drained" if load.drained else "ok"
        lines.append(f"{load.name[:12]:<12} {state:<12} {load.sandboxes:>9} {load.active:>6} "
                     f"{cap.max_sandboxes or '-':>5} "
                     f"{f'{cap.cpu_m}m' if cap.cpu_m else '-':>7} "
                     f"{f'{cap.memory // 2**30}Gi' if cap.memory else '-':>8}")  # fmt: skip
    return "\n".join(lines)


def _host_client(kubeconfig: str, context: str = "") -> tuple[Any, bool]:
    from kubernetes import client
    from kubernetes import config as kconfig

    cfg = client.Configuration()
    if kubeconfig:
        kconfig.load_kube_config(config_file=kubeconfig, context=context or None,
                                 client_configuration=cfg)  # fmt: skip
    else:
        kconfig.load_incluster_config(cfg)
    return client.ApiClient(cfg), not kubeconfig


def build_backend(kubeconfig: str, hosts: str = "", env: Settings | None = None) -> Any:
    """One VClusterBackend for ``HOST_KUBECONFIG``, or a HostPool over ``KEPLER_HOSTS``."""
    from sandbox.backends.vcluster import VClusterBackend
    from sandbox.hosts import HostPool, parse_hosts

    env = env or Settings.from_env()
    course = load_course()
    settings = env.host_settings()
    common = {"requirements": course_requirements(course.chapters),
              "chart_defaults": load_chart_defaults(env.vcluster_values or None)}  # fmt: skip
    if not hosts.strip():
        api, in_cluster = _host_client(kubeconfig)
        return VClusterBackend(api, settings=replace(settings, in_cluster=in_cluster),
                               access="service" if in_cluster else "external", **common)  # fmt: skip
    configs = parse_hosts(hosts)
    backends = {}
    for host in configs:
        api, in_cluster = _host_client(host.kubeconfig or kubeconfig, host.context)
        own = replace(settings, host_template=host.sandbox_host or settings.host_template,
                      node_address=host.node_address or settings.node_address,
                      in_cluster=in_cluster)  # fmt: skip
        backends[host.name] = VClusterBackend(
            api, settings=own, access="service" if in_cluster else "external", **common)
    return HostPool(backends, configs, each=_footprint(settings, common, course))


def _footprint(settings: HostSettings, common: dict[str, Any], course: Any) -> Any:
    from sandbox.cost import sandbox_footprint

    return sandbox_footprint(_rendered(settings, common), course)


def _rendered(settings: HostSettings, common: dict[str, Any]) -> list[Any]:
    """One learner's host objects as the backend would apply them (for costs)."""
    from sandbox.provision import SandboxSpec, render

    return render(SandboxSpec(namespace="kepler-cost", host=settings, learner_id="cost",
                              learner_hash="cost", **common))  # fmt: skip

async def measure_usage(args: argparse.Namespace, backend: Any, manager: SandboxManager, *,
                        clock: Callable[[], float] = time.time,
                        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> int:
    """``kepler sandbox usage``: sample every host's Metrics API, print the figures."""
    from sandbox.usage import host_kubes, new_run, report, sample, write_json

    if args.every <= 0 or args.minutes <= 0:
        print("kepler sandbox usage: --every and --minutes must be positive", file=sys.stderr)
        return 2
    kubes = host_kubes(backend)

    async def sandboxes() -> list[Any]:
        return [info for info, _record in await manager.list()]

    rounds = max(1, round(args.minutes * 60 / args.every))
    run = new_run(kubes, every=args.every, rounds=rounds, idle_after=args.idle_after)
    with contextlib.suppress(asyncio.CancelledError):  # Ctrl-C: report the rounds so far
        await sample(run, kubes, sandboxes, clock=clock, sleep=sleep)
    print(report(run))
    if args.json:
        write_json(run, args.json)
    return 0 if run.readings else 1


async def execute(args: argparse.Namespace, backend: Any, store: Any, *,
                  clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> int:
    """One operation; ``clock`` and ``sleep`` pace ``usage`` (tests drive them)."""
    manager = SandboxManager(backend, store, policy=Settings.from_env().lifecycle_policy())
    op = args.op
    if op == "usage":
        return await measure_usage(args, backend, manager, clock=clock, sleep=sleep)
    if op == "list":
        print(format_table(await manager.list(), time.time()))
        return 0
    if op in ("hosts", "drain", "undrain"):
        if manager.pool is None:
            print("one host cluster (HOST_KUBECONFIG); set KEPLER_HOSTS for several",
                  file=sys.stderr)  # fmt: skip
            return 2
        if op != "hosts":
            await manager.drain(args.host, drained=op == "drain")
            print(f"{args.host}: {'drained' if op == 'drain' else 'taking new sandboxes'}")
            return 0
        await manager.drained()
        print(format_hosts(manager.pool, await manager.pool.scan()))
        return 0
    if op == "gc":
        if args.dry_run:
            print(format_table(await manager.list(), time.time()))
            return 0
        found = await manager.reconcile()
        done = await manager.tick()
        print(", ".join(f"{k} {v}" for k, v in {**found, **done}.items()))
        return 0
    if op in ("create", "resume", "reset"):
        events = (manager.ensure(args.learner, getattr(args, "guild", None)) if op != "reset"
                  else manager.reset(args.learner))  # fmt: skip
        last = None
        async for event in events:
            print(f"{event.step:<14} {event.message}")
            last = event
        return 0 if last is not None and last.step == "ready" else 1
    if op == "pause":
        await manager.pause(args.learner)
        print("paused")
        return 0
    if op == "delete":
        existed = await manager.delete(args.learner)
        print("deleted" if existed else "no record; host objects removed if any")
        return 0
    raise AssertionError(op)


def print_cost() -> int:
    """``kepler sandbox cost``: no host needed, only the render path and the course."""
    from sandbox.cost import report

    env = Settings.from_env()
    course = load_course()
    common = {"requirements": course_requirements(course.chapters),
              "chart_defaults": load_chart_defaults(env.vcluster_values or None)}  # fmt: skip
    print(report(_rendered(env.host_settings(), common), course))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.op == "cost":
        try:
            return print_cost()
        except (ValueError, OSError) as exc:
            print(f"kepler sandbox: {exc}", file=sys.stderr)
            return 2
    if args.op == "render":
        try:
            sys.stdout.write(render_yaml(args))
        except (ValueError, OSError) as exc:
            print(f"kepler sandbox render: {exc}", file=sys.stderr)
            return 2
        return 0

    env = Settings.from_env()
    kubeconfig = env.host_kubeconfig if args.kubeconfig is None else args.kubeconfig
    hosts = env.hosts if args.hosts is None else args.hosts

    async def main() -> int:
        backend = build_backend(kubeconfig, hosts, env)
        async with SQLiteStore(args.db or env.db) as store:
            try:
                return await execute(args, backend, store)
            finally:
                await backend.close()

    try:
        return asyncio.run(main())
    except (SandboxError, ValueError, OSError) as exc:
        print(f"kepler sandbox: {exc}", file=sys.stderr)
        return 2
