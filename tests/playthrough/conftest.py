"""Saved games: the simulated cluster as a learner leaves it after each chapter, built once
per session by typing the chapters' own commands, and copied for every test that starts
from it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

# The story's drill (chapter 6) deletes a pod with the official client, whose models load on
# first use: seconds of imports on a busy machine. Load them now, so the play-through measures
# the live loop, not the first import (a cold `kepler play` pays it once, at the drill).
from kubernetes.client import CoreV1Api  # noqa: F401

from bot.config import Settings
from bot.content.course import Course, load_course
from tests.emulator import KubeEmulator
from tests.playthrough.script import learner_path
from tests.simcluster import SimCluster
from tests.simcluster.conftest import require_kubectl

_names = itertools.count()


class Campaign:
    """``before(n)``: a fresh copy of the cluster after chapters 1 … n-1 were played."""

    def __init__(self, emu: KubeEmulator, course: Course, folder: Path):
        self.emu, self.course, self.folder = emu, course, folder
        self._saved: dict[int, SimCluster] = {}
        self._live: list[SimCluster] = []

    def _state(self, chapters_done: int) -> SimCluster:
        if chapters_done not in self._saved:
            if chapters_done == 0:
                sim = SimCluster(self.emu, "campaign-0", self.folder).start()
            else:
                sim = self._state(chapters_done - 1).clone(f"campaign-{chapters_done}")
                path = learner_path(self.course, chapters_done)
                files = path.write(self.folder / f"campaign-ch{chapters_done}")
                for step in path.steps:
                    if step.mutating:
                        if step.settle_first:
                            sim.settle()
                        sim.kubectl(*step.argv, cwd=files)
                sim.settle()
            self._saved[chapters_done] = sim
        return self._saved[chapters_done]

    def before(self, chapter: int, folder: Path) -> SimCluster:
        sim = self._state(chapter - 1).clone(f"play-{chapter}-{next(_names)}")
        sim.workdir = folder
        sim.kubeconfig = folder / "kubeconfig"
        self.emu.write_kubeconfig(sim.kubeconfig, sim.name)
        self._live.append(sim)
        return sim

    def release(self) -> None:
        """Stop the copies handed out since the last call, and forget their objects."""
        for sim in self._live:
            sim.stop()
            self.emu.clusters.pop(sim.name, None)
        self._live.clear()

    def close(self) -> None:
        self.release()
        for sim in self._saved.values():
            sim.stop()


@pytest.fixture(scope="session")
def course() -> Course:
    settings = Settings.from_env()
    return load_course(settings.chapters_dir, settings.personas_dir)


@pytest.fixture(scope="session")
def campaign(course: Course, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    require_kubectl()
    with KubeEmulator() as emu:
        c = Campaign(emu, course, tmp_path_factory.mktemp("campaign"))
        try:
            yield c
        finally:
            c.close()


@pytest.fixture(autouse=True)
def _release_copies(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's copy of the campaign's cluster stops with the test."""
    yield
    if "campaign" in request.fixturenames:
        request.getfixturevalue("campaign").release()
