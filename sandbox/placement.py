"""Which host cluster gets a new sandbox: pure arithmetic over what each host holds.

One host cluster rarely carries a whole course: an active sandbox requests about a fifth of a
core and half a GiB (``kepler sandbox cost``), so a thousand active learners need hundreds of
cores. The bot therefore spreads sandboxes over several hosts (``KEPLER_HOSTS``). Placement
picks, among the hosts that are reachable, not drained and under their caps, the one with the
largest share of its capacity still free; ties go to the host with fewer sandboxes, then by
name, so the choice is deterministic and spreads a class evenly.

Capacity per host is what the operator gives sandboxes there (``max``, ``cpu``, ``memory`` in
``KEPLER_HOSTS``; see docs/operating.md), not what the nodes report: the bot has no rights on
nodes, and a host usually runs other things too. A paused sandbox counts against ``max``
(its namespace and volume stay) but requests no CPU or memory; active ones (ready,
provisioning, warm spares) request one :class:`Footprint` each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubernetes.utils import parse_quantity


@dataclass(frozen=True)
class Footprint:
    """What one running sandbox requests from the host scheduler."""

    cpu_m: int  # millicores
    memory: int  # bytes


@dataclass(frozen=True)
class Capacity:
    """What the operator lets sandboxes use on one host; 0 means "not limited by this"."""

    max_sandboxes: int = 0
    cpu_m: int = 0
    memory: int = 0


@dataclass(frozen=True)
class HostLoad:
    """One host as placement sees it right now."""

    name: str
    capacity: Capacity
    sandboxes: int = 0  # every sandbox there, paused ones included
    active: int = 0  # those holding requests (ready, provisioning, spare)
    drained: bool = False
    reachable: bool = True

    def fits(self, each: Footprint) -> bool:
        """Room for one more active sandbox, under every cap that is set."""
        cap = self.capacity
        if not self.reachable or self.drained:
            return False
        if cap.max_sandboxes and self.sandboxes >= cap.max_sandboxes:
            return False
        if cap.cpu_m and (self.active + 1) * each.cpu_m > cap.cpu_m:
            return False
        return not (cap.memory and (self.active + 1) * each.memory > cap.memory)

    def free_share(self, each: Footprint) -> float:
        """The smallest free fraction over the caps that are set (1.0 when none is)."""
        cap = self.capacity
        shares = [1.0]
        if cap.max_sandboxes:
            shares.append(1 - self.sandboxes / cap.max_sandboxes)
        if cap.cpu_m:
            shares.append(1 - self.active * each.cpu_m / cap.cpu_m)
        if cap.memory:
            shares.append(1 - self.active * each.memory / cap.memory)
        return min(shares)


def ranked(loads: Iterable[HostLoad], each: Footprint) -> list[HostLoad]:
    """Hosts with room, best first (most free share, then fewest sandboxes, then name)."""
    fit = [h for h in loads if h.fits(each)]
    return sorted(fit, key=lambda h: (-h.free_share(each), h.sandboxes, h.name))


def place(loads: Sequence[HostLoad], each: Footprint, prefer: str = "") -> str | None:
    """The host for one more sandbox, or None when no host has room.

    ``prefer`` (a learner's current host, on reset) wins whenever it still has room: moving
    a learner costs a fresh control plane elsewhere and buys nothing unless the host is
    drained, unreachable or full.
    """
    fit = ranked(loads, each)
    if prefer and any(h.name == prefer for h in fit):
        return prefer
    return fit[0].name if fit else None


def cpu_millis(text: str | int | float) -> int:
    """A CPU quantity ("250m", "1.5") in millicores."""
    return int(parse_quantity(str(text)) * 1000)


def memory_bytes(text: str | int | float) -> int:
    """A memory quantity ("512Mi", "2G") in bytes."""
    return int(parse_quantity(str(text)))
