"""``kepler sandbox list|create|pause|resume|reset|delete|gc``: operate learners' vclusters.

Talks to the host in ``HOST_KUBECONFIG`` (or the in-cluster config) and to the store in
``KEPLER_DB``. Kubeconfigs are never printed here: a learner gets theirs from the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from bot.content.course import load_course
from bot.store.sqlite import SQLiteStore
from sandbox.backends.base import SandboxError
from sandbox.lifecycle import LifecyclePolicy, SandboxManager
from sandbox.provision import HostSettings, course_requirements, load_chart_defaults


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="operate learners' sandboxes on the host cluster")
    p.add_argument("--kubeconfig", default=os.environ.get("HOST_KUBECONFIG", ""),
                   help="host cluster kubeconfig (default: HOST_KUBECONFIG, else in-cluster)")  # fmt: skip
    p.add_argument("--db", default=os.environ.get("KEPLER_DB", "./kepler.db"))
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    ops.add_parser("list", help="learner, phase, age, idle time")
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
    p.set_defaults(func=run)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def format_table(rows: list[tuple[Any, Any]], now: float) -> str:
    lines = [f"{'LEARNER':<24} {'NAMESPACE':<18} {'PHASE':<13} {'AGE':>6} {'IDLE':>6}"]
    for info, _record in rows:
        learner = info.learner_id or "(spare)"
        lines.append(f"{learner[:24]:<24} {info.name[:18]:<18} {info.phase:<13} "
                     f"{_duration(info.age(now)):>6} {_duration(info.idle(now)):>6}")  # fmt: skip
    return "\n".join(lines)


def build_backend(kubeconfig: str) -> Any:
    from kubernetes import client
    from kubernetes import config as kconfig

    from sandbox.backends.vcluster import VClusterBackend

    cfg = client.Configuration()
    if kubeconfig:
        kconfig.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        kconfig.load_incluster_config(cfg)
    in_cluster = not kubeconfig
    return VClusterBackend(
        client.ApiClient(cfg), settings=HostSettings.from_env(),
        requirements=course_requirements(load_course().chapters),
        chart_defaults=load_chart_defaults(), access="service" if in_cluster else "external",
    )  # fmt: skip


def policy_from_env() -> LifecyclePolicy:
    env = os.environ
    base = LifecyclePolicy()
    return LifecyclePolicy(
        idle_pause_after=float(env.get("KEPLER_SANDBOX_IDLE_PAUSE", base.idle_pause_after)),
        ttl=float(env.get("KEPLER_SANDBOX_TTL", base.ttl)),
        warn_before=float(env.get("KEPLER_SANDBOX_WARN_BEFORE", base.warn_before)),
        max_per_server=int(env.get("KEPLER_SANDBOX_MAX_PER_SERVER", base.max_per_server)),
        max_total=int(env.get("KEPLER_SANDBOX_MAX_TOTAL", base.max_total)),
        warm_pool=int(env.get("KEPLER_SANDBOX_WARM_POOL", base.warm_pool)),
    )


async def execute(args: argparse.Namespace, backend: Any, store: Any) -> int:
    manager = SandboxManager(backend, store, policy=policy_from_env())
    op = args.op
    if op == "list":
        print(format_table(await manager.list(), time.time()))
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


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        backend = build_backend(args.kubeconfig)
        async with SQLiteStore(args.db) as store:
            try:
                return await execute(args, backend, store)
            finally:
                await backend.close()

    try:
        return asyncio.run(main())
    except (SandboxError, ValueError, OSError) as exc:
        print(f"kepler sandbox: {exc}", file=sys.stderr)
        return 2
