"""ClusterReader over the emulator: one LIST per kind, errors mapped, isolation, change notices."""

from __future__ import annotations

import asyncio

import pytest

from sandbox.errors import ClusterError, ClusterForbidden, ClusterTimeout, ClusterUnreachable
from sandbox.objectives import EvalContext, evaluate_all, kinds_for
from sandbox.snapshot import KINDS, ClusterReader
from sandbox.watch import watch_changes
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob
from tests.sandbox.test_objectives import spec

_n = iter(range(10**6))


@pytest.fixture
def name(emu: KubeEmulator) -> str:
    n = f"c{next(_n)}"
    d = ob.deployment("web", "ops", replicas=2)
    rs = ob.replica_set(d)
    emu.add_cluster(n).put(ob.namespace("ops"), ob.node("n1"), ob.node("n2"), d, rs,
                           *ob.deployment_pods(d, rs), ob.storage_class(),
                           ob.persistent_volume("pv1"))
    return n


def reader(emu: KubeEmulator, name: str) -> ClusterReader:
    return ClusterReader.from_configuration(emu.configuration(name))


def test_read_lists_each_kind_once(emu: KubeEmulator, name: str) -> None:
    c = emu[name]
    c.clear_requests()
    kinds = {"Pod", "Node", "Deployment", "Namespace", "StorageClass", "PersistentVolume"}
    snap = reader(emu, name).read(kinds, timeout=5)
    assert {p["metadata"]["name"][:4] for p in snap.of("Pod")} == {"web-"}
    assert [n["metadata"]["name"] for n in snap.of("Node")] == ["n1", "n2"]
    assert snap.of("Deployment")[0]["status"]["readyReplicas"] == 2
    assert snap.of("Pod")[0]["kind"] == "Pod"
    assert snap.versions["Pod"] == str(c.resource_version)
    assert len(c.requests) == len(kinds)
    for kind in kinds:
        assert c.count("GET", KINDS[kind].path) == 1, kind
    assert {r.path for r in c.requests} == {KINDS[k].path for k in kinds}
    assert all(r.query == {} for r in c.requests)


def test_objectives_over_a_read(emu: KubeEmulator, name: str) -> None:
    specs = [spec("ready_pods", id="pods", namespace="ops", labels={"app": "web"}, min=2),
             spec("rollout_complete", id="roll", name="web", namespace="ops"),
             spec("nodes_ready", id="nodes", min=2)]
    emu[name].clear_requests()
    snap = reader(emu, name).read(kinds_for(specs), timeout=5)
    assert len(emu[name].requests) == 3  # Pod, Deployment, Node
    assert all(r.passed for r in evaluate_all(specs, snap, EvalContext()))


def test_kubeconfig_over_tls(emu: KubeEmulator, name: str, tmp_path: object) -> None:
    r = ClusterReader.from_kubeconfig(emu.kubeconfig_dict(name))
    assert len(r.read({"Node"}, 5).of("Node")) == 2


@pytest.mark.parametrize(("code", "error"), [
    (403, ClusterForbidden), (401, ClusterForbidden), (500, ClusterError), (503, ClusterError),
])
def test_status_errors(emu: KubeEmulator, name: str, code: int, error: type) -> None:
    emu[name].fail(code, path="/api/v1/nodes")
    with pytest.raises(error) as exc:
        reader(emu, name).read({"Node"}, 5)
    assert str(code) in str(exc.value) and "\n" not in str(exc.value)


def test_wrong_token_is_forbidden_and_not_echoed(emu: KubeEmulator, name: str) -> None:
    r = ClusterReader.from_configuration(emu.configuration(name, token="s3cret-token"))
    with pytest.raises(ClusterForbidden) as exc:
        r.read({"Pod"}, 5)
    assert "s3cret" not in str(exc.value) and "401" in str(exc.value)


def test_timeout(emu: KubeEmulator, name: str) -> None:
    emu[name].delay(30.0)  # far longer than the read may take
    try:
        with pytest.raises(ClusterTimeout):
            reader(emu, name).read({"Pod", "Node"}, timeout=0.3)
    finally:
        emu[name].clear_faults()


def test_unreachable(emu: KubeEmulator, name: str) -> None:
    emu[name].unreachable = True
    with pytest.raises(ClusterUnreachable):
        reader(emu, name).read({"Pod"}, 2)
    emu[name].unreachable = False
    cfg = emu.configuration(name)
    cfg.host = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(ClusterUnreachable) as exc:
        ClusterReader.from_configuration(cfg).read({"Pod"}, 2)
    assert "connection refused" in str(exc.value)


def test_bad_kubeconfig(tmp_path: object) -> None:
    with pytest.raises(ClusterError, match="does not exist"):
        ClusterReader.from_kubeconfig("/nonexistent/kubeconfig")
    with pytest.raises(ClusterError, match="invalid kubeconfig"):
        ClusterReader.from_kubeconfig({"apiVersion": "v1", "clusters": []})


async def test_slow_cluster_does_not_delay_others(emu: KubeEmulator) -> None:
    """Six fast clusters are all read while a slow one's read is still waiting: nothing a
    fast read needs is held by the slow one (no clock involved: the slow cluster answers in
    30 s, long after everything here is over)."""
    slow, fast = emu.add_cluster("slow"), [emu.add_cluster(f"fast{i}") for i in range(6)]
    for c in [slow, *fast]:
        c.put(ob.node("n1"))
    slow.delay(30.0)
    stuck = asyncio.create_task(reader(emu, "slow").read_async({"Node", "Pod"}, 25.0))
    try:
        await asyncio.sleep(0)  # the slow read has started
        snaps = await asyncio.gather(*[reader(emu, c.name).read_async({"Node", "Pod"}, 25.0)
                                       for c in fast])  # fmt: skip
        assert all(s.of("Node") for s in snaps)
        assert not stuck.done()  # the fast ones finished while the slow one still waits
    finally:
        stuck.cancel()
        slow.clear_faults()
    with pytest.raises(asyncio.CancelledError):
        await stuck


async def test_change_notifier_fires_fast_and_is_quiet_when_idle(emu: KubeEmulator,
                                                                 name: str) -> None:
    c = emu[name]
    r = reader(emu, name)
    snap = r.read({"Pod", "Deployment", "Event"}, 5)
    c.clear_requests()
    notifier = watch_changes(r, snap, window=1.0)
    try:
        assert not await notifier.wait(1.2)  # idle: nothing fires
        assert c.count(watch=True) <= 4  # two kinds (no Event), about one request per window
        assert c.count(watch=False) == 0  # no re-list
        c.put(ob.pod("new", "ops", {"app": "web"}))
        assert await notifier.wait(30.0)  # the change ends the wait; 30 s only guards a hang
        # a kind nobody watches does not wake the learner
        c.put(ob.config_map("unwatched", "ops"))
        assert not await notifier.wait(0.3)
    finally:
        notifier.stop()


async def test_change_between_read_and_watch_is_seen(emu: KubeEmulator, name: str) -> None:
    c = emu[name]
    r = reader(emu, name)
    snap = r.read({"Deployment"}, 5)
    c.put(ob.deployment("api", "ops"))  # before the watch starts
    notifier = watch_changes(r, snap, window=5.0)
    try:
        assert await notifier.wait(2.0)
    finally:
        notifier.stop()


async def test_async_read_matches_the_official_clients_and_maps_failures(
        emu: KubeEmulator, name: str) -> None:
    """The bot's reads (on the event loop) give the same snapshot as ``kepler verify``'s
    (the official client), and say plainly what went wrong."""
    r = ClusterReader.from_kubeconfig(emu.kubeconfig_dict(name))  # TLS + bearer token
    kinds = {"Node", "Namespace", "Pod", "Deployment"}
    sync, got = r.read(kinds, 5), await r.read_async(kinds, 5)
    assert got.objects == sync.objects and set(got.versions) == kinds
    with pytest.raises(ValueError, match="no LIST known"):
        await r.read_async({"Gadget"}, 5)

    untrusted = emu.configuration(name, tls=True)
    untrusted.ssl_ca_cert = None  # the system's authorities do not know the emulator's
    with pytest.raises(ClusterUnreachable, match="certificate not trusted"):
        await ClusterReader.from_configuration(untrusted).read_async({"Node"}, 5)

    wrong = ClusterReader.from_configuration(emu.configuration(name, token="nope-123456789"))
    with pytest.raises(ClusterForbidden) as caught:
        await wrong.read_async({"Node"}, 5)
    assert "401" in str(caught.value) and "nope-123456789" not in str(caught.value)

    emu[name].fail(500, "GET", KINDS["Pod"].path + "$")
    with pytest.raises(ClusterError, match="500"):
        await r.read_async({"Pod"}, 5)

    emu[name].unreachable = True
    try:
        with pytest.raises(ClusterUnreachable, match="connection"):
            await r.read_async({"Node"}, 5)
    finally:
        emu[name].unreachable = False


async def test_settings_only_the_official_client_knows_use_its_read(
        emu: KubeEmulator, name: str) -> None:
    """A kubeconfig's ``proxy-url`` or ``tls-server-name`` is honoured by the official client
    only: with either set, the async read runs the official client's read in a thread (seen
    here by the event-loop request hook staying silent)."""
    cfg = emu.configuration(name, tls=True)
    cfg.tls_server_name = "localhost"  # on the emulator's certificate too
    r = ClusterReader.from_configuration(cfg)
    heard: list[tuple[str, str]] = []
    r.observe = lambda method, code: heard.append((method, code))
    snap = await r.read_async({"Node", "Namespace"}, 5)
    assert snap.objects == r.read({"Node", "Namespace"}, 5).objects
    assert heard == []
    plain = ClusterReader.from_configuration(emu.configuration(name, tls=True))
    plain.observe = r.observe
    await plain.read_async({"Node", "Namespace"}, 5)
    assert heard == [("GET", "2xx"), ("GET", "2xx")]
