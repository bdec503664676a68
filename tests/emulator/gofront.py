"""Go's own HTTP/2 server in front of the emulator: Debian's Caddy as a TLS reverse proxy.

kube-apiserver serves HTTP/2 with Go's ``net/http`` HTTP/2 server. Our client's framing is
tested against the emulator's Python server (the ``h2`` library) and a scripted one; neither
is the implementation a learner's cluster runs. Caddy is a Go program built on that same
server code, so a client that works through it has met Go's SETTINGS, flow control, PING,
stream limits and graceful-shutdown GOAWAY as kube-apiserver sends them. Caddy forwards each
request to the emulator's plain HTTP listener and streams watch answers through unbuffered.

Skip where ``caddy`` is missing (CI installs it: ``apt-get install caddy``, see ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from kubernetes import client

from tests.emulator.server import KubeEmulator

CADDY = shutil.which("caddy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GoFront:
    """``caddy run`` serving HTTPS (h1 and h2 by ALPN) on a port of its own, proxying to
    ``emu``'s plain listener. ``grace`` is how long a stop lets open streams finish after
    Go's server has sent GOAWAY (Caddy's ``grace_period``)."""

    def __init__(self, emu: KubeEmulator, grace: float = 3.0) -> None:
        if CADDY is None:
            raise RuntimeError("caddy is not installed")
        self.emu = emu
        self.grace = grace
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="kepler-gofront-")
        self._proc: subprocess.Popen[bytes] | None = None
        emu.url(tls=True)  # makes the emulator's certificate, which Caddy serves too
        assert emu.ca_path is not None
        key = emu.ca_path.with_name("emulator.key")
        self._config = Path(self._dir.name) / "Caddyfile"
        self._config.write_text(
            "{\n"
            "\tadmin off\n"
            "\tauto_https disable_redirects\n"
            f"\tgrace_period {int(grace * 1000)}ms\n"
            "\tservers {\n\t\tprotocols h1 h2\n\t}\n"
            "}\n"
            f"https://127.0.0.1:{self.port} {{\n"
            f"\ttls {emu.ca_path} {key}\n"
            f"\treverse_proxy 127.0.0.1:{emu.port} {{\n"
            "\t\tflush_interval -1\n"  # stream watch events as they come
            "\t}\n"
            "}\n")

    def start(self, timeout: float = 15.0) -> GoFront:
        home = self._dir.name
        env = {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
        log = open(Path(home) / "caddy.log", "ab")  # noqa: SIM115 - the process keeps it
        self._proc = subprocess.Popen(
            [str(CADDY), "run", "--config", str(self._config), "--adapter", "caddyfile"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"caddy exited: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"caddy did not listen within {timeout:g} s: {self.log()[-2000:]}")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM: Go's server sends GOAWAY, lets streams run for ``grace``, then exits."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def stop(self) -> None:
        """:meth:`terminate`, and wait for the exit."""
        if self._proc is not None:
            self.terminate()
            try:
                self._proc.wait(self.grace + 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> GoFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self) -> str:
        path = Path(self._dir.name) / "caddy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def configuration(self, name: str) -> client.Configuration:
        """The emulator's configuration for cluster ``name``, pointed at Go's server."""
        cfg = self.emu.configuration(name, tls=True)
        cfg.host = f"https://127.0.0.1:{self.port}/clusters/{name}"
        return cfg
