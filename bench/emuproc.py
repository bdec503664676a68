"""The load harness's Kubernetes side: one :class:`KubeEmulator` (N logical clusters on
127.0.0.1) in a child process, so its threads and CPU are not the bot's.

The parent talks to it over a ``multiprocessing`` pipe with small commands; every command
answers. Cluster changes are made with the emulator's test-side API (``put``/``remove``), so
they reach watches like a controller's write would but are not in the request log: the log
holds only what the bot asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Obj = dict[str, Any]
NICE = 19  # the emulator takes what CPU the bot leaves (see serve())
WAKE = 30.0  # seconds an idle watch sleeps between looks (the emulator's own is 0.5 s)
IO = "asyncio"  # how the emulator serves: one event loop per process, not a thread per connection


class _SlowWake(threading.Condition):
    """The emulator wakes every idle watch twice a second to notice shutdown; with thousands
    of watches that alone would eat both cores. Changes still wake watches at once
    (``notify_all``); only the idle re-look is stretched, so a watch may end up to
    :data:`WAKE` seconds after its ``timeoutSeconds``."""

    def wait(self, timeout: float | None = None) -> bool:
        return super().wait(None if timeout is None else max(timeout, WAKE))


def _key(o: Obj, cluster_scoped: set[str]) -> tuple[str, str, str]:
    meta = o["metadata"]
    ns = "" if o["kind"] in cluster_scoped else meta.get("namespace", "default")
    return o["kind"], ns, meta["name"]


def serve(conn: Connection, bookmark_interval: float = 60.0, nice: int = NICE,
          io: str = IO) -> None:
    """Child process entry point: run the emulator and answer commands until ``stop``.

    It runs at ``nice 19``: on a small machine the emulator's thousands of threads (one per
    open connection) would otherwise take the bot's CPU (a full garbage collection of the bot
    took 0.6 s of CPU but up to 3.6 s of wall time while emulator threads held its core);
    real learners' clusters run elsewhere. Its slowness then shows as API latency, as a loaded
    control plane's would. On a machine shared with other work, ``nice 19`` starves it behind
    every other tenant instead (reads time out by the thousand): ``--emulator-nice``.
    ``io`` is :class:`KubeEmulator`'s: ``asyncio`` holds tens of thousands of watches."""
    import os

    os.nice(nice)
    from tests.emulator import KubeEmulator
    from tests.emulator.server import BY_KIND

    scoped = {k for k, info in BY_KIND.items() if not info.namespaced}
    emu = KubeEmulator(bookmark_interval=bookmark_interval, io=io).start()
    emu.url("default", tls=True)  # start the TLS listener: learners' kubeconfigs use it
    lock = threading.Lock()

    def seed(clusters: dict[str, list[Obj]]) -> dict[str, Obj]:
        out = {}
        for name, objs in clusters.items():
            c = emu.add_cluster(name)
            if io == "threads":
                c.changed = _SlowWake(c.lock)
            c.put(*objs)
            out[name] = emu.kubeconfig_dict(name)
        return out

    named: dict[str, list[Obj]] = {}

    def keep_states(states: dict[str, list[Obj]]) -> None:
        """Remember named cluster states, so that ``set`` can name one instead of sending
        it (pickling a whole cluster state for every change was the harness's cost, in the
        bot's process)."""
        named.update(states)

    def set_state(name: str, objs: list[Obj] | str) -> float:
        """Make the cluster hold exactly ``objs``, or the state kept under that name (writes
        only what differs)."""
        if isinstance(objs, str):
            objs = named[objs]
        c = emu[name]
        want = {_key(o, scoped): o for o in objs}
        have: dict[tuple[str, str, str], Obj] = {}
        for kind in BY_KIND:
            for o in c.list(kind):
                have[_key(o, scoped)] = o
        for k in have.keys() - want.keys():
            c.remove(k[0], k[2], k[1])
        changed = []
        for k, o in want.items():
            old = have.get(k)
            if old is None or old.get("spec") != o.get("spec") or old.get("status") != o.get(
                "status"
            ) or (old["metadata"].get("labels") != o["metadata"].get("labels")):
                changed.append(o)
        if changed:
            c.put(*changed)
        return time.monotonic()

    def count(t0: float, t1: float) -> dict[str, dict[str, int]]:
        """Requests each cluster logged in [t0, t1): LIST/GET vs watch."""
        out: dict[str, dict[str, int]] = {}
        for c in emu.iter_clusters():
            with c.lock:
                reqs = [r for r in c.requests if t0 <= r.at < t1]
            watch = sum(1 for r in reqs if r.query.get("watch") in ("true", "1"))
            out[c.name] = {"watch": watch, "other": len(reqs) - watch}
        return out

    def fault(name: str, how: str) -> None:
        c = emu[name]
        if how == "unreachable":
            c.unreachable = True
        elif how == "clear":
            c.clear_faults()

    commands: dict[str, Callable[..., Any]] = {
        "seed": seed,
        "states": keep_states,
        "set": set_state,
        "count": count,
        "fault": fault,
        "now": time.monotonic,
        "cpu": time.process_time,  # all the emulator's threads
    }
    try:
        while True:
            msg = conn.recv()
            op, args = msg[0], msg[1:]
            if op == "stop":
                conn.send(None)
                break
            with lock:
                try:
                    conn.send(("ok", commands[op](*args)))
                except Exception as exc:  # report, keep serving
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        emu.stop()
