"""How much of the voice's input comes from the prompt cache, per turn and over a session.

A session of real requests: :class:`bot.voice.claude.ClaudeVoice` (the real Anthropic SDK,
real personas, chapters, memory on a SQLite store) plays a learner through every chapter —
the Think First answer judged, then questions on the task — against a local stub of the
Messages API on 127.0.0.1 that answers as the API does (streamed events, ``usage``) and
computes cache hits the way Anthropic documents prompt caching:

* the prefix is tools → system → messages, block by block; ``cache_control`` marks a
  breakpoint (at most 4); a prefix shorter than the model's minimum (1,024 tokens for
  Sonnet-class models) is never cached;
* a request reads the longest previously written prefix that ends at one of its breakpoints
  or at any of the 20 blocks before one; it writes the prefix at each breakpoint;
* entries live 5 minutes, refreshed when read (the session's clock is simulated:
  ``--gap`` seconds between turns);
* tokens are estimated as characters / 4.

    uv run python bench/voice_cache_share.py [--gap 60] [--questions 3]

Prints each turn's share of input tokens read from the cache, each chapter's, the first
request of each chapter's, and the session's. The summariser's small uncached calls (another
model) are counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.content.course import load_course
from bot.content.schema import QuestionBeat, TaskBeat
from bot.engine.ports import VoiceTurn
from bot.store.sqlite import SQLiteStore
from bot.voice import BudgetLimits, build_voice, load_personas
from bot.voice.models import DEFAULT_MODEL

MINIMUM_CACHEABLE = 1024  # tokens, Sonnet-class models
LOOKBACK = 20  # blocks before a breakpoint checked for a hit
TTL = 300.0  # seconds

QUESTIONS = [
    "I applied it but nothing seems to change. What am I missing?",
    "What does the READY column tell me here, exactly?",
    "Should I describe the pod or look at the events first?",
    "Is it fine that one of them restarted twice?",
    "How do I know the service is actually sending traffic to it?",
]
ANSWERS = ["I think it's because the control plane schedules work onto healthy nodes only.",
           "Probably two, one for each section that still has power."]  # fmt: skip


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@dataclass
class CacheModel:
    """Prefix caching as documented, over a simulated clock."""

    now: float = 0.0
    entries: dict[str, float] = field(default_factory=dict)  # prefix hash -> expiry

    @staticmethod
    def blocks(request: dict[str, Any]) -> list[tuple[str, int, bool]]:
        """(canonical block, tokens, is a breakpoint) in the API's prefix order."""

        def canon(block: dict[str, Any], where: str) -> tuple[str, int, bool]:
            plain = {k: v for k, v in block.items() if k != "cache_control"}
            text = json.dumps(plain, sort_keys=True)
            size = tokens(plain["text"]) if isinstance(plain.get("text"), str) else tokens(text)
            return f"{where}:{text}", size, "cache_control" in block

        out = [canon(t, "tool") for t in request.get("tools") or []]
        system = request.get("system") or []
        if isinstance(system, str):
            system = [{"type": "text", "text": system}]
        out += [canon(b, "system") for b in system]
        for m in request.get("messages") or []:
            content = m["content"]
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            out += [canon(b, m["role"]) for b in content]
        return out

    def usage(self, request: dict[str, Any]) -> dict[str, int]:
        blocks = self.blocks(request)
        hashes, sizes = [], []
        h, total = hashlib.sha256(), 0
        for text, size, _bp in blocks:
            h.update(text.encode())
            hashes.append(h.copy().hexdigest())
            total += size
            sizes.append(total)
        marks = [i for i, (_t, _s, bp) in enumerate(blocks) if bp][:4]
        live = {k for k, expiry in self.entries.items() if expiry > self.now}
        read = 0
        for b in marks:
            for j in range(b, max(-1, b - LOOKBACK - 1), -1):
                if hashes[j] in live and sizes[j] >= MINIMUM_CACHEABLE:
                    if sizes[j] > read:
                        read = sizes[j]
                        self.entries[hashes[j]] = self.now + TTL  # refreshed
                    break
        written = 0
        for b in marks:
            if sizes[b] >= MINIMUM_CACHEABLE:
                self.entries[hashes[b]] = self.now + TTL
                written = max(written, sizes[b])
        creation = max(0, written - read)
        return {"input_tokens": total - read - creation, "cache_read_input_tokens": read,
                "cache_creation_input_tokens": creation}  # fmt: skip


@dataclass
class Stub:
    """The Messages API on 127.0.0.1: streamed replies, usage from :class:`CacheModel`."""

    model: CacheModel = field(default_factory=CacheModel)
    log: list[dict[str, Any]] = field(default_factory=list)  # (model, usage) per request
    turn: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: dict[str, Any]) -> tuple[dict[str, int], str]:
        with self.lock:
            usage = self.model.usage(request)
            self.turn += 1
            n = self.turn
            self.log.append({"model": request["model"], **usage})
        if request["model"] != DEFAULT_MODEL:  # the summariser
            return usage, "- The learner worked through the task with the crew."
        text = (f"Stay with me on this one. Look at what the display tells you, line {n}: the "
                "READY column counts containers that passed their checks, out of those "
                "declared. If a unit shows 0/1, describe it with `kubectl describe pod` and "
                "read the Events at the bottom; the first warning there is usually the cause. "
                "Compare it with what the task asks, then run `check` when you think it "
                "holds. Tell me what you find and we will take the next step together.")
        return usage, text

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                usage, text = stub.answer(body)
                msg = {"id": f"msg_{stub.turn}", "type": "message", "role": "assistant",
                       "model": body["model"], "content": [], "stop_reason": None,
                       "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}  # fmt: skip
                if not body.get("stream"):
                    msg.update(content=[{"type": "text", "text": text}], stop_reason="end_turn",
                               usage={**usage, "output_tokens": tokens(text)})  # fmt: skip
                    data, kind = json.dumps(msg).encode(), "application/json"
                else:
                    events = [("message_start", {"message": msg}),
                              ("content_block_start", {"index": 0, "content_block": {
                                  "type": "text", "text": ""}})]  # fmt: skip
                    words = text.split(" ")
                    for i in range(0, len(words), 8):
                        events.append(("content_block_delta", {"index": 0, "delta": {
                            "type": "text_delta", "text": " ".join(words[i:i + 8])
                            + (" " if i + 8 < len(words) else "")}}))  # fmt: skip
                    events += [("content_block_stop", {"index": 0}),
                               ("message_delta", {"delta": {"stop_reason": "end_turn",
                                                            "stop_sequence": None},
                                                  "usage": {"output_tokens": tokens(text)}}),
                               ("message_stop", {})]  # fmt: skip
                    data = "".join(f"event: {k}\ndata: {json.dumps({'type': k, **v})}\n\n"
                                   for k, v in events).encode()  # fmt: skip
                    kind = "text/event-stream"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class Turn:
    chapter: int
    purpose: str
    input: int
    read: int
    creation: int

    @property
    def total(self) -> int:
        return self.input + self.read + self.creation

    @property
    def share(self) -> float:
        return self.read / self.total if self.total else 0.0


async def session(gap: float = 60.0, questions: int = 3) -> tuple[list[Turn], list[dict]]:
    """Every chapter: the Think First answer judged, then ``questions`` on the task, each
    stored in the transcript the way the engine does; ``gap`` simulated seconds apart."""
    stub = Stub()
    server, url = stub.serve()
    course = load_course()
    personas = load_personas()
    turns: list[Turn] = []
    try:
        with tempfile.TemporaryDirectory(prefix="kepler-voice-") as tmp:
            async with SQLiteStore(Path(tmp) / "voice.db") as store:
                voice = build_voice(api_key="sk-bench", model=DEFAULT_MODEL, store=store,
                                    cluster_provider=lambda learner_id: None,
                                    personas=personas, base_url=url, max_retries=0,
                                    # the session runs in seconds: no rate limit here
                                    limits=BudgetLimits(learner_daily_tokens=10**9,
                                                        guild_daily_tokens=10**9,
                                                        requests_per_minute=10**6))  # fmt: skip
                profile = {"style": "hands-on", "review": "every-change",
                           "feedback": "immediate", "environment": "kind"}  # fmt: skip
                asked = 0
                for chapter in course.chapters:
                    common = dict(learner_id="chen", learner_name="Alex Chen",
                                  scope="learner:chen", persona="torres",
                                  chapter_id=chapter.id, chapter_title=chapter.title,
                                  profile=profile, has_cluster=False, guild="g1")  # fmt: skip
                    plan: list[VoiceTurn] = []
                    for beat in chapter.beats:
                        if isinstance(beat, QuestionBeat) and beat.profile is None:
                            plan.append(VoiceTurn(
                                purpose="judge", text=ANSWERS[len(plan) % 2], beat_id=beat.id,
                                beat_text=" ".join(line.text for line in beat.lines),
                                intent=beat.intent, fact="live cluster: 3 ready nodes",
                                **common))  # type: ignore[arg-type]  # fmt: skip
                        elif isinstance(beat, TaskBeat):
                            for q in range(questions):
                                objectives = [(o.title, i < q, "" if i < q else "not yet")
                                              for i, o in enumerate(beat.objectives)]  # fmt: skip
                                plan.append(VoiceTurn(
                                    purpose="answer", text=QUESTIONS[asked % len(QUESTIONS)],
                                    beat_id=beat.id,
                                    beat_text=f"{beat.title}\n{beat.instructions}",
                                    objectives=objectives, **common))  # type: ignore[arg-type]  # fmt: skip
                                asked += 1
                    for vt in plan:
                        stub.model.now += gap
                        if vt.purpose == "answer":  # the engine stores it first (_converse)
                            await store.add_transcript(vt.scope, "learner", "chen", vt.text)
                        before = len(stub.log)
                        reply = "".join([c async for c in voice.reply(vt)])
                        if vt.purpose == "judge":
                            await store.add_transcript(vt.scope, "learner", "chen", vt.text)
                        await store.add_transcript(vt.scope, "crew", "torres", reply)
                        for u in stub.log[before:]:
                            if u["model"] == DEFAULT_MODEL:
                                turns.append(Turn(chapter.number, vt.purpose, u["input_tokens"],
                                                  u["cache_read_input_tokens"],
                                                  u["cache_creation_input_tokens"]))  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    return turns, [u for u in stub.log if u["model"] != DEFAULT_MODEL]


def share(turns: list[Turn]) -> float:
    total = sum(t.total for t in turns)
    return sum(t.read for t in turns) / total if total else 0.0


def report(turns: list[Turn], summaries: list[dict]) -> dict[str, Any]:
    chapters = sorted({t.chapter for t in turns})
    firsts = [next(t for t in turns if t.chapter == c) for c in chapters]
    return {
        "session_share": share(turns),
        "chapter_share": {c: share([t for t in turns if t.chapter == c]) for c in chapters},
        "first_request_of_chapter_share": {t.chapter: t.share for t in firsts},
        "requests": len(turns),
        "summary_calls": len(summaries),
        "turns": [t.__dict__ | {"share": t.share} for t in turns],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gap", type=float, default=60.0, help="simulated seconds between turns")
    p.add_argument("--questions", type=int, default=3, help="questions asked on each task")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    turns, summaries = asyncio.run(session(args.gap, args.questions))
    out = report(turns, summaries)
    print("chapter purpose  input  cache-read  cache-write  share")
    for t in turns:
        print(f"{t.chapter:>7} {t.purpose:<7} {t.input:>6} {t.read:>11} {t.creation:>12}  "
              f"{t.share:.0%}")  # fmt: skip
    for c, s in out["chapter_share"].items():
        first = out["first_request_of_chapter_share"][c]
        print(f"chapter {c}: {s:.0%} of input tokens from the cache (first request {first:.0%})")
    print(f"session: {out['session_share']:.1%} of input tokens from the cache over "
          f"{out['requests']} requests ({out['summary_calls']} summariser calls apart)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
