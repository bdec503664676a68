""""In another terminal" in the browser: ``/terminal`` again gives a second link, and a second
tab in the same browser (the same cookie jar) runs a second shell while the first keeps
working; the first link stays spent."""

from __future__ import annotations

import aiohttp

from tests.web.conftest import World, open_terminal


async def test_a_second_link_opens_a_second_shell_beside_the_first(world: World) -> None:
    await world.add_learner("discord:8", "kepler-tabs1")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        first_link = await world.link("discord:8")
        first = await open_terminal(http, world, first_link)
        await first.expect("kepler")
        second = await open_terminal(http, world, await world.link("discord:8"))
        await second.expect("kepler")
        assert world.endpoint.live_sessions() == 2
        assert world.web.connected() == {"discord:8": 2}
        await first.type("echo first-$((20+1))\n")
        await first.expect("first-21")
        await second.type("echo second-$((20+2))\n")
        await second.expect("second-22")
        async with http.get(first_link, allow_redirects=False) as resp:
            assert resp.status == 403  # a link still opens once
        await first.ws.close()
        await second.ws.close()
