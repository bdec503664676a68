"""Why :mod:`sandbox.apply` keeps its own server-side apply instead of
``kubernetes.dynamic.DynamicClient``: the request count for applying every chapter manifest,
against the emulator's request log. Counts, not times, so the numbers are deterministic.

``uv run pytest tests/sandbox/test_apply_requests.py -q -s`` prints them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from kubernetes.dynamic import DynamicClient

from sandbox.apply import FIELD_MANAGER, Kube, apply_all, load_manifests
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

ROOT = Path(__file__).resolve().parents[2]
DOCS = load_manifests(sorted(ROOT.glob("chapters/*/manifests/*.yaml")))


def _cluster(emu: KubeEmulator, name: str):
    cluster = emu.add_cluster(name)
    namespaces = {d["metadata"].get("namespace") for d in DOCS} | {"default"}
    cluster.put(*[ob.namespace(n) for n in sorted(n for n in namespaces if n)])
    cluster.clear_requests()
    return cluster


def test_kube_applies_each_object_in_one_request_with_no_discovery(emu: KubeEmulator):
    cluster = _cluster(emu, "apply-kube")
    api = emu.api_client("apply-kube")
    try:
        done = apply_all(Kube(api), copy.deepcopy(DOCS))
    finally:
        api.close()
    assert len(done) == len(DOCS) > 10
    assert [r.method for r in cluster.requests] == ["PATCH"] * len(DOCS)
    print(f"\nKube: {len(DOCS)} objects, {len(cluster.requests)} requests, 0 discovery")


def test_dynamic_client_needs_discovery_first_and_a_cache_file(
    emu: KubeEmulator, tmp_path: Path
):
    """The same apply through DynamicClient: every object lands too, after discovery GETs
    (``/api``, ``/apis`` on construction, then each group version used), and only with a
    discovery cache file on disk (by default a file in the system temp directory per host)."""
    cluster = _cluster(emu, "apply-dynamic")
    api = emu.api_client("apply-dynamic")
    cache = tmp_path / "discovery.json"
    try:
        dynamic = DynamicClient(api, cache_file=str(cache))
        on_construction = len(cluster.requests)
        for doc in copy.deepcopy(DOCS):
            res = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            namespace = doc["metadata"].get("namespace") or "default" if res.namespaced else None
            res.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace=namespace,
                                  field_manager=FIELD_MANAGER, force_conflicts=True)  # fmt: skip
    finally:
        api.close()
    patches = [r for r in cluster.requests if r.method == "PATCH"]
    discovery = [r.path for r in cluster.requests if r.method == "GET"]
    assert len(patches) == len(DOCS)
    assert on_construction == 2 and len(discovery) > on_construction
    assert json.loads(cache.read_text())  # state kept on disk between processes
    print(f"\nDynamicClient: {len(DOCS)} objects, {len(cluster.requests)} requests, "
          f"{len(discovery)} discovery ({on_construction} on construction)")  # fmt: skip
