"""One Kubernetes API emulator per test module; each test adds its own clusters to it.

The sandbox's reads and watches are checked over both HTTP versions the bot speaks: HTTP/1.1
(the threaded emulator has no ALPN) and HTTP/2 (the asyncio emulator's HTTPS listener takes
``h2``, as kube-apiserver does). Modules about HTTP/1.1 alone pin their own ``emu``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator import KubeEmulator


@pytest.fixture(scope="module", params=["threads", "asyncio"], ids=["http1", "http2"])
def emu(request: pytest.FixtureRequest) -> Iterator[KubeEmulator]:
    with KubeEmulator(io=request.param) as e:
        yield e
