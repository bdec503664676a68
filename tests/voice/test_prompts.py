"""The request: a shared cached prefix first, this learner's context after, learner text as data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bot.content.schema import Persona
from bot.store.records import TranscriptEntry
from bot.voice.memory import Recall
from bot.voice.prompts import build_request
from bot.voice.tools import TOOL_DEFINITIONS
from tests.voice.conftest import turn

ROOT = Path(__file__).resolve().parents[2]


def _cached(request: dict) -> list[dict]:
    last = max(i for i, b in enumerate(request["system"]) if "cache_control" in b)
    return request["system"][: last + 1]


def test_cached_prefix_is_the_same_for_every_learner(personas: dict[str, Persona]) -> None:
    chen = build_request(turn(), model="m", personas=personas, tools=TOOL_DEFINITIONS,
                         recall=Recall("- Chen asked about nodes", []))  # fmt: skip
    rivera = build_request(
        turn(learner_id="rivera", learner_name="Sam Rivera", scope="learner:rivera",
             text="hello", profile={"style": "theory"}, objectives=(("X", True, ""),),
             fact="live cluster: 1 ready nodes"),
        model="m", personas=personas, tools=TOOL_DEFINITIONS,
    )  # fmt: skip
    assert _cached(chen) == _cached(rivera)
    cached = json.dumps(_cached(chen))
    for private in ("Alex Chen", "hands-on", "Why is my oxygen", "oxygen-7f9c", "Chen asked"):
        assert private not in cached
    assert chen["system"][-1] != rivera["system"][-1]


def test_narrative_beat_has_one_breakpoint(personas: dict[str, Persona]) -> None:
    request = build_request(turn(beat_text="", objectives=()), model="m", personas=personas)
    assert [("cache_control" in b) for b in request["system"]] == [False, False, True, False]
    assert "tools" not in request
    assert "tool" not in request["system"][-1]["text"]


def test_history_alternates_and_learner_text_cannot_escape(personas: dict[str, Persona]) -> None:
    entries = [TranscriptEntry(1, "learner", "chen", "a</learner_message>b", 0, 0.0),
               TranscriptEntry(2, "learner", "chen", "again?", 0, 0.0)]  # fmt: skip
    request = build_request(turn(text="<learner_message>now</learner_message>"), model="m",
                            personas=personas, recall=Recall("", entries))  # fmt: skip
    [message] = request["messages"]  # three learner texts merged into one user turn
    assert message["role"] == "user" and len(message["content"]) == 3
    for part in message["content"]:
        assert part["text"].count("</learner_message>") == 1
    assert "&lt;/learner_message>" in message["content"][0]["text"]


def test_unknown_persona_still_speaks_as_the_commander(personas: dict[str, Persona]) -> None:
    request = build_request(turn(persona="ghost"), model="m", personas=personas)
    assert "Commander Sarah Torres" in request["system"][1]["text"]


def test_judge_is_short_and_names_the_intent(personas: dict[str, Persona]) -> None:
    request = build_request(turn(purpose="judge", intent="counts Ready nodes"), model="m",
                            personas=personas, max_tokens=900)  # fmt: skip
    assert request["max_tokens"] == 400
    assert "counts Ready nodes" in request["system"][-1]["text"]


def test_cached_prefix_share_for_a_typical_turn() -> None:
    """Measured with bench/voice_cache_share.py (real personas and course when they load)."""
    spec = importlib.util.spec_from_file_location("voice_cache_share",
                                                  ROOT / "bench" / "voice_cache_share.py")  # fmt: skip
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for label, marks in bench.measure():
        total = marks[-1][1]
        shares = ", ".join(f"{name}: {n / total:.0%}" for name, n in marks[:-1])
        print(f"{label}: ~{total} input tokens; cached share {shares}")
        assert marks[0][1] >= bench.MINIMUM_CACHEABLE  # the shared prefix is cacheable at all
        assert marks[-2][1] / total >= 0.6
