"""The crew's portraits: drawn by the committed script, served by the bot's HTTP server, and used
as webhook avatars and embed icons only when a public base URL is configured."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import yaml
from PIL import Image, ImageChops

from bot.ops.health import HealthRegistry, HealthServer
from bot.transports.discord.render import portrait_url, speaker_of

PERSONAS = Path(__file__).resolve().parents[2] / "personas"


def _draw():  # the build script, imported from its folder (it is not a package)
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw", PERSONAS / "portraits" / "draw.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_persona_has_a_portrait_that_the_script_draws() -> None:
    draw = _draw()
    for path in sorted(PERSONAS.glob("*.yaml")):
        persona = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert persona["avatar"] == f"portraits/{persona['id']}.png", path.name
        committed = Image.open(PERSONAS / persona["avatar"]).convert("RGB")
        assert committed.size == (256, 256)
        drawn = draw.draw(persona["id"], draw.rgb(persona["colour"]))
        assert ImageChops.difference(committed, drawn).getbbox() is None, (
            f"{persona['avatar']} is not the script's output: run personas/portraits/draw.py"
        )


def test_portraits_only_with_a_public_url(course) -> None:
    assert speaker_of(course, "torres").avatar is None
    url = speaker_of(course, "torres", "https://kepler.example.org/").avatar
    assert url == "https://kepler.example.org/portraits/torres.png"
    assert portrait_url("https://cdn.example.org/x.png", "") == "https://cdn.example.org/x.png"


async def test_the_bots_http_server_serves_the_portraits() -> None:
    server = HealthServer(HealthRegistry(), host="127.0.0.1", port=0,
                          static={"/portraits": PERSONAS / "portraits"})  # fmt: skip
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.port}"
            async with http.get(f"{base}/portraits/tanaka.png") as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/png"
                assert (await response.read())[:8] == b"\x89PNG\r\n\x1a\n"
            async with http.get(f"{base}/portraits/../tanaka.yaml") as response:
                assert response.status in (403, 404)
    finally:
        await server.stop()
