"""What the HTTP/2 test modules share: a cluster to read, a 6 MiB list, and a wait."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

_n = itertools.count()


async def until(check: Callable[[], object], seconds: float = 5.0) -> None:
    """Poll ``check`` every 20 ms until it is true; assert it is after ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


def ops_cluster(emu: KubeEmulator, prefix: str) -> str:
    """A new cluster on ``emu`` with a namespace ``ops``, a node, a Deployment ``web`` and a
    ConfigMap ``cfg``; its name."""
    name = f"{prefix}{next(_n)}"
    emu.add_cluster(name).put(ob.namespace("ops"), ob.node("n1"),
                              ob.deployment("web", "ops", replicas=1),
                              ob.config_map("cfg", "ops"))  # fmt: skip
    return name


BIG = "x" * (100 * 1024)


def fill_big(emu: KubeEmulator, name: str, count: int = 60) -> None:
    """``count`` ConfigMaps of 100 KiB each in ``ops``: 6 MiB by default, past the 4 MiB
    stream window the bot grants and far past HTTP/2's default 64 KiB."""
    for i in range(count):
        cm = ob.config_map(f"big-{i}", "ops")
        cm["data"] = {"blob": BIG}
        emu[name].put(cm)


def big_blobs_whole(listed: dict, count: int = 60) -> bool:
    """The list holds every ConfigMap of :func:`fill_big`, each whole."""
    blobs = [i["data"].get("blob") for i in listed["items"] if i["metadata"]["name"] != "cfg"]
    return len(blobs) == count and all(b == BIG for b in blobs)
