"""Crews in a shared channel: together, quorum, idle members, self-paced threads, the board."""

from __future__ import annotations

from bot.engine.engine import Engine
from bot.engine.ports import Address
from tests.fakes import CannedVoice, RecordingTransport, ScriptedCluster, fixture_course

CHANNEL = Address("discord", "channel", "chan-1")
DONE = {"pod-running", "no-failures"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _crew_at_task(store, pacing: str = "together", clock: Clock | None = None):
    transport, cluster = RecordingTransport(), ScriptedCluster()
    engine = Engine(
        fixture_course(),
        store,
        cluster,
        CannedVoice(),
        transport,
        idle_after=600,
        clock=clock or Clock(),
    )
    mission = await engine.start(CHANNEL, "ana", "Ana", pacing=pacing, guild="g1")
    for who in ("ben", "cai"):
        await engine.join(mission.id, who, who.title())
    # Everyone answers the opening questions (channel questions gate on the crew too).
    for who in ("ana", "ben", "cai"):
        await engine.say(mission.id, who, "1")
    for who in ("ana", "ben", "cai"):
        await engine.say(mission.id, who, "1")
    await engine.continue_(mission.id, "ana")
    for who in ("ana", "ben", "cai"):
        await engine.say(mission.id, who, "3")
    assert transport.kinds()[-2:] == ["task", "board"]
    return engine, transport, cluster, mission


async def test_together_waits_for_the_slowest_member(store):
    engine, transport, cluster, mission = await _crew_at_task(store)
    for who in ("ana", "ben"):
        cluster.passing[who] = DONE
        await engine.check(mission.id, who)
    assert '"Good work."' not in transport.texts()
    board = [m for _, m, _ in transport.delivered if m.kind == "board"][-1]
    assert [row["passed"] for row in board.data["members"]] == [True, True, False]
    cluster.passing["cai"] = DONE
    await engine.check(mission.id, "cai")
    assert '"Good work."' in transport.texts()


async def test_quorum_moves_on_with_a_share(store):
    engine, transport, cluster, mission = await _crew_at_task(store, pacing="quorum")
    cluster.passing["ana"] = DONE
    await engine.check(mission.id, "ana")
    assert '"Good work."' not in transport.texts()
    cluster.passing["ben"] = DONE
    await engine.check(mission.id, "ben")  # 2 of 3 >= ceil(0.5 * 3)
    assert '"Good work."' in transport.texts()


async def test_idle_member_drops_out_of_the_count_and_can_rejoin(store):
    clock = Clock()
    engine, transport, cluster, mission = await _crew_at_task(store, clock=clock)
    clock.now += 300
    for who in ("ana", "ben"):
        cluster.passing[who] = DONE
        await engine.check(mission.id, who)
    assert '"Good work."' not in transport.texts()
    clock.now += 400  # cai idle for 700 s > 600; ana and ben acted 400 s ago
    await engine.tick()
    assert '"Good work."' in transport.texts()
    await engine.say(mission.id, "cai", "I'm back")  # activity makes cai count again
    members = {m.learner_id: m for m in await store.members(mission.id)}
    assert clock.now - members["cai"].last_active < 600


async def test_leaving_member_no_longer_holds_the_crew(store):
    engine, transport, cluster, mission = await _crew_at_task(store)
    for who in ("ana", "ben"):
        cluster.passing[who] = DONE
        await engine.check(mission.id, who)
    await engine.leave(mission.id, "cai")
    assert '"Good work."' in transport.texts()


async def test_self_paced_members_play_in_their_own_threads(store):
    transport, cluster = RecordingTransport(), ScriptedCluster()
    engine = Engine(fixture_course(), store, cluster, CannedVoice(), transport)
    hub = await engine.start(CHANNEL, "ana", "Ana", pacing="self-paced")
    assert hub.state == "hub"
    threads = {}
    for who in ("ana", "ben"):
        address = Address("discord", "thread", f"thread-{who}")
        threads[who] = await engine.start(address, who, who.title(), parent_id=hub.id)
        await engine.say(threads[who].id, who, "1")
        await engine.say(threads[who].id, who, "1")
        await engine.continue_(threads[who].id, who)
        await engine.say(threads[who].id, who, "3")
    cluster.passing["ana"] = DONE
    await engine.check(threads["ana"].id, "ana")
    ana_thread = Address("discord", "thread", "thread-ana")
    ben_thread = Address("discord", "thread", "thread-ben")
    assert '"Good work."' in transport.texts(ana_thread)
    assert '"Good work."' not in transport.texts(ben_thread)
    boards = [m for a, m, _ in transport.delivered if a == CHANNEL and m.kind == "board"]
    assert [r["name"] for r in boards[-1].data["members"]] == ["Ana", "Ben"]
