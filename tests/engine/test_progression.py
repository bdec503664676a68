"""Engine progression over the fixture course: order, gates, latching, profile-shaped feedback."""

from __future__ import annotations

import pytest

from bot.engine.engine import Engine, InputError
from bot.engine.ports import Address
from tests.fakes import RecordingTransport, ScriptedCluster

DM = Address("terminal", "solo", "alex")


async def _through_opening(engine: Engine, style: str = "1", feedback: str = "1") -> int:
    mission = await engine.start(DM, "alex", "Alex Chen")
    await engine.say(mission.id, "alex", style)
    await engine.say(mission.id, "alex", feedback)
    return mission.id


async def test_opening_plays_to_the_first_question(engine: Engine, transport: RecordingTransport):
    await engine.start(DM, "alex", "Alex Chen")
    assert transport.texts() == [
        "Klaxons sound.",
        '"Chen, listen carefully."',
        '"Theory first, or hands-on?"',
    ]
    assert transport.kinds()[-1] == "question"
    assert transport.delivered[-1][1].data["choices"][1]["value"] == "hands-on"


async def test_profile_answers_are_stored_and_bad_choice_is_rejected(engine: Engine, store):
    mission = await engine.start(DM, "alex", "Alex Chen")
    with pytest.raises(InputError, match="Pick one"):
        await engine.say(mission.id, "alex", "no idea")
    await engine.say(mission.id, "alex", "I like to get my hands dirty")
    await engine.say(mission.id, "alex", "let me discover them myself")
    learner = await store.get_learner("alex")
    assert learner.profile == {"style": "hands-on", "feedback": "discover"}


async def test_pause_waits_for_continue(engine: Engine, transport: RecordingTransport):
    mission_id = await _through_opening(engine)
    assert transport.texts()[-2:] == ["The hub hums.", '"Three nodes left."']
    before = len(transport.delivered)
    await engine.check(mission_id, "alex")  # nothing to check yet: a notice, no story
    assert len(transport.delivered) == before
    await engine.continue_(mission_id, "alex")
    assert transport.texts()[-1] == '"How many nodes are Ready?"'


async def test_task_gates_until_all_objectives_hold_and_latches(
    engine: Engine, transport: RecordingTransport, cluster: ScriptedCluster, store
):
    mission_id = await _through_opening(engine)
    await engine.continue_(mission_id, "alex")
    await engine.say(mission_id, "alex", "Three, I think")
    assert transport.kinds()[-2:] == ["reply", "task"]
    task = transport.delivered[-1][1]
    assert task.attachments == ("chapters/01-first/manifests/pod.yaml",)

    cluster.passing["alex"] = {"pod-running"}
    replies = await engine.check(mission_id, "alex")
    assert "❌ No failing pods — A pod is failing." in replies[0].text
    assert transport.kinds()[-1] == "task"  # still waiting

    cluster.passing["alex"] = {"pod-running", "no-failures"}
    await engine.check(mission_id, "alex")
    texts = transport.texts()
    assert texts.index('"Good work."') < texts.index("- **Pod creation**: Did it deploy? ✅")
    assert '"Good work."' in texts and '"On to the next."' in texts
    assert texts[-1] == '"You\'ve earned your place."'
    mission = await store.get_mission(mission_id)
    assert mission.state == "done"

    # Latched: the cluster breaking later changes nothing already passed.
    cluster.passing["alex"] = set()
    assert (await store.passed(["alex"], "ch01-first/deploy")) == {"alex"}


async def test_discover_learner_sees_reasons_only_with_a_hint(
    engine: Engine, cluster: ScriptedCluster
):
    mission_id = await _through_opening(engine, feedback="2")
    await engine.continue_(mission_id, "alex")
    await engine.say(mission_id, "alex", "3")
    cluster.passing["alex"] = {"pod-running"}
    [status] = await engine.check(mission_id, "alex")
    assert "A pod is failing" not in status.text
    assert "⬜ No failing pods" in status.text
    [hint] = await engine.hint(mission_id, "alex")
    assert "A pod is failing" in hint.text and "Look at pods." in hint.text
    [hint2] = await engine.hint(mission_id, "alex")
    assert "Look at waiting reasons." in hint2.text
    await engine.hint(mission_id, "alex")
    [hint4] = await engine.hint(mission_id, "alex")
    assert hint4.data["tier"] == 3


async def test_immediate_learner_sees_reasons_at_once(engine: Engine, cluster: ScriptedCluster):
    mission_id = await _through_opening(engine, feedback="1")
    await engine.continue_(mission_id, "alex")
    await engine.say(mission_id, "alex", "3")
    [status] = await engine.check(mission_id, "alex")
    assert "The backup pod is not running." in status.text


async def test_hands_on_learner_meets_think_first_after_the_task(
    engine: Engine, transport: RecordingTransport, cluster: ScriptedCluster
):
    mission_id = await _through_opening(engine, style="2")
    await engine.continue_(mission_id, "alex")
    assert transport.kinds()[-1] == "task"
    cluster.passing["alex"] = {"pod-running", "no-failures"}
    await engine.check(mission_id, "alex")
    assert transport.texts()[-1] == '"How many nodes are Ready?"'
    await engine.say(mission_id, "alex", "3")
    assert '"Good work."' in transport.texts()


async def test_think_first_fact_is_compared_with_live_state(engine: Engine, voice):
    mission_id = await _through_opening(engine)
    await engine.continue_(mission_id, "alex")
    await engine.say(mission_id, "alex", "I count 2 nodes")
    turn = voice.turns[-1]
    assert turn.purpose == "judge"
    assert turn.fact == "live cluster: 3 ready nodes (the learner said 2)"


async def test_free_text_during_a_task_goes_to_the_voice(
    engine: Engine, transport: RecordingTransport, store
):
    mission_id = await _through_opening(engine)
    await engine.continue_(mission_id, "alex")
    await engine.say(mission_id, "alex", "3")
    await engine.say(mission_id, "alex", "what is a pod?")
    assert transport.streamed[-1][2].strip() == "Noted, Chen."
    entries = await store.transcript("learner:alex")
    assert [e.role for e in entries][-2:] == ["learner", "crew"]


async def test_unreachable_cluster_is_reported_not_fatal(engine: Engine, cluster: ScriptedCluster):
    mission_id = await _through_opening(engine)
    await engine.continue_(mission_id, "alex")
    await engine.say(mission_id, "alex", "3")
    cluster.unreachable.add("alex")
    [status] = await engine.check(mission_id, "alex")
    assert "did not answer" in status.text


async def test_too_long_input_gets_a_clear_message(engine: Engine):
    mission = await engine.start(DM, "alex", "Alex Chen")
    with pytest.raises(InputError, match="4001 characters"):
        await engine.say(mission.id, "alex", "x" * 4001)
    # exactly at the limit is fine (it is the answer to a choice question, so it is re-asked)
    with pytest.raises(InputError, match="Pick one"):
        await engine.say(mission.id, "alex", "y" * 4000)


async def test_start_at_chapter_offers_catch_up(
    engine: Engine, transport: RecordingTransport, cluster: ScriptedCluster
):
    mission = await engine.start(DM, "alex", "Alex Chen", chapter=99)
    assert "catch-up" in transport.texts()[0]
    [notice] = await engine.catch_up(mission.id, "alex")
    assert cluster.applied[0][1][0].name == "pod.yaml"
    assert notice.text == "applied 1 files"
