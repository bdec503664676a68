"""The LLM answering 529 (overloaded) for a whole mission stretch: the crew falls back to
scripted lines and the story goes on. The voice's own fallback per status (429, 529, 500,
503, connection errors, timeouts) is drilled in ``tests/voice/test_claude.py``; this drives
the engine through a question (judged by the voice) and a free-text question to the
commander, then the task, with every API call refused."""

from __future__ import annotations

import respx

from bot.engine.engine import Engine
from bot.engine.ports import Address
from bot.voice import build_voice
from bot.voice.claude import DEFAULT_MODEL
from tests.drills.conftest import to_task
from tests.fakes import RecordingTransport, ScriptedCluster
from tests.voice.conftest import API, api_error, respx_client


async def test_an_overloaded_llm_never_stops_the_mission(store, course) -> None:
    with respx.mock(assert_all_called=False) as api:
        route = api.post(API).mock(return_value=api_error(529))
        voice = build_voice(api_key="sk-test-key", model=DEFAULT_MODEL, store=store,
                            max_retries=0, http_client=respx_client(api))  # fmt: skip
        cluster = ScriptedCluster()
        transport = RecordingTransport()
        engine = Engine(course, store, cluster, voice, transport)
        learner, address = "discord:5", Address("discord", "solo", "5")
        mission = await engine.start(address, learner, "Chen", chapter=2)
        task = await to_task(engine, mission.id, learner)  # answers chapter 2's question
        await engine.say(mission.id, learner, "Commander, why do pods need a Deployment?")
        assert route.call_count >= 1, "the voice was asked"
        assert transport.streamed and all(text.strip() for _, _, text in transport.streamed)

        cluster.passing[learner] = {o.id for o in task.objectives}
        await engine.check(mission.id, learner, explicit=False)
        moved = await store.get_mission(mission.id)
        assert moved is not None and (moved.chapter, moved.beat) > (mission.chapter, 3)
        assert "status" in transport.kinds(address)
