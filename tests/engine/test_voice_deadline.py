"""Voice and answers: a question back at Think First is answered, not judged; every learner
turn gets a visible reply by the deadline whatever the voice does; the answer is kept.

The deadline is the engine's ``reply_within`` (15 s in production), set short here: a voice
that never speaks is what triggers it, so no assertion depends on how long anything took.
The last tests run the real Anthropic SDK over respx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from bot.engine.engine import Engine, is_question
from bot.engine.ports import Address, VoiceTurn
from bot.voice import ClaudeVoice, build_voice
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster, fixture_course
from tests.voice.conftest import API, respx_client, sse

DM = Address("terminal", "solo", "alex")


class SilentVoice:
    """A voice whose API never answers (or stops answering after ``say``)."""

    def __init__(self, say: str = "") -> None:
        self.say = say
        self.turns: list[VoiceTurn] = []
        self.closed = False

    async def reply(self, turn: VoiceTurn) -> AsyncIterator[str]:
        self.turns.append(turn)
        try:
            if self.say:
                yield self.say
            await asyncio.Event().wait()
            yield "never"
        finally:
            self.closed = True


async def _at_question(engine: Engine) -> int:
    mission = await engine.start(DM, "alex", "Alex Chen")
    await engine.say(mission.id, "alex", "1")
    await engine.say(mission.id, "alex", "1")
    await engine.continue_(mission.id, "alex")  # '"How many nodes are Ready?"'
    return mission.id


def _engine(store, voice: Any, transport: RecordingTransport, **kw: Any) -> Engine:
    return Engine(fixture_course(), store, ScriptedCluster(), voice, transport, **kw)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("What does Ready mean here?", True),
        ("why would a node not be ready?", True),
        ("Is it three?", True),
        ("Three?", False),
        ("Two Ready nodes?", False),
        ("Three of them are Ready", False),
        ("I think three. Why do you ask", False),
        # questions that do not open with a question word are still questions
        ("Ready means the kubelet says it is healthy?", True),
        ("Sorry, I don't follow the part about Ready?", True),
        ("So a node counts once its kubelet reports in?", True),
        ("What?", True),
        ("?", True),
    ],
)
def test_what_counts_as_a_question(text: str, question: bool):
    assert is_question(text) is question


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Hands-on?", False),  # an offered choice, said with a rising voice
        ("2?", False),
        ("theory first?", False),
        ("What does hands-on mean for the next hour?", True),
        ("Can I switch later?", True),
        ("Hands-on means I type the commands myself?", True),
    ],
)
def test_a_pick_of_an_offered_choice_is_an_answer(text: str, question: bool):
    style = fixture_course().chapters[0].beats[1]
    assert style.choices and is_question(text, style.choices) is question


async def test_a_question_at_think_first_is_answered_and_not_judged(store):
    voice, transport = CannedVoice(), RecordingTransport()
    engine = _engine(store, voice, transport)
    mission_id = await _at_question(engine)
    await engine.say(mission_id, "alex", "What does Ready mean for a node?")
    assert voice.turns[-1].purpose == "answer"
    assert "How many nodes are Ready?" in voice.turns[-1].beat_text
    still = await store.get_mission(mission_id)
    assert "alex" not in await store.answered(mission_id, f"{still.chapter}.{still.beat}")
    await engine.say(mission_id, "alex", "Three of them")
    assert voice.turns[-1].purpose == "judge"
    moved = await store.get_mission(mission_id)
    assert (moved.chapter, moved.beat) != (still.chapter, still.beat)


async def test_a_question_without_a_question_word_is_answered_and_a_hesitant_answer_judged(store):
    voice, transport = CannedVoice(), RecordingTransport()
    engine = _engine(store, voice, transport)
    mission_id = await _at_question(engine)
    still = await store.get_mission(mission_id)
    await engine.say(mission_id, "alex", "Ready means the kubelet reports the node healthy?")
    assert voice.turns[-1].purpose == "answer"
    assert (await store.get_mission(mission_id)).beat == still.beat
    await engine.say(mission_id, "alex", "Three?")
    assert voice.turns[-1].purpose == "judge" and voice.turns[-1].text == "Three?"
    assert (await store.get_mission(mission_id)).beat != still.beat


async def test_a_question_at_a_choice_is_answered_and_the_choice_stays_open(store):
    voice, transport = CannedVoice(), RecordingTransport()
    engine = _engine(store, voice, transport)
    mission = await engine.start(DM, "alex", "Alex Chen")
    at = (await store.get_mission(mission.id)).beat
    # Its keyword ("hands") would pick a choice; as a question it is answered instead.
    await engine.say(mission.id, "alex", "What do hands-on missions look like?")
    assert voice.turns[-1].purpose == "answer"
    assert (await store.get_mission(mission.id)).beat == at
    assert "style" not in (await store.get_learner("alex")).profile
    await engine.say(mission.id, "alex", "Hands-on?")
    assert (await store.get_learner("alex")).profile["style"] == "hands-on"
    assert (await store.get_mission(mission.id)).beat != at


async def test_a_silent_voice_gets_the_scripted_line_in_time(store, caplog):
    silent, transport = SilentVoice(), RecordingTransport()
    engine = _engine(store, silent, transport, fallback=CannedVoice("Static on comms, Chen."),
                     reply_within=0.05)  # fmt: skip
    mission_id = await _at_question(engine)
    with caplog.at_level(logging.WARNING, logger="bot.engine.engine"):
        await engine.say(mission_id, "alex", "What does Ready mean for a node?")
    assert transport.streamed[-1][2].strip() == "Static on comms, Chen."
    assert silent.closed  # the stalled request was abandoned, not left running
    assert "no reply within" in caplog.text and "Traceback" not in caplog.text


async def test_a_stall_mid_reply_cuts_it_and_says_so(store):
    transport = RecordingTransport()
    engine = _engine(store, SilentVoice(say="Ready means the kubelet "), transport,
                     reply_within=0.05)  # fmt: skip
    mission_id = await _at_question(engine)
    await engine.say(mission_id, "alex", "What does Ready mean for a node?")
    assert transport.streamed[-1][2] == "Ready means the kubelet  …"


async def test_a_judge_timeout_keeps_the_answer_and_judges_by_the_script(store):
    transport = RecordingTransport()
    engine = _engine(store, SilentVoice(), transport, fallback=CannedVoice("Noted, Chen."),
                     reply_within=0.05)  # fmt: skip
    mission_id = await _at_question(engine)
    before = await store.get_mission(mission_id)
    await engine.say(mission_id, "alex", "Three are Ready")
    key = f"{before.chapter}.{before.beat}"
    assert (await store.answered(mission_id, key)) == {"alex": "Three are Ready"}
    assert "Noted, Chen." in [t.strip() for t in transport.texts()]
    after = await store.get_mission(mission_id)
    assert (after.chapter, after.beat) != (before.chapter, before.beat)  # the story went on


# --- the real SDK over respx ---------------------------------------------------------------


def _claude(api: respx.Router, store, personas=None) -> ClaudeVoice:  # type: ignore[no-untyped-def]
    voice = build_voice(api_key="sk-test-key", store=store, http_client=respx_client(api),
                        max_retries=0, personas=personas)  # fmt: skip
    assert isinstance(voice, ClaudeVoice)
    return voice


async def test_a_stalled_api_gets_a_scripted_reply_by_the_deadline(store, caplog):
    api = respx.Router(assert_all_called=False)

    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # the API accepted the request and went quiet
        raise AssertionError("unreachable")

    api.post(API).mock(side_effect=stall)
    voice = _claude(api, store)
    transport = RecordingTransport()
    engine = _engine(store, voice, transport, fallback=voice.scripted, reply_within=0.2)
    mission_id = await _at_question(engine)
    with caplog.at_level(logging.WARNING):
        await engine.say(mission_id, "alex", "Why is one node not Ready?")
    reply = transport.streamed[-1][2].strip()
    # the scripted crew answers from the turn: the question that is still open
    assert reply.startswith("Fair question, Chen.") and "the question stands:" in reply
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b"event: message_start\ndata: {not json at all\n\n",
        b"data: [DONE]\n\nevent: content_block_delta\ndata: 42\n\n",
    ],
)
async def test_malformed_sse_logs_one_line_and_falls_back(store, caplog, body: bytes):
    api = respx.Router(assert_all_called=False)
    api.post(API).mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body))  # fmt: skip
    voice = _claude(api, store)
    transport = RecordingTransport()
    engine = _engine(store, voice, transport, fallback=voice.scripted)
    mission_id = await _at_question(engine)
    with caplog.at_level(logging.WARNING):
        await engine.say(mission_id, "alex", "Why is one node not Ready?")
    assert transport.streamed[-1][2].strip()  # the learner got a line
    voice_records = [r for r in caplog.records if r.name.startswith("bot.")]
    assert len(voice_records) == 1 and voice_records[0].exc_info is None
    assert "\n" not in voice_records[0].getMessage()


async def test_a_good_stream_is_untouched(store):
    api = respx.Router(assert_all_called=False)
    api.post(API).mock(return_value=sse(["Ready means ", "the kubelet reports healthy."]))
    voice = _claude(api, store)
    transport = RecordingTransport()
    engine = _engine(store, voice, transport, fallback=voice.scripted)
    mission_id = await _at_question(engine)
    await engine.say(mission_id, "alex", "What does Ready mean?")
    assert transport.streamed[-1][2].strip() == "Ready means the kubelet reports healthy."
