"""``/healthz``'s host check with several hosts: one dark host is a detail, not an outage."""

from __future__ import annotations

from bot.ops.health import host_clusters_check
from tests.sandbox_hosts.conftest import HOSTS


async def test_healthy_while_one_host_answers(emu) -> None:
    apis = {h: emu.api_client(h) for h in HOSTS}
    check = host_clusters_check(apis, timeout=2.0)
    assert await check() == (True, "3/3 hosts answer")
    emu["fra"].unreachable = True
    assert await check() == (True, "2/3 hosts answer; unreachable: fra")
    for host in HOSTS:
        emu[host].unreachable = True
    ok, detail = await check()
    assert not ok and detail == "0/3 hosts answer; unreachable: ams, fra, par"
    for api in apis.values():
        api.close()
