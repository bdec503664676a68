"""Placement: the host with the most free share that is reachable, not drained and under caps."""

from __future__ import annotations

import pytest

from sandbox.placement import Capacity, Footprint, HostLoad, cpu_millis, memory_bytes, place, ranked

EACH = Footprint(cpu_m=250, memory=512 * 2**20)


def load(name: str, **kw) -> HostLoad:
    cap = kw.pop("cap", Capacity(max_sandboxes=10))
    return HostLoad(name=name, capacity=cap, **kw)


def test_the_emptier_host_wins_and_ties_go_by_name() -> None:
    assert place([load("b", sandboxes=3, active=3), load("a", sandboxes=5, active=5)], EACH) == "b"
    assert place([load("b"), load("a")], EACH) == "a"


def test_free_share_not_count_decides_between_hosts_of_different_size() -> None:
    big = load("big", cap=Capacity(max_sandboxes=100), sandboxes=20, active=20)  # 80% free
    small = load("small", cap=Capacity(max_sandboxes=10), sandboxes=5, active=5)  # 50% free
    assert place([small, big], EACH) == "big"


def test_caps_drain_and_unreachable_hosts_take_nothing() -> None:
    full = load("full", sandboxes=10)
    drained = load("drained", drained=True)
    down = load("down", reachable=False)
    assert place([full, drained, down], EACH) is None
    assert place([full, drained, down, load("ok", sandboxes=9)], EACH) == "ok"


def test_paused_sandboxes_count_against_max_but_request_nothing() -> None:
    cap = Capacity(cpu_m=1000, memory=2**32)  # room for four active sandboxes by CPU
    host = load("h", cap=cap, sandboxes=30, active=3)
    assert host.fits(EACH)
    assert not load("h", cap=cap, sandboxes=4, active=4).fits(EACH)
    assert not load("h", cap=Capacity(max_sandboxes=30), sandboxes=30, active=0).fits(EACH)


def test_memory_alone_can_be_the_limit() -> None:
    cap = Capacity(memory=memory_bytes("1Gi"))
    assert load("h", cap=cap, active=1).fits(EACH)
    assert not load("h", cap=cap, active=2).fits(EACH)


def test_a_host_without_caps_is_always_free_and_spreads_by_count() -> None:
    open_host = load("open", cap=Capacity(), sandboxes=500, active=500)
    assert open_host.fits(EACH) and open_host.free_share(EACH) == 1.0
    assert place([open_host, load("other", cap=Capacity(), sandboxes=2)], EACH) == "other"


def test_reset_prefers_the_current_host_while_it_has_room() -> None:
    loads = [load("a", sandboxes=1), load("b", sandboxes=8)]
    assert place(loads, EACH, prefer="b") == "b"
    assert place([load("a"), load("b", drained=True)], EACH, prefer="b") == "a"
    assert place(loads, EACH, prefer="gone") == "a"


def test_ranked_orders_every_host_with_room() -> None:
    names = [h.name for h in ranked([load("c", sandboxes=2), load("a", sandboxes=2),
                                     load("b", sandboxes=1), load("x", drained=True)], EACH)]
    assert names == ["b", "a", "c"]


@pytest.mark.parametrize(("text", "millis"), [("250m", 250), ("1", 1000), ("1.5", 1500), (2, 2000)])
def test_cpu_quantities(text, millis) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "size"), [("64Mi", 64 * 2**20), ("1Gi", 2**30), ("2G", 2 * 10**9)])
def test_memory_quantities(text, size) -> None:
    assert memory_bytes(text) == size
