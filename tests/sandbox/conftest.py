"""One Kubernetes API emulator per test module; each test adds its own clusters to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator import KubeEmulator


@pytest.fixture(scope="module")
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator() as e:
        yield e
