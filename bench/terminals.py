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

Reported: the bot's CPU share of one core over the typing window, and the keystroke echo
latency (key sent by the client → its echo back at the client) p50/p95/p99/max. Every
connection's echoes are matched to its keys in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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


async def run_bot(n: int, endpoint: str, db: Path) -> None:
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
        web = TerminalWeb(LinkSigner(SECRET), CatWorkbenches(store, {"": cfg}),
                          base_url="http://127.0.0.1")  # fmt: skip
        server = await HealthServer(HealthRegistry(), host="127.0.0.1", port=0,
                                    mounts=[web.mount]).start()  # fmt: skip
        links = [await web.link_for(f"bench:{i}") for i in range(n)]
        print(json.dumps({"port": server.port, "links": links}), flush=True)
        await asyncio.Event().wait()


# --- the browsers ----------------------------------------------------------------------------


class Terminal:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: list[tuple[str, float]] = []  # (key, sent at) awaiting their echo
        self.latencies: list[float] = []
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
                await asyncio.sleep(0.03)
            await self.ws.send_bytes(b"\r")  # echoed as "\r\n"; not a measured key
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - began)))


async def browsers(base: str, links: list[str], seconds: float, warmup: float,
                   bot_pid: int, endpoint_pid: int) -> dict[str, Any]:  # fmt: skip
    import aiohttp

    terms: list[Terminal] = []
    sessions = []
    for link in links:
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(s)
        path = link.removeprefix("http://127.0.0.1")
        async with s.get(base + path, allow_redirects=False) as r:
            assert r.status == 303, r.status
        terms.append(Terminal(await s.ws_connect(base + "/terminal/ws")))
    readers = [asyncio.create_task(t.reader()) for t in terms]
    rng = random.Random(17)
    stop = time.perf_counter() + warmup + seconds
    typists = [asyncio.create_task(t.typist(stop, random.Random(rng.random()))) for t in terms]
    await asyncio.sleep(warmup)
    for t in terms:
        t.measuring = True
    cpu0, wall0 = cpu_seconds(bot_pid), time.perf_counter()
    end0, own0 = cpu_seconds(endpoint_pid), time.process_time()
    load0 = os.getloadavg()[0]
    await asyncio.gather(*typists)
    cpu1, wall1 = cpu_seconds(bot_pid), time.perf_counter()
    end1, own1 = cpu_seconds(endpoint_pid), time.process_time()
    await asyncio.sleep(0.5)
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
    ap.add_argument("--role", choices=["endpoint", "bot"], help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role == "endpoint":
        asyncio.run(run_endpoint(a.terminals, Path(a.dir), a.echo))
        return
    if a.role == "bot":
        asyncio.run(run_bot(a.terminals, a.endpoint, Path(a.dir) / "bench.db"))
        return
    with tempfile.TemporaryDirectory(prefix="kepler-terminals-") as tmp:
        endpoint, info = spawn("--role", "endpoint", "--terminals", str(a.terminals), "--dir", tmp,
                               "--echo", a.echo)  # fmt: skip
        bot, binfo = spawn("--role", "bot", "--terminals", str(a.terminals), "--dir", tmp,
                           "--endpoint", f"http://127.0.0.1:{info['port']}")  # fmt: skip
        try:
            result = asyncio.run(browsers(f"http://127.0.0.1:{binfo['port']}", binfo["links"],
                                          a.seconds, a.warmup, bot.pid, endpoint.pid))  # fmt: skip
            result["cores"] = os.cpu_count()
            result["echo"] = a.echo
            print(json.dumps(result, indent=2))
        finally:
            for p in (bot, endpoint):
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    main()
