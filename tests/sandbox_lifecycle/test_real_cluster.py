"""End to end on a real host: provision a vcluster, apply chapter 2's solution, pass, delete.

Run with ``uv run pytest -m cluster tests/sandbox_lifecycle/test_real_cluster.py`` and
``HOST_KUBECONFIG`` set; the host is prepared as docs/sandbox.md says (deploy/ applied,
a default StorageClass, metrics-server, and an exposure the test machine can reach:
``KEPLER_SANDBOX_EXPOSURE``/``KEPLER_SANDBOX_HOST`` or ``KEPLER_SANDBOX_NODE_ADDRESS``).
The chart's values.yaml is downloaded once (or taken from ``KEPLER_VCLUSTER_VALUES``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import pytest

from bot.content.course import load_course
from sandbox.apply import Kube, apply_all, load_manifests
from sandbox.lifecycle import solution_manifests
from sandbox.objectives import evaluate_all, kinds_for
from sandbox.snapshot import ClusterReader

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(not os.environ.get("HOST_KUBECONFIG"),
                       reason="HOST_KUBECONFIG is not set: no host cluster to run a real vcluster on"),
]  # fmt: skip


async def test_real_vcluster_passes_chapter_2() -> None:
    from bot.commands.sandbox import build_backend

    backend = build_backend(os.environ["HOST_KUBECONFIG"])
    backend.poll = 3.0
    course = load_course()
    ch2 = course.find_chapter(2)
    objectives = [o for task in course.tasks(ch2) for o in task.objectives]
    learner = f"cluster-test-{secrets.token_hex(3)}"
    try:
        events = [e async for e in backend.provision(learner)]
        assert events[-1].step == "ready", events[-1].message
        api = await backend.client_for(learner)
        try:
            paths = [p for p in solution_manifests(course, ch2 + 1)]
            done = await asyncio.to_thread(lambda: apply_all(Kube(api), load_manifests(paths)))
            assert done
            reader = ClusterReader(api)
            deadline = time.monotonic() + 600
            while True:
                snap = await asyncio.to_thread(reader.read, kinds_for(objectives))
                results = evaluate_all(objectives, snap)
                if all(r.passed for r in results):
                    break
                assert time.monotonic() < deadline, [r.reason for r in results if not r.passed]
                await asyncio.sleep(5)
        finally:
            api.close()
        kubeconfig = await backend.kubeconfig_for(learner)
        assert "server: https://" in kubeconfig
    finally:
        await backend.delete(learner)
        await backend.close()
