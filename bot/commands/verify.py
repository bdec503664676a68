"""``kepler verify --chapter N --kubeconfig PATH [--json]``: judge a chapter against a cluster.

Reads the cluster once (one LIST per kind the chapter's objectives need), evaluates every
objective of every task in the chapter and prints each as passed or failed with its reason.
Exit codes: 0 all passed, 1 some failed, 2 the cluster or the course could not be read
(one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.content.course import DEFAULT_CHAPTERS, DEFAULT_PERSONAS, load_course
from bot.content.loader import ContentError
from bot.core.text import strip_controls
from sandbox.errors import ClusterError
from sandbox.objectives import EvalContext, evaluate_all, kinds_for
from sandbox.snapshot import ClusterReader

EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a chapter's objectives against a cluster",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chapter", required=True, help="chapter number (1-6) or id")
    p.add_argument("--kubeconfig", required=True, type=Path, help="kubeconfig of the cluster")
    p.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to read the cluster")
    p.add_argument("--drill-started-at", default=None, metavar="ISO8601",
                   help="when a drill ran (for 'recovered' objectives); without it they wait")
    p.add_argument("--chapters-dir", type=Path, default=DEFAULT_CHAPTERS)
    p.add_argument("--personas-dir", type=Path, default=DEFAULT_PERSONAS)


def _fail(message: str) -> int:
    print(f"kepler verify: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_UNREADABLE


def run(args: argparse.Namespace) -> int:
    try:
        course = load_course(args.chapters_dir, args.personas_dir)
    except ContentError as exc:
        first = exc.problems[0] if exc.problems else "invalid content"
        return _fail(f"the course does not load ({len(exc.problems)} problems; first: {first})")
    try:
        index = course.find_chapter(args.chapter)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    chapter = course.chapters[index]
    ctx = EvalContext()
    if args.drill_started_at:
        try:
            when = datetime.fromisoformat(args.drill_started_at.replace("Z", "+00:00"))
        except ValueError:
            return _fail(f"--drill-started-at {args.drill_started_at!r} is not ISO 8601")
        ctx = EvalContext(drill_started_at=when if when.tzinfo else when.replace(tzinfo=UTC))

    tasks = course.tasks(index)
    specs = [o for t in tasks for o in t.objectives]
    try:
        reader = ClusterReader.from_kubeconfig(args.kubeconfig, context=args.context)
        try:
            snapshot = reader.read(kinds_for(specs), timeout=args.timeout)
        finally:
            reader.close()
    except ClusterError as exc:
        return _fail(f"cannot read the cluster: {exc}")

    rows = []
    for task in tasks:
        for spec, result in zip(task.objectives, evaluate_all(task.objectives, snapshot, ctx),
                                strict=True):
            rows.append({"id": result.id, "task": task.id, "title": spec.title,
                         "passed": result.passed, "reason": result.reason})
    passed = sum(r["passed"] for r in rows)
    if args.json:
        print(json.dumps({"chapter": chapter.id, "objectives": rows}, indent=2))
    else:
        print(f"Chapter {chapter.number}: {chapter.title} ({chapter.id})")
        for r in rows:
            mark = "passed" if r["passed"] else "FAILED"
            print(f"  {mark}  {r['task']}/{r['id']}: {r['title']}")
            if not r["passed"]:
                print(f"          {strip_controls(r['reason'])}")  # cluster text
        if not rows:
            print("  (this chapter has no objectives)")
        print(f"{passed} of {len(rows)} objectives passed")
    return EXIT_OK if passed == len(rows) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kepler verify", description=__doc__)
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
