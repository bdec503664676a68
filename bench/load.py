"""Load harness: N learners, each with an emulated cluster, through the real bot stack.

    uv run python bench/load.py --learners 100 --minutes 2

What runs: the Kubernetes API emulator in a child process (one loopback server on 127.0.0.1,
one logical cluster per learner, TLS + bearer tokens like a vcluster), and in this process the
real composition of ``kepler serve`` minus the Discord gateway: ``SQLiteStore`` on a temporary
file, ``ClusterService`` over a kubeconfig backend (one kubeconfig per learner), ``App`` with
its background loops (its change watchers are the watch path under test), the ``Engine`` and
``Actions``. The transport is a recorder that timestamps every delivery; interactions are the
autospecced Discord fakes of ``tests/discord/world.py``.

Learners start at chapters 2-5 (the recorded ``before`` states of ``tests/course_states``),
idle for a while on their task, then, during the active phase, each applies the state that
completes its task (the recorded ``after`` state) at a random time, answers the next
chapter's question and does the next task, and so on. Some also click Check right after
applying, as people do.

Measured: unlock latency (cluster change → the unlocking message handed to the transport),
event-loop lag (a probe every 100 ms) and time-to-defer of /check interactions, Kubernetes
requests per learner-minute idle and active (the emulator's request log), RSS per learner,
CPU per check, store writes per second at peak. Loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import emuproc  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.config.kube_config import KubeConfigLoader  # noqa: E402
from stalls import StallSampler  # noqa: E402

from bot.content.course import load_course  # noqa: E402
from bot.content.schema import QuestionBeat, TaskBeat  # noqa: E402
from bot.engine.live import LiveLoop  # noqa: E402
from bot.engine.ports import Address, Outgoing  # noqa: E402
from bot.ops.heap import freeze_startup  # noqa: E402
from bot.ops.open_files import raise_open_files  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402
from bot.transports.discord.app import App  # noqa: E402
from sandbox import apihttp  # noqa: E402
from sandbox.backends.base import SandboxRecord  # noqa: E402
from sandbox.backends.kubeconfig import KubeconfigBackend  # noqa: E402
from sandbox.objectives import EvalContext  # noqa: E402
from sandbox.service import ClusterService  # noqa: E402

CHAPTERS = (2, 3, 4, 5)  # tasks with a recorded before/after (1 passes at once, 6 drills)
LAST = 5


# --- the emulator process ----------------------------------------------------------------------


class Emulator:
    """The child process and a thread-safe, awaitable command channel to it."""

    def __init__(self, nice: int = emuproc.NICE, io: str = emuproc.IO) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=emuproc.serve, args=(child, 60.0, nice, io), daemon=True)
        self.proc.start()
        self._lock = threading.Lock()
        # Its own thread: queued commands must not hold up the bot's ``to_thread`` work.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="emu-pipe")

    def call(self, *msg: Any) -> Any:
        with self._lock:
            self.conn.send(msg)
            status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value

    async def acall(self, *msg: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.call, *msg)

    def stop(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception), self._lock:
            self.conn.send(("stop",))
            self.conn.recv()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


class Emulators:
    """The clusters spread over ``n`` emulator processes (cluster ``l<i>`` on shard i mod n).

    With ``io="threads"`` a process runs a thread per connection (~6,000 at 1,000 learners)
    behind one GIL; under load it could collapse into a futex storm (load average in the
    thousands, the CPU all kernel time) that starved the bot as well, and shards kept each
    process's thread count a fraction of that. ``io="asyncio"`` (the default) serves each
    shard from one event loop; shards then spread the emulator over the machine's cores."""

    def __init__(self, n: int, nice: int = emuproc.NICE, io: str = emuproc.IO):
        self.shards = [Emulator(nice, io) for _ in range(n)]

    def _of(self, name: str) -> Emulator:
        return self.shards[int(name.lstrip("l")) % len(self.shards)]

    async def acall(self, op: str, *args: Any) -> Any:
        if op == "seed":
            (clusters,) = args
            parts: dict[int, dict[str, Any]] = defaultdict(dict)
            for name, objs in clusters.items():
                parts[self.shards.index(self._of(name))][name] = objs
            got = await asyncio.gather(*(self.shards[i].acall("seed", part)
                                         for i, part in parts.items()))
            return {k: v for d in got for k, v in d.items()}
        if op in ("set", "fault"):
            return await self._of(args[0]).acall(op, *args)
        if op == "count":
            got = await asyncio.gather(*(e.acall("count", *args) for e in self.shards))
            return {k: v for d in got for k, v in d.items()}
        if op == "states":
            await asyncio.gather(*(e.acall(op, *args) for e in self.shards))
            return None
        if op == "cpu":
            return sum(await asyncio.gather(*(e.acall("cpu") for e in self.shards)))
        return await self.shards[0].acall(op, *args)  # "now": one clock for all

    def stop(self) -> None:
        for e in self.shards:
            e.stop()


class Learners(KubeconfigBackend):
    """Learner id → its own kubeconfig (a logical cluster of the emulator)."""

    def __init__(self, configs: dict[str, dict[str, Any]]):
        super().__init__(config_dict={})
        self.configs = configs

    async def client_for(self, learner_id: str) -> client.ApiClient:
        def make() -> client.ApiClient:
            cfg = client.Configuration()
            KubeConfigLoader(config_dict=self.configs[learner_id]).load_and_set(cfg)
            cfg.retries = False
            return client.ApiClient(cfg)

        return await asyncio.to_thread(make)


class PollingLoop(LiveLoop):
    """The peers' way (iximiuz Labs, Killercoda): no watches; every active task is read and
    judged once a second. Same learners, same selection of who is active, same cluster reads
    and objective evaluation; the engine's check (which records the objectives and unlocks)
    runs only when a poll finds every objective holding, as a poller would act on its result."""

    POLL = 1.0

    async def _watch(self, learner: str) -> None:
        await asyncio.sleep(random.uniform(0, self.POLL))  # timers are not in lockstep
        tasks: list[tuple[int, TaskBeat]] = []
        stale = True
        while True:
            started = time.monotonic()
            try:
                if stale:  # the open tasks change only when one unlocks
                    course = self.engine.course
                    tasks = [(m.id, beat) for m in await self.engine.store.missions_of(learner)
                             if m.state == "running" and isinstance(
                                 beat := course.beat_at(m.chapter, m.beat), TaskBeat)]  # fmt: skip
                    stale = False
                for mission_id, beat in tasks:
                    t = time.perf_counter()
                    result = await self.engine.cluster.evaluate(learner, beat.objectives,
                                                                EvalContext(None))  # fmt: skip
                    self.engine.observe("check", seconds=time.perf_counter() - t,
                                        learner=learner, passed=result.all_passed,
                                        error=result.error is not None)  # fmt: skip
                    if result.all_passed:
                        await self.engine.check(mission_id, learner, explicit=False)
                        stale = True
            except asyncio.CancelledError:
                raise
            except Exception:
                stale = True
            await asyncio.sleep(max(0.0, started + self.POLL - time.monotonic()))


# --- recording ---------------------------------------------------------------------------------


@dataclass
class Recorder:
    """The engine's transport: remembers when each learner's unlocking message went out."""

    unlocked_at: dict[str, float] = field(default_factory=dict)  # learner -> observe("unlock")
    delivered_at: dict[str, float] = field(default_factory=dict)  # learner -> first delivery
    by_address: dict[str, str] = field(default_factory=dict)  # address id -> learner
    keys: set[str] = field(default_factory=set)
    count: int = 0
    # learner -> woken on their unlocking delivery (the harness waits on it rather than
    # polling: a thousand learners polling every 50 ms were the bot loop's busiest job)
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        if key in self.keys:
            return
        self.keys.add(key)
        self.count += 1
        learner = self.by_address.get(address.key)
        if learner and learner in self.unlocked_at and learner not in self.delivered_at:
            self.delivered_at[learner] = time.monotonic()
            if learner in self.waiting:
                self.waiting[learner].set()

    async def delivered(self, learner: str, timeout: float) -> bool:
        """Wait until ``learner``'s unlocking message went out (False: not in ``timeout``)."""
        event = self.waiting.setdefault(learner, asyncio.Event())
        try:
            if learner not in self.delivered_at:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
            return learner in self.delivered_at
        finally:
            del self.waiting[learner]

    async def stream(self, address: Address, speaker: str, chunks: Any) -> str:
        return "".join([c async for c in chunks])


@dataclass
class Stats:
    checks: int = 0
    checks_by_learner: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    check_seconds: list[float] = field(default_factory=list)  # each check's cluster read+judge
    check_errors: int = 0  # checks whose read failed (timeouts: the emulator was too slow)
    check_error_reasons: Counter[str] = field(default_factory=Counter)  # what the reads said
    unlock_latency: list[float] = field(default_factory=list)
    missed: int = 0
    stuck: int = 0  # the story did not reach the next task within 30 s of an unlock
    lag: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    writes_per_s: list[int] = field(default_factory=list)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def threads() -> int:
    return threading.active_count()


async def handshake_cpu(kubeconfig: dict[str, Any], rounds: int = 40) -> tuple[float, float]:
    """This process's CPU (ms) for one full TLS handshake and one resumed handshake with the
    emulator: a GET on a new connection minus a GET on a kept one (the bot alone, after the
    run, so nothing else is on the loop)."""
    from urllib.parse import urlsplit

    from sandbox.httpstream import HttpStream

    cfg = client.Configuration()
    KubeConfigLoader(config_dict=kubeconfig).load_and_set(cfg)
    tls = apihttp.ssl_context(cfg)
    url = urlsplit(cfg.host)
    headers = apihttp.auth_headers(cfg)
    target = f"{url.path}/api/v1/namespaces?limit=1"

    async def get(stream: HttpStream) -> None:
        stream.send_get(target, url.netloc, headers, keep_alive=True)
        await stream.response()
        await stream.read(1 << 20)

    async def new(session: Any) -> HttpStream:
        stream = await HttpStream.connect("https", url.hostname or "", url.port, tls, 10.0,
                                          session)  # fmt: skip
        await get(stream)
        return stream

    kept = await new(None)
    session = kept.session
    t = time.process_time()
    for _ in range(rounds):
        assert kept.recycle()
        await get(kept)
    per_get = (time.process_time() - t) / rounds
    costs = []
    for resume in (None, session):
        t = time.process_time()
        for _ in range(rounds):
            (await new(resume)).close()
        costs.append(max(0.0, (time.process_time() - t) / rounds - per_get) * 1000)
    kept.close()
    return costs[0], costs[1]


# --- the run -----------------------------------------------------------------------------------


async def run(n: int, minutes: float, idle_s: float, seed: int, explicit_share: float,
              settle_s: float = 20.0, sampler: StallSampler | None = None,
              shards: int = 4, design: str = "ours", keep_alive: bool = True,
              emulator_nice: int = emuproc.NICE, emulator_io: str = emuproc.IO,
              http2: bool = True) -> dict:
    """One run; ``design`` "ours" (watches) or "peer" (poll every active task each second);
    ``keep_alive`` False: a new connection and a full TLS handshake per read (as before);
    ``http2`` False: HTTP/1.1 only, a connection per watch (rounds 1-7)."""
    from tests.course_states import states
    from tests.discord.world import World
    from tests.fakes import CannedVoice

    rng = random.Random(seed)
    random.seed(seed)  # watch-window and poll jitter too
    connections = (apihttp.Pool(http2=http2) if keep_alive
                   else apihttp.Pool(per_cluster=0, resume=False, http2=False))
    apihttp.use_pool(connections)
    course = load_course()
    before = {c: states.before(c).objects() for c in CHAPTERS}
    after = {c: states.after(c, with_drill=False).objects() for c in CHAPTERS}
    emu = Emulators(shards, emulator_nice, emulator_io)
    tmp = tempfile.TemporaryDirectory(prefix="kepler-bench-")
    stats = Stats()
    try:
        learners = [f"discord:{100_000 + i}" for i in range(n)]
        chapter = {lid: CHAPTERS[i % len(CHAPTERS)] for i, lid in enumerate(learners)}
        cluster_of = {lid: f"l{i}" for i, lid in enumerate(learners)}
        configs: dict[str, Any] = {}
        await emu.acall("states", {f"after-{c}": objs for c, objs in after.items()})
        for start in range(0, n, 50):
            part = learners[start : start + 50]
            got = await emu.acall("seed", {cluster_of[lid]: before[chapter[lid]] for lid in part})
            configs.update({lid: got[cluster_of[lid]] for lid in part})

        # Discord fakes for the learners who click (autospec is costly: a sample of them).
        world = World(plain_messages=True)
        clickers: dict[str, tuple[Any, Any]] = {}
        for lid in learners[: min(n, 20)]:
            uid = int(lid.split(":")[1])
            user = world.user(uid, f"L{uid}")
            clickers[lid] = (user, user.dm_channel)

        store = SQLiteStore(Path(tmp.name) / "kepler.db")
        await store.open()
        service = ClusterService(Learners(configs), timeout=5.0)
        app = App(bot=world.client, store=store, course=course, cluster=service,
                  voice=CannedVoice(), service=service)  # fmt: skip
        if design == "peer":
            assert app.live is not None
            app.live = PollingLoop(app.engine, service, include=app.live.include,
                                   ready=app.live.ready)  # fmt: skip
        recorder = Recorder()
        app.engine.transport = recorder
        engine = app.engine

        def observe(event: str, **f: Any) -> None:
            if event == "check":
                stats.checks += 1
                stats.checks_by_learner[f["learner"]] += 1
                stats.check_seconds.append(f["seconds"])
                if f["error"]:
                    stats.check_errors += 1
                    # grouped by what went wrong, not by whose cluster
                    reason = re.sub(r"https?://\S+|\bl\d+\b", "…", str(f.get("reason")))
                    stats.check_error_reasons[reason.split("\n")[0][:160]] += 1
            elif event == "unlock":
                recorder.unlocked_at.setdefault(f["learner"], time.monotonic())

        engine.observe = observe
        # Interactions for the clicks, autospecced now: building one costs more CPU than a
        # check, and that is the harness's cost, not the bot's (it was in CPU per check).
        # They are made before the start-up freeze, so that the bot's garbage collections do
        # not walk them either: a real bot holds no such fakes, and they were over a third of
        # the tracked objects (100,000 mock proxies), stretching every full collection.
        every = max(0.5, 30 / n)  # about one click per learner per 30 s, at most 2/s
        per_clicker = int(minutes * 60 / every / max(1, len(clickers)) * 1.3) + 6
        interactions = {lid: [world.interaction(user, dm) for _ in range(per_clicker)]
                        for lid, (user, dm) in clickers.items()}  # fmt: skip
        freeze_startup()  # as ``kepler serve`` does once the app is built
        gc_rss0, cpu0 = rss_mib(), time.process_time()

        async def to_task(mission_id: int, lid: str, past: int = -1) -> bool:
            """Read on to the next task of a chapter after index ``past``, answering and
            continuing as asked (False: the story did not get there within 30 s). Beats the
            engine is still sending are waited for, as a reader does. (The unlocking message
            can be seen before the story's move past the task is committed: a reader who
            took the old task for the next one stopped reading.)"""
            end = time.monotonic() + 30
            while time.monotonic() < end:
                m = await store.get_mission(mission_id)
                assert m is not None
                if m.state != "running":
                    return False
                beat = course.beat_at(m.chapter, m.beat)
                if isinstance(beat, TaskBeat) and m.chapter > past:
                    return True
                if isinstance(beat, TaskBeat):
                    await asyncio.sleep(0.05)
                elif isinstance(beat, QuestionBeat):
                    await engine.say(mission_id, lid, "1")
                elif beat is not None and beat.pause:
                    await engine.continue_(mission_id, lid)
                else:
                    await asyncio.sleep(0.05)
            return False

        missions: dict[str, int] = {}
        t_setup = time.monotonic()
        sem = asyncio.Semaphore(8)

        async def enrol(lid: str) -> None:
            async with sem:
                addr_id = str(clickers[lid][1].id) if lid in clickers else lid.split(":")[1]
                recorder.by_address[addr_id] = lid
                address = Address("discord", "solo", addr_id)
                now = time.time()
                await store.save_sandbox(SandboxRecord(lid, "vcluster", cluster_of[lid], "ready",
                                                       now, now))  # fmt: skip
                m = await engine.start(address, lid, lid, chapter=chapter[lid])
                missions[lid] = m.id
                await to_task(m.id, lid)

        await asyncio.gather(*(enrol(lid) for lid in learners))
        setup_s = time.monotonic() - t_setup
        rss_enrolled = rss_mib()


        # --- probes ---
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                t = time.monotonic()
                await asyncio.sleep(0.1)
                stats.lag.append(time.monotonic() - t - 0.1)

        async def writes() -> None:
            last = store.conn.total_changes
            while not stop.is_set():
                await asyncio.sleep(1.0)
                now = store.conn.total_changes
                stats.writes_per_s.append(now - last)
                last = now

        probes = [asyncio.create_task(probe()), asyncio.create_task(writes())]
        if sampler is not None:
            sampler.start()

        # --- watchers up, first checks (warm-up) ---
        app.start_loops()
        await app.watch()
        t_warm = time.monotonic()
        while time.monotonic() - t_warm < 120:
            if sum(1 for lid in learners if stats.checks_by_learner[lid] > 0) >= n:
                break
            await asyncio.sleep(0.5)
        warm_s = time.monotonic() - t_warm
        await asyncio.sleep(settle_s)  # watches open after the first checks: let them
        # Idle is the steady state: wait (at most 120 s) until watch openings have stopped,
        # under 1 % of the learners opening one in 5 s; how long that took is reported.
        t_watch = time.monotonic()
        w0 = await emu.acall("now")
        while time.monotonic() - t_watch < 120:
            await asyncio.sleep(5.0)
            w1 = await emu.acall("now")
            opened_watches = sum(r["watch"] for r in (await emu.acall("count", w0, w1)).values())
            w0 = w1
            if opened_watches <= n / 100:
                break
        watch_settle_s = time.monotonic() - t_watch
        early = [lid for lid in learners if lid in recorder.unlocked_at]

        # --- idle phase: everyone on a task, nothing changes ---
        checks_before_idle = stats.checks
        i0 = await emu.acall("now")
        await asyncio.sleep(idle_s)
        i1 = await emu.acall("now")
        idle_counts = await emu.acall("count", i0, i1)
        idle_checks = stats.checks - checks_before_idle
        rss_idle = rss_mib()
        threads_idle = threads()
        lag_idle = list(stats.lag)
        stats.lag.clear()

        # --- active phase ---
        active_s = minutes * 60
        # (for a profiler to attach to this phase only: py-spy record -p PID -d SECONDS)
        print(f"active phase: pid {os.getpid()}, {active_s:.0f} s", file=sys.stderr, flush=True)
        a0 = await emu.acall("now")
        cpu_a0, checks_a0, kept_a0 = time.process_time(), stats.checks, service.kept_reads
        conn0 = (connections.opened, connections.reused, connections.streams,
                 connections.resumed, connections.multiplexed)
        emu_cpu0 = await emu.acall("cpu")
        stats.check_seconds.clear()
        stats.check_errors = 0
        stats.check_error_reasons.clear()
        t_active = time.monotonic()
        deadline = t_active + active_s
        lat: list[float] = []
        slow: list[dict[str, Any]] = []  # unlocks delivered over 5 s after the change
        pipe: list[float] = []  # harness: asking the emulator for a change → it is made
        writes_idle = list(stats.writes_per_s)
        stats.writes_per_s.clear()

        async def learner_loop(lid: str) -> None:
            c = chapter[lid]
            # first change at a uniform time in the first ~60 % of the phase, then every
            # ~30-90 s (a brisk learner: apply, get the beat, answer, next task)
            await asyncio.sleep(rng.uniform(0, active_s * 0.6))
            while c <= LAST and time.monotonic() < deadline - 10:
                recorder.unlocked_at.pop(lid, None)
                recorder.delivered_at.pop(lid, None)
                asked = time.monotonic()
                # The change happens when the emulator commits it (its monotonic clock is the
                # same CLOCK_MONOTONIC); the wait in the harness's own pipe is not the bot's.
                t0 = await emu.acall("set", cluster_of[lid], f"after-{c}")
                pipe.append(t0 - asked)
                if rng.random() < explicit_share:
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    if lid in clickers:
                        await click(lid)
                    else:
                        await engine.check(missions[lid], lid)
                if not await recorder.delivered(lid, 30.0):
                    stats.missed += 1
                    return
                lat.append(recorder.delivered_at[lid] - t0)
                if lat[-1] > 5.0:  # where a slow one spent its time: to the unlock, then out
                    slow.append({"learner": lid, "chapter": c,
                                 "unlocked_s": round(recorder.unlocked_at[lid] - t0, 3)
                                 if lid in recorder.unlocked_at else None,
                                 "delivered_s": round(lat[-1], 3),
                                 "checks": stats.checks_by_learner[lid]})
                if not await to_task(missions[lid], lid, course.find_chapter(c)):
                    stats.stuck += 1
                    return
                c += 1
                if c > LAST:
                    return
                await asyncio.sleep(rng.uniform(30, 90))

        async def click(lid: str) -> None:
            user, dm = clickers[lid]
            ready = interactions[lid]
            interaction = ready.pop() if ready else world.interaction(user, dm)
            acked = asyncio.get_running_loop().create_future()

            async def defer(**kwargs: Any) -> None:
                if not acked.done():
                    acked.set_result(time.monotonic())

            interaction.response.defer.side_effect = defer
            t = time.monotonic()
            task = asyncio.create_task(app.actions.check(interaction))
            stats.acks.append(await acked - t)
            await task

        async def clicking() -> None:
            ids = list(clickers)
            while time.monotonic() < deadline:
                await asyncio.sleep(every)
                with contextlib.suppress(Exception):
                    await click(rng.choice(ids))

        loops = [asyncio.create_task(learner_loop(lid)) for lid in learners if lid not in early]
        clicks = asyncio.create_task(clicking())
        await asyncio.wait(loops, timeout=active_s + 45)
        clicks.cancel()
        a1 = await emu.acall("now")
        cpu_active = time.process_time() - cpu_a0
        emu_cpu_active = await emu.acall("cpu") - emu_cpu0
        checks_active = stats.checks - checks_a0
        kept_active = service.kept_reads - kept_a0
        opened, reused, streams, resumed, multiplexed = (
            b - a for a, b in zip(conn0, (connections.opened, connections.reused,
                                          connections.streams, connections.resumed,
                                          connections.multiplexed),
                                  strict=True))  # fmt: skip
        sockets_active = sockets()
        active_counts = await emu.acall("count", a0, a1)
        rss_active = rss_mib()
        if os.environ.get("KEPLER_BENCH_CENSUS"):  # what a full collection walks, by type
            import gc

            census = Counter(type(o).__name__ for o in gc.get_objects())
            print(f"tracked objects: {sum(census.values())}; frozen: {gc.get_freeze_count()}",
                  file=sys.stderr)
            for name, count in census.most_common(40):
                print(f"{count:>9} {name}", file=sys.stderr)
        threads_active = threads()
        stop.set()
        if sampler is not None:
            sampler.stop()
        for t in [*probes, *loops, clicks]:
            t.cancel()
        await app.close()
        await store.close()
        tls_full_ms, tls_resumed_ms = await handshake_cpu(configs[learners[0]])

        def per_learner_minute(counts: dict, seconds: float) -> tuple[float, float, float]:
            rows = [counts.get(cluster_of[lid], {"watch": 0, "other": 0}) for lid in learners]
            w = sum(r["watch"] for r in rows) / n / (seconds / 60)
            o = sum(r["other"] for r in rows) / n / (seconds / 60)
            worst = max((r["watch"] + r["other"]) for r in rows) / (seconds / 60)
            return w + o, w, worst

        idle_total, idle_watch, idle_worst = per_learner_minute(idle_counts, i1 - i0)
        act_total, act_watch, act_worst = per_learner_minute(active_counts, a1 - a0)
        handshakes = opened + streams
        checks = max(1, checks_active)
        return {
            "design": design,
            "keep_alive": keep_alive,
            "http2": http2,
            "seed": seed,
            "learners": n,
            "minutes": minutes,
            "setup_s": round(setup_s, 1),
            "warmup_s": round(warm_s, 1),
            "watch_settle_s": round(watch_settle_s, 1),
            "unlocked_at_start": len(early),
            "unlocks": len(lat),
            "missed_unlocks": stats.missed,
            "stuck_after_unlock": stats.stuck,
            "unlock_p50": pct(lat, 50),
            "unlock_p95": pct(lat, 95),
            "unlock_p99": pct(lat, 99),
            "slow_unlocks": slow[:20],
            "unlock_max": max(lat, default=float("nan")),
            "change_queue_p50": pct(pipe, 50),
            "change_queue_max": max(pipe, default=float("nan")),
            "lag_idle_p99": pct(lag_idle, 99),
            "lag_p50": pct(stats.lag, 50),
            "lag_p99": pct(stats.lag, 99),
            "lag_max": max(stats.lag, default=float("nan")),
            "acks": len(stats.acks),
            "ack_p50": pct(stats.acks, 50),
            "ack_p99": pct(stats.acks, 99),
            "ack_max": max(stats.acks, default=float("nan")),
            "idle_req_per_learner_min": idle_total,
            "idle_watch_req_per_learner_min": idle_watch,
            "idle_worst_learner_req_min": idle_worst,
            "idle_checks": idle_checks,
            "idle_s": round(i1 - i0, 1),
            "active_req_per_learner_min": act_total,
            "active_watch_req_per_learner_min": act_watch,
            "active_worst_learner_req_min": act_worst,
            "rss_base_mib": round(gc_rss0, 1),
            "rss_per_learner_kib_idle": (rss_idle - gc_rss0) * 1024 / n,
            "rss_per_learner_kib_active": (rss_active - gc_rss0) * 1024 / n,
            "rss_enrolled_mib": round(rss_enrolled, 1),
            "threads_idle": threads_idle,
            "threads_active": threads_active,
            "checks_active": checks_active,
            "cpu_ms_per_check": 1000 * cpu_active / max(1, checks_active),
            "cpu_active_s": round(cpu_active, 1),
            "cpu_share_of_core": cpu_active / (a1 - a0),
            "emulator_cpu_share_of_core": emu_cpu_active / (a1 - a0),
            "emulator_processes": shards,
            "emulator_nice": emulator_nice,
            "emulator_io": emulator_io,
            "check_read_p50": pct(stats.check_seconds, 50),
            "check_read_p95": pct(stats.check_seconds, 95),
            "check_read_max": max(stats.check_seconds, default=float("nan")),
            "check_errors_active": stats.check_errors,
            "check_error_reasons_active": stats.check_error_reasons.most_common(5),
            "reads_reusing_a_connection": reused / max(1, reused + opened),
            "lists_kept_per_check": kept_active / checks,
            "lists_asked_per_check": (reused + opened) / checks,
            "sockets_active": sockets_active,
            "sockets_per_learner": sockets_active / n,
            "http2_connections_opened_active": multiplexed,
            "tls_handshakes_per_check": handshakes / checks,
            "tls_handshakes_per_check_reads": opened / checks,
            "tls_handshakes_per_check_watches": streams / checks,
            "tls_resumed_share": resumed / max(1, handshakes),
            "tls_cpu_ms_full_handshake": tls_full_ms,
            "tls_cpu_ms_resumed_handshake": tls_resumed_ms,
            "tls_cpu_ms_per_check": ((handshakes - resumed) * tls_full_ms
                                     + resumed * tls_resumed_ms) / checks,
            "store_rows_per_s_peak": max(stats.writes_per_s, default=0),
            "store_rows_per_s_idle_peak": max(writes_idle, default=0),
            "cpu_total_s": round(time.process_time() - cpu0, 1),
        }
    finally:
        emu.stop()
        tmp.cleanup()


def sockets() -> int:
    """Sockets this process holds now (its connections to the API servers among them)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores (nproc), {mem:.0f} GiB RAM, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")  # fmt: skip


def child(args: argparse.Namespace, learners: int, design: str, out: Path) -> dict:
    """One run in a fresh process (``--peer`` and ``--capacity`` compare several)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--learners", str(learners),
           "--minutes", str(args.minutes), "--idle-seconds", str(args.idle_seconds),
           "--settle-seconds", str(args.settle_seconds), "--explicit", str(args.explicit),
           "--seed", str(args.seed), "--emulators", str(args.emulators), "--design", design,
           "--emulator-nice", str(args.emulator_nice), "--emulator-io", args.emulator_io,
           "--json", str(out)]  # fmt: skip
    if args.no_keep_alive:
        cmd.append("--no-keep-alive")
    if args.http1:
        cmd.append("--http1")
    print(f"--- {design}, {learners} learners, seed {args.seed}", flush=True)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    return json.loads(out.read_text())


COMPARED = [  # (key, label) for --peer
    ("unlock_p50", "unlock p50 (s)"), ("unlock_p95", "unlock p95 (s)"),
    ("unlock_p99", "unlock p99 (s)"), ("missed_unlocks", "missed unlocks"),
    ("check_errors_active", "failed reads, active"),
    ("idle_req_per_learner_min", "requests / idle learner-minute"),
    ("active_req_per_learner_min", "requests / active learner-minute"),
    ("cpu_share_of_core", "bot CPU, share of a core (active)"),
    ("emulator_cpu_share_of_core", "API servers' CPU, share of a core (active)"),
    ("cpu_ms_per_check", "bot CPU per check (ms)"), ("lag_max", "worst loop stall (s)"),
    ("checks_active", "checks, active phase"),
]


def peer_table(ours: dict, peer: dict) -> str:
    rows = ["| | ours (watches) | peer (poll 1/s) | ours / peer |", "|---|---|---|---|"]
    for key, label in COMPARED:
        a, b = ours.get(key, float("nan")), peer.get(key, float("nan"))
        ratio = a / b if isinstance(a, int | float) and b else float("nan")
        rows.append(f"| {label} | {a:.3g} | {b:.3g} | {ratio:.3g} |")
    return "\n".join(rows)


def capacity(args: argparse.Namespace, tmp: Path) -> dict:
    """Unlock p95 at each level, up to the first above 2 s (or with a missed unlock)."""
    results: dict = {"levels": [], "seed": args.seed}
    best = 0
    for level in args.levels:
        got = child(args, level, args.design, tmp / f"cap-{level}.json")
        ok = (got["unlock_p95"] <= 2.0 and got["missed_unlocks"] == 0
              and got.get("stuck_after_unlock", 0) == 0)
        results["levels"].append({k: got.get(k) for k in (
            "learners", "unlock_p50", "unlock_p95", "unlock_p99", "missed_unlocks",
            "stuck_after_unlock", "check_errors_active", "lag_max", "cpu_share_of_core",
            "wall_s")} | {"ok": ok})
        print(f"{level:>5} learners: unlock p95 {got['unlock_p95']:.2f} s, p99 "
              f"{got['unlock_p99']:.2f} s, missed {got['missed_unlocks']}, stuck after an unlock "
              f"{got.get('stuck_after_unlock', 0)}, failed reads "
              f"{got['check_errors_active']}, worst stall {got['lag_max']:.2f} s "
              f"-> {'ok' if ok else 'over'}", flush=True)
        if not ok:
            break
        best = level
    results["capacity"] = best
    print(f"capacity (most learners with unlock p95 <= 2 s, of {args.levels}): {best}")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", type=int, default=10)
    p.add_argument("--minutes", type=float, default=2.0, help="length of the active phase")
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--explicit", type=float, default=0.3,
                   help="share of changes followed by a /check click")  # fmt: skip
    p.add_argument("--settle-seconds", type=float, default=10.0,
                   help="after the first checks, before the idle phase is measured")  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--emulators", type=int, default=4,
                   help="emulator processes the clusters are spread over")  # fmt: skip
    p.add_argument("--emulator-nice", type=int, default=emuproc.NICE,
                   help="niceness of the emulator processes (19: they get what the bot leaves; "
                        "on a machine shared with other work use 0, or they starve)")
    p.add_argument("--emulator-io", choices=("asyncio", "threads"), default=emuproc.IO,
                   help="asyncio: each emulator process serves from one event loop (4,000 "
                        "learners fit); threads: a thread per connection (rounds 1-6)")
    p.add_argument("--design", choices=("ours", "peer"), default="ours",
                   help="ours: watches; peer: poll every active task once a second")
    p.add_argument("--no-keep-alive", action="store_true",
                   help="a new connection and full TLS handshake per read (the old client)")
    p.add_argument("--http1", action="store_true",
                   help="offer HTTP/1.1 only: a connection per watch (rounds 1-7)")
    p.add_argument("--peer", action="store_true",
                   help="run ours, then the peer baseline, same learners and seed; ratios")
    p.add_argument("--capacity", action="store_true",
                   help="unlock p95 at each of --levels learners; the most with p95 <= 2 s")
    p.add_argument("--levels", type=lambda v: [int(x) for x in v.split(",")],
                   default=[250, 500, 1000, 2000, 4000])
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--stalls", action="store_true",
                   help="sample the loop thread's stack while it is >0.2 s late; time GC")  # fmt: skip
    args = p.parse_args(argv)
    if not 1 <= args.learners <= 4000 or not 0 < args.minutes <= 15:
        p.error("--learners 1..4000, --minutes up to 15")
    if args.peer or args.capacity:
        with tempfile.TemporaryDirectory(prefix="kepler-bench-") as tmp:
            if args.capacity:
                out = capacity(args, Path(tmp))
            else:
                ours = child(args, args.learners, "ours", Path(tmp) / "ours.json")
                peer = child(args, args.learners, "peer", Path(tmp) / "peer.json")
                print(peer_table(ours, peer))
                out = {"ours": ours, "peer": peer}
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
        return 0
    # kill -USR1 <pid>: what every asyncio task is waiting on (a run that hangs)
    import signal

    def dump_tasks(*_: object) -> None:

        waits: Counter[str] = Counter()
        for task in asyncio.all_tasks(asyncio.get_event_loop_policy().get_event_loop()):
            frames = task.get_stack(limit=6)
            waits[" < ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))] += 1
        for where, count in waits.most_common(25):
            print(f"{count:>6} {where}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGUSR1, dump_tasks)
    _before, open_files = raise_open_files()  # as kepler serve does: a watch is a socket
    began = time.monotonic()
    sampler = StallSampler() if args.stalls else None
    out = asyncio.run(run(args.learners, args.minutes, args.idle_seconds, args.seed,
                          args.explicit, args.settle_seconds, sampler,
                          args.emulators, args.design, not args.no_keep_alive,
                          args.emulator_nice, args.emulator_io,
                          not args.http1))  # fmt: skip
    if sampler is not None:
        out.update(sampler.report())
    out["machine"] = machine()
    out["open_files_limit"] = open_files
    out["load_average_1min_end"] = os.getloadavg()[0]
    out["wall_s"] = round(time.monotonic() - began, 1)
    width = max(map(len, out))
    for k, v in out.items():
        print(f"{k:<{width}}  {v:.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["missed_unlocks"] == 0 and out["stuck_after_unlock"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
