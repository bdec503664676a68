"""Shared pieces for voice tests: fixture personas, a store, turns, and Messages API SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import respx

from bot.content.loader import load_persona
from bot.content.schema import Persona
from bot.engine.ports import VoiceTurn
from bot.store.sqlite import SQLiteStore
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

FIXTURES = Path(__file__).parent / "fixtures"
API = "https://api.anthropic.com/v1/messages"


@pytest.fixture
def personas() -> dict[str, Persona]:
    return {p.id: p for p in map(load_persona, sorted(FIXTURES.glob("*.yaml")))}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "voice.db") as s:
        yield s


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e


def seed_station(emu: KubeEmulator, name: str) -> None:
    """A learner cluster mid-chapter: one crash-looping life-support pod and its events."""
    c = emu.add_cluster(name)
    c.put(ob.namespace("default"), ob.namespace("life-support"),
          ob.node("kepler-control-plane", control_plane=True), ob.node("kepler-worker"))  # fmt: skip
    bad = ob.pod("oxygen-7f9c", "life-support", labels={"app": "oxygen"},
                 waiting="CrashLoopBackOff")  # fmt: skip
    good = ob.pod("scrubber-5d2a", "life-support", labels={"app": "scrubber"})
    c.put(bad, good, ob.event(bad, "BackOff", "Back-off restarting failed container oxygen"))


def turn(**kw: Any) -> VoiceTurn:
    base = VoiceTurn(
        purpose="answer", learner_id="chen", learner_name="Alex Chen", scope="learner:chen",
        persona="torres", text="Why is my oxygen pod failing?", chapter_id="ch02-life-support",
        chapter_title="Life Support Restoration", beat_id="restore-pods",
        beat_text="Restore the life-support pods\nApply the manifests and get every pod Ready.",
        objectives=(("Life support pods running", False, "oxygen-7f9c is in CrashLoopBackOff"),
                    ("Scrubbers online", True, "")),
        profile={"style": "hands-on"}, has_cluster=True, guild="g1",
    )  # fmt: skip
    return replace(base, **kw)


# --- Messages API server-sent events -------------------------------------------------------


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


def sse(
    text_chunks: list[str] = (),  # type: ignore[assignment]
    *,
    tool_calls: list[tuple[str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
    usage: dict[str, int] | None = None,
    output_tokens: int = 42,
) -> httpx.Response:
    """A streamed message as the API sends it: text deltas, then any tool_use blocks."""
    usage = {"input_tokens": 120, "output_tokens": 1, "cache_read_input_tokens": 2400,
             "cache_creation_input_tokens": 0, **(usage or {})}  # fmt: skip
    out = [_event("message_start", {"message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-5-5",
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})]  # fmt: skip
    index = 0
    if text_chunks:
        out.append(
            _event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
        )
        out.append(_event("ping", {}))
        for chunk in text_chunks:
            out.append(
                _event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": chunk}},
                )
            )
        out.append(_event("content_block_stop", {"index": 0}))
        index = 1
    for i, (tool_id, name, args) in enumerate(tool_calls, start=index):
        out.append(_event("content_block_start", {"index": i, "content_block": {
            "type": "tool_use", "id": tool_id, "name": name, "input": {}}}))  # fmt: skip
        raw = json.dumps(args)
        for part in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
            out.append(_event("content_block_delta", {"index": i, "delta": {
                "type": "input_json_delta", "partial_json": part}}))  # fmt: skip
        out.append(_event("content_block_stop", {"index": i}))
    stop = "tool_use" if tool_calls else "end_turn"
    out.append(_event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": {"output_tokens": output_tokens}}))  # fmt: skip
    out.append(_event("message_stop", {}))
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          content="".join(out).encode())  # fmt: skip


def message_json(text: str) -> httpx.Response:
    """A non-streamed message (the summariser's cheap call)."""
    return httpx.Response(200, json={
        "id": "msg_02", "type": "message", "role": "assistant", "model": "claude-haiku-5-5",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 300, "output_tokens": 60}})  # fmt: skip


def api_error(status: int) -> httpx.Response:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return httpx.Response(status, headers={"retry-after-ms": "1"},
                          json={"type": "error", "error": {"type": kind, "message": kind}})  # fmt: skip


async def collect(chunks: AsyncIterator[str]) -> str:
    return "".join([c async for c in chunks])


# --- respx behind the SDK's HTTP client ----------------------------------------------------


def respx_client(router: respx.Router) -> httpx2.AsyncClient:
    """An SDK-compatible client whose transport is a respx router.

    anthropic 2.x sends through ``httpx2`` (a fork of httpx), which respx does not patch. This
    bridge converts each request to an ``httpx.Request``, lets the router match, record and
    answer it (side effects included), and converts the answer back — network exceptions
    become their ``httpx2`` namesakes so the SDK maps them to ``APIConnectionError`` and
    ``APITimeoutError`` as it would in production.
    """

    async def handle(request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        mirrored = httpx.Request(request.method, str(request.url),
                                 headers=list(request.headers.multi_items()), content=body)  # fmt: skip
        try:
            response = await router.async_handler(mirrored)
        except httpx.TransportError as exc:
            raise getattr(httpx2, type(exc).__name__)(str(exc), request=request) from exc
        return httpx2.Response(response.status_code, headers=list(response.headers.multi_items()),
                               content=response.read(), request=request)  # fmt: skip

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
