"""``kepler play``: the mission in a terminal, against your own kube context."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import math
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from bot.config import Settings
from bot.content.course import Course, load_course
from bot.content.loader import ContentError
from bot.core.text import strip_controls
from bot.engine.engine import Engine, InputError
from bot.engine.live import LiveLoop
from bot.engine.ports import Address, Outgoing
from bot.logs import setup_logging
from bot.store.exclusive import exclusive
from bot.store.sqlite import SQLiteStore
from bot.transports.terminal import COMMANDS, Ledger, TerminalTransport, kubeconfig_line
from bot.voice import BudgetLimits, build_voice
from sandbox.service import ClusterService, connect_local

log = logging.getLogger(__name__)

HELP = """Commands:
  (Enter) or continue   go on when the story pauses
  check                 check your cluster against the task's objectives
  hint                  a pointer for the first open objective (ask again for more)
  status                where you are and what is still open
  catch-up              apply earlier chapters' solutions to your cluster
  profile [FIELD VALUE] show or change how the commander works with you
                        (style: theory|hands-on, review: every-change|independent,
                         feedback: immediate|discover)
  quit                  leave; your progress is saved
Anything else is an answer to the commander's question, or a question for her."""


STORY_NAME = "Alex Chen"
NO_PROFILE = (
    "No profile yet: the commander's opening questions fill it in, or set a field yourself "
    "with `profile FIELD VALUE`."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="play the mission in this terminal against your kube context")
    p.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    p.add_argument("--context", help="kube context to use (default: the current one)")
    p.add_argument("--chapter", help="start at this chapter (number 1-6 or id)")
    p.add_argument("--db", help="state file (default: $KEPLER_DB or ./kepler.db)")
    p.add_argument(
        "--manifests",
        type=Path,
        default=Path("kepler-manifests"),
        help="folder where task manifests are written (default: ./kepler-manifests)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="your name in the story; the crew uses the last word (default: Alex Chen)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=55.0,
        help="longest wait between automatic checks during a task (a change in your cluster "
        "triggers one at once)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    setup_logging(
        settings.log_level if settings.log_level != "INFO" else "WARNING", "text", stream=sys.stderr
    )
    try:
        course = load_course(settings.chapters_dir, settings.personas_dir)
    except ContentError as exc:
        print(exc, file=sys.stderr)
        return 1
    return asyncio.run(_play(args, settings, course))


async def _play(args: argparse.Namespace, settings: Settings, course: Course) -> int:

    console = Console(highlight=False)
    db = args.db or settings.db
    # Progress belongs to the Unix account; the story's name is the seed's unless --name says.
    user = os.environ.get("USER") or getpass.getuser() or "learner"
    learner_id = f"terminal:{user}"
    cluster = connect_local(
        kubeconfig=args.kubeconfig, context=args.context, timeout=settings.check_timeout
    )
    with exclusive(db):
        return await _session(args, settings, course, console, db, user, learner_id, cluster)


async def _session(
    args: argparse.Namespace,
    settings: Settings,
    course: Course,
    console: Console,
    db: str,
    user: str,
    learner_id: str,
    cluster: ClusterService,
) -> int:
    async with SQLiteStore(db) as store:
        transport = TerminalTransport(
            course,
            Ledger(Path(db + ".printed")),
            args.manifests,
            console,
            kubeconfig_hint=kubeconfig_line(args.kubeconfig, os.environ.get("KUBECONFIG")),
        )
        voice = build_voice(
            api_key=settings.anthropic_api_key or None,
            model=settings.model,
            store=store,
            cluster_provider=cluster.client_for,
            limits=BudgetLimits(
                learner_daily_tokens=settings.voice_daily_tokens,
                guild_daily_tokens=settings.voice_guild_daily_tokens,
                requests_per_minute=settings.voice_per_minute,
            ),
            commands=COMMANDS,
        )
        engine = Engine(
            course, store, cluster, voice, transport, fallback=getattr(voice, "scripted", None)
        )
        address = Address("terminal", "solo", user)
        resumed = await store.find_mission(address)
        await engine.deliver_all()
        if resumed is not None:
            if args.chapter is not None:
                await engine.jump(resumed.id, args.chapter)
            else:
                [note] = await engine.status(resumed.id, learner_id)
                console.print(Text(f"— Resuming your mission. {note.text}", style="dim"))
        problem = await cluster.probe(learner_id)
        if problem:
            console.print(Text(strip_controls(problem), style="yellow"))
        name = args.name or STORY_NAME
        mission = await engine.start(address, learner_id, name, chapter=args.chapter)
        console.print(Text("Type 'help' for commands.", style="dim"))
        # The shared live loop: a change in your cluster re-checks the open task at once.
        # You work in another window, so being quiet here is not being idle.
        live = LiveLoop(
            engine, cluster, window=args.poll, idle_after=math.inf,
            include=lambda learner: learner == learner_id,
        )  # fmt: skip
        watching = asyncio.create_task(live.run(every=1.0))
        try:
            return await _loop(engine, transport, mission.id, learner_id, console)
        finally:
            watching.cancel()
            await live.close()


async def _loop(
    engine: Engine, transport: TerminalTransport, mission_id: int, learner_id: str, console: Console
) -> int:
    loop = asyncio.get_running_loop()
    while True:
        mission = await engine.store.get_mission(mission_id)
        if mission is not None and mission.state == "done":
            console.print(Text("Mission complete. Your progress is saved.", style="bold green"))
            return 0
        console.print(Text("› ", style="bold"), end="")
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:  # end of input
            console.print()
            return 0
        text = line.strip()
        word, _, rest = text.partition(" ")
        command = word.lower()
        try:
            replies: list[Outgoing]
            if command in ("quit", "exit", "q"):
                console.print(Text("Progress saved. Run `kepler play` to resume.", style="dim"))
                return 0
            if command in ("", "continue", "c", "next"):
                replies = await engine.continue_(mission_id, learner_id)
            elif command == "check":
                replies = await engine.check(mission_id, learner_id)
            elif command == "hint":
                replies = await engine.hint(mission_id, learner_id)
            elif command == "status":
                replies = await engine.status(mission_id, learner_id)
            elif command in ("catch-up", "catchup"):
                replies = await engine.catch_up(mission_id, learner_id)
            elif command == "help":
                replies = [Outgoing(kind="notice", text=HELP)]
            elif command == "profile":
                field, _, value = rest.partition(" ")
                profile = await engine.profile(learner_id, field or None, value or None)
                replies = [
                    Outgoing(
                        kind="notice",
                        text="\n".join(f"{k}: {v}" for k, v in profile.items())
                        or NO_PROFILE,
                    )
                ]
            else:
                replies = await engine.say(mission_id, learner_id, text)
        except InputError as exc:
            replies = [Outgoing(kind="notice", text=str(exc))]
        for reply in replies:
            transport.show(reply)
