"""Markdown table from ``bench/load.py --json`` files: ``uv run python bench/table.py A.json ...``"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [
    ("learners", "learners", "{:d}"),
    ("seed", None, None),
    ("unlocks in the active phase (missed: no unlock within 30 s)", None, None),
    ("unlock latency p50 / p95 / p99 (s)", None, None),
    ("event-loop lag p99 / max, active (s)", None, None),
    ("time to `defer` of /check, max (s)", "ack_max", "{:.3f}"),
    ("k8s requests / learner-minute, idle (worst learner)", None, None),
    ("k8s requests / learner-minute, active (of which watches)", None, None),
    ("RSS per learner, idle / active (KiB)", None, None),
    ("threads in the bot process, active", "threads_active", "{:d}"),
    ("CPU per check (ms) / share of one core, active", None, None),
    ("store rows written / s, busiest second", "store_rows_per_s_peak", "{:d}"),
    ("emulator CPU, share of one core, active", None, None),
    ("check's cluster read p50 / p95 (s); failed reads, active", None, None),
    ("full GC: objects tracked / CPU of one collection (s)", None, None),
    ("longest GC pause, wall (s)", None, None),
    ("TLS handshakes per check: reads / watches; reads on a kept connection", None, None),
    ("TLS CPU per check (ms), estimated", None, None),
    ("load average at the end (other work on the machine)", None, None),
]


def cell(d: dict, label: str, key: str | None, fmt: str | None) -> str:
    if key:
        return fmt.format(d[key])  # type: ignore[union-attr]
    if label == "seed":
        return str(d.get("seed", "–"))
    if label.startswith("TLS handshakes") and "tls_handshakes_per_check_reads" in d:
        return (f"{d['tls_handshakes_per_check_reads']:.2f} / "
                f"{d['tls_handshakes_per_check_watches']:.2f}; "
                f"{d['reads_reusing_a_connection']:.0%}")
    if label.startswith("TLS CPU") and "tls_cpu_ms_per_check" in d:
        return f"{d['tls_cpu_ms_per_check']:.1f}"
    if label.startswith("load average") and "load_average_1min_end" in d:
        return f"{d['load_average_1min_end']:.1f}"
    if label.startswith("unlocks"):
        return f"{d['unlocks']} ({d['missed_unlocks']})"
    if label.startswith("unlock latency"):
        return f"{d['unlock_p50']:.2f} / {d['unlock_p95']:.2f} / {d['unlock_p99']:.2f}"
    if label.startswith("event-loop"):
        return f"{d['lag_p99']:.3f} / {d['lag_max']:.2f}"
    if "idle (worst" in label:
        return f"{d['idle_req_per_learner_min']:.2f} ({d['idle_worst_learner_req_min']:.1f})"
    if "active (of which" in label:
        return f"{d['active_req_per_learner_min']:.1f} ({d['active_watch_req_per_learner_min']:.1f})"
    if label.startswith("RSS"):
        return f"{d['rss_per_learner_kib_idle']:.0f} / {d['rss_per_learner_kib_active']:.0f}"
    if label.startswith("CPU"):
        return f"{d['cpu_ms_per_check']:.1f} / {d['cpu_share_of_core']:.2f}"
    # fields the harness gained later (--stalls): "–" for older runs
    if label.startswith("emulator") and "emulator_cpu_share_of_core" in d:
        return f"{d['emulator_cpu_share_of_core']:.2f}"
    if label.startswith("check's") and "check_read_p50" in d:
        return (f"{d['check_read_p50']:.2f} / {d['check_read_p95']:.2f}; "
                f"{d['check_errors_active']}")
    if label.startswith("full GC") and "gc_tracked_objects" in d:
        return f"{d['gc_tracked_objects']:,} / {d['gc_full_collect_wall_cpu_s'][1]:.2f}"
    if label.startswith("longest GC") and "gc" in d:
        return f"{max(g['max_s'] for g in d['gc'].values()):.2f}"
    return "–"


def main(paths: list[str]) -> None:
    data = [json.loads(Path(p).read_text()) for p in paths]
    names = [Path(p).stem for p in paths]
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, key, fmt in ROWS:
        print(f"| {label} | " + " | ".join(cell(d, label, key, fmt) for d in data) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
