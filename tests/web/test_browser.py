"""The page in a real headless Chromium (Debian's package, driven by selenium; no downloads).

Opens a link, types ``kubectl get nodes`` and sees the node, writes a file with vim (leaving
insert mode with the page's own Esc key) and reads it back after a pause and a resume, uses
the key bar's Tab for completion, and shows that expired, forged and other-learner links
land on the 403 page. Set ``KEPLER_UPDATE_SCREENSHOT=1`` to refresh docs/terminal.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.emulator import KubeEmulator
from tests.web.conftest import World, kubectl_on_path, make_world

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="Chromium is not installed (CI installs it: apt-get install -y "
                              "chromium chromium-driver, see .ci/run)"),
    pytest.mark.skipif(not kubectl_on_path(), reason="kubectl is not on PATH"),
    pytest.mark.timeout(300),
]

T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kepler-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1000,640"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER or ""), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def world(emu: KubeEmulator, tmp_path: Path) -> AsyncIterator[World]:
    async for w in make_world(emu, tmp_path):
        yield w


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Selenium blocks; the servers live on this event loop, so the browser runs beside it."""
    return await asyncio.to_thread(fn, *args)


SCREEN_JS = """
const t = window.keplerTerminal; if (!t) return "";
const b = t.buffer.active; const out = [];
for (let i = 0; i < b.length; i++) { const l = b.getLine(i); if (l) out.push(l.translateToString(true)); }
return out.join("\\n");
"""


def screen(driver: Any) -> str:
    return str(driver.execute_script(SCREEN_JS))


def wait_for(driver: Any, text: str, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = screen(driver)
        if text in seen:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not on screen after {timeout}s:\n{seen[-1500:]}")


def wait_gone(driver: Any, text: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text not in screen(driver):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} still on screen after {timeout}s:\n{screen(driver)[-1500:]}")


def _wait_script(driver: Any, script: str, value: str, failure: str, timeout: float) -> None:
    """Poll ``script`` in the page until it returns ``value``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script(script) == value:
            return
        time.sleep(0.1)
    raise AssertionError(failure)


def wait_buffer(driver: Any, kind: str, timeout: float = 40.0) -> None:
    """xterm's active buffer: "alternate" while a full-screen program (vim) runs."""
    _wait_script(driver, "return window.keplerTerminal.buffer.active.type", kind,
                 f"the terminal buffer never became {kind!r}", timeout)


def wait_state(driver: Any, state: str, timeout: float = 40.0) -> None:
    _wait_script(driver, "return document.body.dataset.state", state,
                 f"the page never reached {state!r}", timeout)


def type_text(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(text)


def press(driver: Any, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'#keys button[data-key="{key}"]').click()


def body_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


async def test_a_learner_with_only_a_browser(world: World, browser: Any, tmp_path: Path) -> None:
    await world.add_learner("discord:1", "kepler-web1")
    await run(browser.get, await world.link("discord:1"))
    await run(wait_state, browser, "connected")
    await run(wait_for, browser, "kepler:")
    assert browser.current_url == world.base + "/terminal/"  # the token left the address bar

    await run(type_text, browser, "kubectl get nodes\n")
    await run(wait_for, browser, "kepler-node-1")

    # The key bar's Tab completes (bash completion for kubectl, static subcommands).
    await run(type_text, browser, "kubectl versi")
    await run(press, browser, "tab")
    await run(type_text, browser, "--client\n")
    await run(wait_for, browser, "Client Version")

    # vim: insert, leave insert mode with the page's Esc key, write and quit.
    await run(type_text, browser, "vim notes.txt\n")
    await run(wait_buffer, browser, "alternate")
    await run(wait_for, browser, '"notes.txt" [New')  # vim is up and owns the screen
    await run(type_text, browser, "ithe reactor is stable")
    await run(wait_for, browser, "-- INSERT --")
    await run(press, browser, "esc")
    await run(wait_gone, browser, "-- INSERT --")  # a human pause: ESC then ":" is not Alt-:
    await run(type_text, browser, ":wq\n")
    await run(wait_buffer, browser, "normal")  # vim has left: typing now reaches the shell
    await run(type_text, browser, "clear; cat notes.txt | tr a-z A-Z\n")
    await run(wait_for, browser, "THE REACTOR IS STABLE")

    shot = DOCS / "terminal.png" if os.environ.get("KEPLER_UPDATE_SCREENSHOT") else tmp_path / "t.png"
    await run(type_text, browser, "clear\n")
    await run(wait_for, browser, "kepler:")
    await run(type_text, browser, "kubectl get nodes\n")
    await run(wait_for, browser, "kepler-node-1")
    assert await run(browser.save_screenshot, str(shot))
    assert shot.stat().st_size > 5000

    # Pause: the page says so plainly; resume: it reconnects by itself, the file is still there.
    await world.pause("discord:1")
    await run(wait_for, browser, "paused to save power")
    assert world.web.connected() == {}
    await run(wait_state, browser, "paused")
    await world.resume("discord:1")
    await run(wait_state, browser, "connected")  # retried by itself within 5 s
    await run(type_text, browser, "cat notes.txt | wc -w | sed 's/^/words=/'\n")
    await run(wait_for, browser, "words=4")

    # Closing the tab (leaving the page) ends the exec session.
    await run(browser.get, "about:blank")
    for _ in range(100):
        if world.endpoint.live_sessions() == 0:
            break
        await asyncio.sleep(0.1)
    assert world.endpoint.live_sessions() == 0


async def test_bad_links_land_on_the_403_page(world: World, browser: Any) -> None:
    from bot.web.tokens import LINK_TTL, LinkSigner

    await world.add_learner("discord:1", "kepler-web2")
    await world.add_learner("discord:2", "kepler-web3")

    expired = await world.link("discord:1")
    world.clock.now += LINK_TTL + 1
    await run(browser.get, expired)
    text = await run(body_text, browser)
    assert "expired" in text and "/terminal" in text
    world.clock.now -= LINK_TTL + 1

    forged = LinkSigner("someone-elses-secret-0123456789").issue("discord:1", "kepler-web2")
    await run(browser.get, f"{world.base}/terminal/open/{forged}")
    assert "not valid" in await run(body_text, browser)

    other = world.signer.issue("discord:2", "kepler-web2")  # learner 2 aiming at 1's sandbox
    await run(browser.get, f"{world.base}/terminal/open/{other}")
    assert "reset or deleted" in await run(body_text, browser)

    used = await world.link("discord:1")
    await run(browser.get, used)
    await run(wait_for, browser, "kepler:")
    await run(browser.get, used)
    assert "already opened" in await run(body_text, browser)
    assert world.endpoint.sessions_started == 1


async def test_phone_sized_screen_fits_and_has_the_key_bar(world: World, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    await world.add_learner("discord:1", "kepler-web4")
    await run(browser.set_window_size, 390, 760)
    try:
        await run(browser.get, await world.link("discord:1"))
        await run(wait_for, browser, "kepler:")
        cols = await run(browser.execute_script, "return window.keplerTerminal.cols")
        assert 20 < cols < 60
        keys = await run(browser.find_elements, By.CSS_SELECTOR, "#keys button")
        assert [k.text for k in keys][:3] == ["Tab", "Ctrl", "Esc"]
        assert all(k.is_displayed() for k in keys[:4])
        # Ctrl then c from the bar interrupts a running command.
        await run(type_text, browser, "sleep 30; echo NOT-$((1+1))-INTERRUPTED\n")
        await asyncio.sleep(0.5)
        await run(press, browser, "ctrl")
        await run(type_text, browser, "c")
        await run(type_text, browser, "echo after-$((20+1))\n")
        await run(wait_for, browser, "after-21", 20.0)
        assert "NOT-2-INTERRUPTED" not in await run(screen, browser)
    finally:
        await run(browser.set_window_size, 1000, 640)
