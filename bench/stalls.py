"""What the event loop is doing when it stalls: a watchdog thread and garbage-collector timing.

The loop stamps a heartbeat every :data:`BEAT` seconds. A watchdog thread looks every 10 ms;
while the heartbeat is more than ``threshold`` late it samples the loop thread's Python stack
(``sys._current_frames``) and counts it. A sample taken while the loop thread waits for the
GIL shows the line it is stuck at, so thread contention shows up as ordinary Python lines
(often inside ``asyncio`` itself) with no single hot spot.

Collector pauses are timed with ``gc.callbacks`` (start → stop of each collection, per
generation), since a full collection of a large heap stops every thread.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

BEAT = 0.02
ROOT = str(Path(__file__).resolve().parents[1])


def _where(frame: FrameType | None, depth: int) -> str:
    """The innermost ``depth`` frames as ``file:line func`` from innermost out."""
    parts: list[str] = []
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        name = code.co_filename
        if name.startswith(ROOT):
            name = name[len(ROOT) + 1 :]
        elif "site-packages/" in name:
            name = name.split("site-packages/", 1)[1]
        elif "/lib/python" in name:
            name = "stdlib/" + name.rsplit("/", 1)[1]
        parts.append(f"{name}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return " < ".join(parts)


class StallSampler:
    """Counts the loop thread's stacks while the loop is late, and times GC pauses."""

    def __init__(self, threshold: float = 0.2, depth: int = 6):
        self.threshold = threshold
        self.depth = depth
        self.stacks: Counter[str] = Counter()
        self.others: Counter[str] = Counter()  # other threads' innermost frames meanwhile
        self.samples = 0
        self.tracked = 0
        self.full_collect = (0.0, 0.0)
        self.by_type: list[tuple[str, int]] = []
        self.gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._gc_started = 0.0
        self._gc_cpu = 0.0
        self.long_gcs: list[dict[str, object]] = []
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="stall-sampler", daemon=True)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Call from the event loop."""
        self._loop_thread = threading.get_ident()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        gc.callbacks.append(self._gc)
        self._thread.start()

    def census(self, top: int = 25) -> None:
        """Count the objects the collector tracks, by type (call from the loop thread)."""
        t, cpu = time.perf_counter(), time.thread_time()
        gc.collect()
        self.full_collect = (round(time.perf_counter() - t, 3), round(time.thread_time() - cpu, 3))
        objs = gc.get_objects()
        self.tracked = len(objs)
        by_type: Counter[str] = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objs)
        del objs
        self.by_type = by_type.most_common(top)

    def stop(self) -> None:
        self.census()
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(BEAT)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu = time.thread_time()
        else:
            wall = time.perf_counter() - self._gc_started
            self.gc_pauses[info["generation"]].append(wall)
            if wall > 0.5:  # a long one: was it work (CPU) or waiting, and how much garbage?
                self.long_gcs.append({
                    "gen": info["generation"], "wall_s": round(wall, 3),
                    "cpu_s": round(time.thread_time() - self._gc_cpu, 3),
                    "collected": info["collected"], "thread": threading.current_thread().name,
                })  # fmt: skip

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            if time.monotonic() - self._beat > self.threshold + BEAT:
                frames = sys._current_frames()
                self.stacks[_where(frames.get(self._loop_thread), self.depth)] += 1
                me = threading.get_ident()
                for ident, f in frames.items():
                    if ident not in (self._loop_thread, me):
                        self.others[_where(f, 2)] += 1
                self.samples += 1

    def report(self, top: int = 15) -> dict[str, object]:
        gcs = {
            f"gen{g}": {"count": len(p), "total_s": round(sum(p), 2),
                        "max_s": round(max(p, default=0.0), 3)}
            for g, p in self.gc_pauses.items()
        }  # fmt: skip
        return {
            "stall_samples": self.samples,
            "stall_seconds": round(self.samples * 0.01, 2),
            "stall_top": [[n, s] for s, n in self.stacks.most_common(top)],
            "stall_other_threads": [[n, s] for s, n in self.others.most_common(top)],
            "gc": gcs,
            "gc_long": self.long_gcs[:30],
            "gc_full_collect_wall_cpu_s": self.full_collect,
            "gc_tracked_objects": self.tracked,
            "gc_tracked_by_type": self.by_type,
        }
