from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator import KubeEmulator
from tests.simcluster import SimCluster

_names = itertools.count()


def require_kubectl() -> None:
    """These tests are about real kubectl; CI installs it (.ci/run), so missing is a failure
    there and a skip only where KEPLER_ALLOW_NO_KUBECTL is set."""
    import os

    if shutil.which("kubectl") is None:
        if os.environ.get("KEPLER_ALLOW_NO_KUBECTL"):
            pytest.skip("kubectl not installed")
        pytest.fail("kubectl is not on PATH: run .ci/run (it installs kubectl v1.32)")


@pytest.fixture(scope="session")
def sim_emulator() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emu:
        yield emu


@pytest.fixture
def sim(sim_emulator: KubeEmulator, tmp_path: Path) -> Iterator[SimCluster]:
    require_kubectl()
    s = SimCluster(sim_emulator, f"sim-{next(_names)}", tmp_path).start()
    try:
        yield s
    finally:
        s.stop()
