"""One learner's vcluster stops answering while the others play on: their unlocks still
arrive through the watch path of ``kepler serve`` (``App``'s change watchers), and the
unreachable learner's own check says what is wrong."""

from __future__ import annotations

import asyncio
import time

from bot.engine.ports import Address
from bot.transports.discord.app import App
from sandbox.backends.base import SandboxRecord
from sandbox.service import ClusterService
from tests.course_states import states as S
from tests.course_states.conftest import EmulatedLearners, seed
from tests.discord.world import World
from tests.drills.conftest import to_task
from tests.fakes import CannedVoice, RecordingTransport


async def test_an_unreachable_cluster_does_not_hold_up_the_others(emu, course, store) -> None:
    clusters = {f"discord:{i}": seed(emu, f"crew-{i}", S.before(2)) for i in (1, 2, 3)}
    down = "discord:3"
    svc = ClusterService(EmulatedLearners(emu, clusters), timeout=2.0)
    app = App(bot=World().client, store=store, course=course, cluster=svc, voice=CannedVoice(),
              service=svc)  # fmt: skip
    transport = RecordingTransport()
    app.engine.transport = transport
    missions: dict[str, int] = {}
    now = time.time()
    for lid, name in clusters.items():
        await store.save_sandbox(SandboxRecord(lid, "vcluster", name, "ready", now, now))
        mission = await app.engine.start(Address("discord", "solo", lid), lid, lid, chapter=2)
        await to_task(app.engine, mission.id, lid)
        missions[lid] = mission.id
    emu[clusters[down]].unreachable = True
    try:
        await app.watch()
        await asyncio.sleep(3.0)  # every watcher takes its first look (the down one fails)
        changed = time.monotonic()
        for lid in ("discord:1", "discord:2"):
            emu[clusters[lid]].put(*S.after(2).objects())

        def unlocked(lid: str) -> bool:
            return "status" in transport.kinds(Address("discord", "solo", lid))

        while not all(unlocked(lid) for lid in ("discord:1", "discord:2")):
            assert time.monotonic() - changed < 20, "the others' unlocks did not arrive"
            await asyncio.sleep(0.05)
        assert not unlocked(down)

        replies = await app.engine.check(missions[down], down)
        assert len(replies) == 1 and replies[0].kind == "status"
        assert replies[0].text.startswith(("No Kubernetes cluster answered",
                                           "Your station cluster is not answering"))  # fmt: skip

        # back online: the next check unlocks as usual
        emu[clusters[down]].unreachable = False
        emu[clusters[down]].put(*S.after(2).objects())
        await app.engine.check(missions[down], down)
        assert unlocked(down)
    finally:
        emu[clusters[down]].unreachable = False
        await app.close()
        for lid in clusters:
            svc.forget(lid)
