"""Load on the browser terminal's bridge: N terminals, each typing a command a second.

    uv run python bench/terminals.py --terminals 100 --seconds 60

Three processes, all on 127.0.0.1:

* the **bot**: the real :class:`bot.web.server.TerminalWeb` on the bot's HTTP server
  (:class:`bot.ops.health.HealthServer`), with :class:`sandbox.workbench.HostWorkbenches` over a
  SQLite store holding N ready sandboxes. Its CPU time is what is measured (``/proc``);
* the **exec endpoint**: ``tests/web/exec_endpoint.py``, the real Kubernetes exec protocol (v5)
  with one pseudo-terminal per session running ``cat >/dev/null``, so the echo of each
  keystroke comes from the kernel's tty line discipline as in a real shell, and nothing else
  is printed (each echo is matched to its key exactly);
* the **browsers** (this process): N WebSocket clients that open their link, then every second
  type a 16-character command one key at a time (30 ms apart, a fast typist) and Enter.

The browsers offer permessage-deflate as real browsers do (``--no-deflate`` not to); the bot's
store keeps spent links and sessions as ``kepler serve``'s does.

Reported: the bot's CPU share of one core over the typing window, and the keystroke echo
latency (key sent by the client → its echo back at the client) p50/p95/p99/max. Every
connection's echoes are matched to its keys in order. Beside them, how late the bot's and the
browsers' own event loops ran their timers (``bot_loop_lag_ms``, ``browsers_loop_lag_ms``): on
a loaded machine the echo latency is mostly this wait for a CPU, in every process on the path,
and when the browsers' lag is as large as the bot's the harness is starving too. Note the load
average (``load_average_1m``, before and after) with every figure.

    uv run python bench/terminals.py --terminals 100 --seconds 30 --seed 3
    uv run python bench/terminals.py --terminals 20 --seconds 15 --profile /tmp/bot.pstats
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import random
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-terminal-secret-0123456789"
TOKEN = "bench-host-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


# --- the child processes ---------------------------------------------------------------------


async def run_endpoint(n: int, home: Path, echo: str) -> None:
    if echo == "pty":
        from tests.web.exec_endpoint import ExecEndpoint

        endpoint = await ExecEndpoint(TOKEN).start()
        for i in range(n):
            endpoint.add_pod(f"kepler-bench-{i}", "workbench-0", home / str(i), {"TERM": "xterm"})
        port = endpoint.port
    else:
        port = await inline_echo_endpoint()
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


async def inline_echo_endpoint() -> int:
    """The exec protocol (v5) with the echo done in-process: stdin bytes come straight back on
    stdout, "\r" as "\r\n" like a tty. What is left to measure is the bridge itself."""
    from aiohttp import WSMsgType, web

    async def exec_(request: web.Request) -> web.WebSocketResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and msg.data[:1] == b"\x00":
                await ws.send_bytes(b"\x01" + msg.data[1:].replace(b"\r", b"\r\n"))
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", exec_)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


async def run_bot(n: int, endpoint: str, db: Path, profile: str = "") -> None:
    from kubernetes import client

    from bot.ops.health import HealthRegistry, HealthServer
    from bot.store.sqlite import SQLiteStore
    from bot.web.kexec import ExecTarget
    from bot.web.server import TerminalWeb
    from bot.web.tokens import LinkSigner
    from bot.web.workbenches import HostWorkbenches
    from sandbox.backends.base import SandboxRecord

    class CatWorkbenches(HostWorkbenches):
        """The real lookups; the command reads and discards (so the terminal's only output is
        the tty's echo) instead of the workbench's bash."""

        async def target(self, learner: str) -> ExecTarget:
            t = await super().target(learner)
            return ExecTarget(t.base_url, t.namespace, t.pod, t.container,
                              ("sh", "-c", "cat >/dev/null"), t.headers, t.ssl)  # fmt: skip

    cfg = client.Configuration()
    cfg.host = endpoint
    cfg.api_key = {"authorization": TOKEN}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    async with SQLiteStore(db) as store:
        now = time.time()
        for i in range(n):
            await store.save_sandbox(SandboxRecord(f"bench:{i}", "vcluster", f"kepler-bench-{i}",
                                                   "ready", now, now))  # fmt: skip
        web = TerminalWeb(LinkSigner(SECRET, spent=store), CatWorkbenches(store, {"": cfg}),
                          base_url="http://127.0.0.1", kept=store)  # fmt: skip
        server = await HealthServer(HealthRegistry(), host="127.0.0.1", port=0,
                                    mounts=[web.mount]).start()  # fmt: skip
        links = [await web.link_for(f"bench:{i}") for i in range(n)]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        lag = LagProbe()
        loop.add_signal_handler(signal.SIGUSR1, lag.start)  # the measured window opens ...
        loop.add_signal_handler(signal.SIGUSR2, lambda: lag.stop(db.parent / "bot-lag.json"))
        probe = asyncio.create_task(lag.run())
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        print(json.dumps({"port": server.port, "links": links}), flush=True)
        await stop.wait()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        probe.cancel()
        await server.stop()
        await web.aclose()


class LagProbe:
    """How late this process's event loop runs a 20 ms timer: the wait any ready frame has on
    top of its own work (run queue and loop). 50 wakeups a second, a negligible share of CPU."""

    EVERY = 0.02

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False

    def start(self) -> None:
        self.samples, self.recording = [], True

    def stop(self, out: Path) -> None:
        self.recording = False
        out.write_text(json.dumps(percentiles(self.samples)))

    async def run(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(self.EVERY)
            if self.recording:
                self.samples.append(time.perf_counter() - began - self.EVERY)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in ms."""
    lat = sorted(samples) or [0.0]

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1)

    return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": round(lat[-1] * 1000, 1)}


# --- the browsers ----------------------------------------------------------------------------


class Terminal:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: list[tuple[str, float]] = []  # (key, sent at) awaiting their echo
        self.latencies: list[float] = []
        self.lateness: list[float] = []  # this process's own timer lateness (harness starving?)
        self.measuring = False

    async def reader(self) -> None:
        import aiohttp

        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            now = time.perf_counter()
            for ch in msg.data.decode(errors="replace"):
                if self.pending and ch == self.pending[0][0]:
                    _, sent = self.pending.pop(0)
                    if self.measuring:
                        self.latencies.append(now - sent)

    async def typist(self, stop: float, rng: random.Random) -> None:
        await asyncio.sleep(rng.random())  # spread the terminals over the second
        while time.perf_counter() < stop:
            began = time.perf_counter()
            for ch in "".join(rng.choice(string.ascii_lowercase) for _ in range(16)):
                self.pending.append((ch, time.perf_counter()))
                await self.ws.send_bytes(ch.encode())
                slept = time.perf_counter()
                await asyncio.sleep(0.03)
                if self.measuring:
                    self.lateness.append(time.perf_counter() - slept - 0.03)
            await self.ws.send_bytes(b"\r")  # echoed as "\r\n"; not a measured key
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - began)))


async def browsers(base: str, links: list[str], seconds: float, warmup: float, bot_pid: int,
                   endpoint_pid: int, deflate: bool = True, seed: int = 17,
                   lag_file: Path | None = None) -> dict[str, Any]:  # fmt: skip
    import aiohttp

    terms: list[Terminal] = []
    sessions = []
    for link in links:
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(s)
        path = link.removeprefix("http://127.0.0.1")
        async with s.get(base + path, allow_redirects=False) as r:
            assert r.status == 303, r.status
        # compress=15: offer permessage-deflate as every browser does (the bot may accept it)
        terms.append(Terminal(await s.ws_connect(base + "/terminal/ws",
                                                 compress=15 if deflate else 0)))  # fmt: skip
    readers = [asyncio.create_task(t.reader()) for t in terms]
    rng = random.Random(seed)
    stop = time.perf_counter() + warmup + seconds
    typists = [asyncio.create_task(t.typist(stop, random.Random(rng.random()))) for t in terms]
    await asyncio.sleep(warmup)
    for t in terms:
        t.measuring = True
    os.kill(bot_pid, signal.SIGUSR1)  # the bot's loop-lag probe records from now
    cpu0, wall0 = cpu_seconds(bot_pid), time.perf_counter()
    end0, own0 = cpu_seconds(endpoint_pid), time.process_time()
    load0 = os.getloadavg()[0]
    await asyncio.gather(*typists)
    cpu1, wall1 = cpu_seconds(bot_pid), time.perf_counter()
    end1, own1 = cpu_seconds(endpoint_pid), time.process_time()
    os.kill(bot_pid, signal.SIGUSR2)
    await asyncio.sleep(0.5)
    bot_lag = json.loads(lag_file.read_text()) if lag_file and lag_file.exists() else None
    for t in terms:
        await t.ws.close()
    for r in readers:
        r.cancel()
    for s in sessions:
        await s.close()
    lat = sorted(x for t in terms for x in t.latencies)
    keys = len(lat)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {
        "terminals": len(terms), "seconds": round(wall1 - wall0, 1), "keys_echoed": keys,
        "keys_per_second": round(keys / (wall1 - wall0), 1),
        "bot_cpu_share_of_one_core": round((cpu1 - cpu0) / (wall1 - wall0), 3),
        "bot_cpu_ms_per_key": round((cpu1 - cpu0) * 1000 / max(1, keys), 3),
        "exec_endpoint_cpu_share": round((end1 - end0) / (wall1 - wall0), 3),
        "browsers_cpu_share": round((own1 - own0) / (wall1 - wall0), 3),
        "load_average_1m": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "echo_ms": {"p50": round(pct(0.50), 1), "p95": round(pct(0.95), 1),
                    "p99": round(pct(0.99), 1), "max": round(lat[-1] * 1000, 1),
                    "mean": round(statistics.fmean(lat) * 1000, 1)},
        # how late each process's own timers ran: the machine's wait, not the bridge's work
        "bot_loop_lag_ms": bot_lag,
        "browsers_loop_lag_ms": percentiles([x for t in terms for x in t.lateness]),
        "seed": seed, "deflate_offered": deflate,
    }  # fmt: skip


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"child {args[:2]} failed to start")
    return proc, json.loads(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--terminals", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--echo", choices=["inline", "pty"], default="inline",
                    help="inline: the exec endpoint echoes in-process (the bridge alone); "
                         "pty: a real pseudo-terminal per session (adds the kernel's tty work)")
    ap.add_argument("--no-deflate", action="store_true",
                    help="browsers do not offer permessage-deflate (real browsers always do)")
    ap.add_argument("--seed", type=int, default=17, help="the typists' keys and start offsets")
    ap.add_argument("--profile", default="",
                    help="write a cProfile of the bot process to this file (pstats format)")
    ap.add_argument("--role", choices=["endpoint", "bot"], help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role == "endpoint":
        asyncio.run(run_endpoint(a.terminals, Path(a.dir), a.echo))
        return
    if a.role == "bot":
        asyncio.run(run_bot(a.terminals, a.endpoint, Path(a.dir) / "bench.db", a.profile))
        return
    with tempfile.TemporaryDirectory(prefix="kepler-terminals-") as tmp:
        endpoint, info = spawn("--role", "endpoint", "--terminals", str(a.terminals), "--dir", tmp,
                               "--echo", a.echo)  # fmt: skip
        bot, binfo = spawn("--role", "bot", "--terminals", str(a.terminals), "--dir", tmp,
                           "--endpoint", f"http://127.0.0.1:{info['port']}",
                           "--profile", os.path.abspath(a.profile) if a.profile else "")  # fmt: skip
        try:
            result = asyncio.run(browsers(f"http://127.0.0.1:{binfo['port']}", binfo["links"],
                                          a.seconds, a.warmup, bot.pid, endpoint.pid,
                                          not a.no_deflate, a.seed,
                                          Path(tmp) / "bot-lag.json"))  # fmt: skip
            result["cores"] = os.cpu_count()
            result["echo"] = a.echo
            print(json.dumps(result, indent=2))
        finally:
            for p in (bot, endpoint):
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    main()
