"""``kepler play`` honours the ``KEPLER_VOICE_*`` budgets: the real Anthropic SDK in the
subprocess talks to a Messages API stub on loopback, and a turn over the per-minute budget
gets the scripted crew instead of a request."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.terminal.test_play import OPENING, _env
from tests.voice.conftest import sse

FROM_THE_MODEL = "Torres over the stub relay: a node is one machine of the station."
QUESTIONS = ["What is a node, Commander?", "And what is a pod, Commander?"]


class MessagesStub:
    """POST /v1/messages answered with one streamed message; every request is counted."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        body = sse([FROM_THE_MODEL]).content
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                stub.requests.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MessagesStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[MessagesStub]:
    with MessagesStub() as stub:
        yield stub


def _play_with_voice(tmp: Path, api: MessagesStub, **settings: str) -> str:
    env = _env(tmp)
    env.update(ANTHROPIC_API_KEY="sk-ant-test-0123456789abcdef", ANTHROPIC_BASE_URL=api.url,
               **settings)  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "play", "--kubeconfig", str(tmp / "no-kubeconfig")],
        input="\n".join([*OPENING, *QUESTIONS, "quit"]) + "\n", capture_output=True, text=True,
        timeout=180, cwd=tmp, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_per_minute_budget_sends_the_second_question_to_the_scripted_crew(
    tmp_path: Path, api: MessagesStub
):
    out = _play_with_voice(tmp_path, api, KEPLER_VOICE_PER_MINUTE="1")
    assert api.requests == ["/v1/messages"]  # the second turn never reached the API
    assert out.count(FROM_THE_MODEL) == 1
    assert "one transmission at a time" in out  # the commander says why she is brief
    assert out.index(FROM_THE_MODEL) < out.index("one transmission at a time")


def test_within_the_budget_both_questions_reach_the_model(tmp_path: Path, api: MessagesStub):
    """The control: the same run with the default budget (6 a minute) asks the API twice."""
    out = _play_with_voice(tmp_path, api)
    assert api.requests == ["/v1/messages", "/v1/messages"]
    assert out.count(FROM_THE_MODEL) == 2
    assert "one transmission at a time" not in out
