"""The terminal transport: the story in colour, tasks as highlighted Markdown, manifests on disk.

Delivery is at least once from the outbox; a ledger file of printed keys (appended and synced
right after each print) turns a re-send after a crash into a no-op, so a restarted
``kepler play`` neither repeats nor loses a line.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.content.course import Course
from bot.core.text import scrub, strip_controls
from bot.engine.ports import Address, Outgoing


def _outbox_id(key: str) -> int:
    """N of an outbox key ``out-N`` or ``out-N.piece``; 0 for anything else."""
    head = key.removeprefix("out-").split(".", 1)[0]
    return int(head) if key.startswith("out-") and head.isdigit() else 0


class Ledger:
    """Keys already shown, one per line, synced to disk after each append."""

    def __init__(self, path: Path):
        self.path = path
        self.keys: set[str] = set()
        if path.exists():
            self.keys = set(path.read_text(encoding="utf-8").split())

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def forget(self, upto: int) -> None:
        """Drop keys ``out-N`` (and ``out-N.piece``) with N <= ``upto``: the engine pruned
        those messages, so they are never delivered again. Rewritten atomically."""
        keep = {k for k in self.keys if not _outbox_id(k) or _outbox_id(k) > upto}
        if keep == self.keys:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(k + "\n" for k in sorted(keep)), encoding="utf-8")
        os.replace(tmp, self.path)
        self.keys = keep

    def add(self, key: str) -> None:
        self.keys.add(key)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())


class TerminalTransport:
    def __init__(
        self,
        course: Course,
        ledger: Ledger,
        manifests_dir: Path,
        console: Console | None = None,
    ):
        self.course = course
        self.ledger = ledger
        self.manifests_dir = manifests_dir
        self.console = console or Console(highlight=False)
        self.last_question: Outgoing | None = None

    # --- Transport ----------------------------------------------------------------------

    async def forget_sent(self, upto: int) -> None:
        self.ledger.forget(upto)

    async def deliver(self, address: Address, message: Outgoing, key: str) -> None:
        if key in self.ledger:
            return
        self.show(message)
        self.ledger.add(key)

    async def stream(self, address: Address, speaker: str, chunks: AsyncIterator[str]) -> str:
        persona = self.course.persona(speaker)
        colour = persona.colour if persona else "white"
        name = persona.name if persona else speaker
        self.console.print(Text(f"{name}: ", style=f"bold {colour}"), end="")
        parts: list[str] = []
        async for chunk in chunks:
            parts.append(chunk)
            self.console.print(strip_controls(chunk), end="", markup=False, highlight=False)
        self.console.print()
        return "".join(parts)

    # --- rendering ----------------------------------------------------------------------

    def show(self, message: Outgoing) -> None:
        # Model replies, cluster text (pod names, reasons) and learners' names come from
        # outside: no escape sequence reaches the terminal.
        message = replace(message, text=strip_controls(message.text), data=scrub(message.data))
        c = self.console
        persona = self.course.persona(message.speaker)
        colour = persona.colour if persona else "white"
        name = persona.name if persona else (message.speaker or "")
        kind = message.kind
        if kind == "line" and message.style == "scene":
            c.print(Panel(Text(message.text, style="italic"), border_style="blue", title="Scene"))
        elif kind == "line" and message.style == "stage":
            c.print(Text(message.text, style=f"bold {colour}"))
        elif kind == "line" and message.style == "dialogue":
            c.print(Text.assemble((f"{name}: ", f"bold {colour}"), message.text))
        elif kind == "line":
            c.print(Text(message.text))
        elif kind == "question":
            c.print(Text.assemble((f"{name}: ", f"bold {colour}"), message.text))
            for i, choice in enumerate(message.data.get("choices", []), 1):
                c.print(f"   {i}) {choice['label']}", markup=False)
            c.print(
                Text(
                    "   (answer in your own words"
                    + (", or pick a number)" if message.data.get("choices") else ")"),
                    style="dim",
                )
            )
            self.last_question = message
        elif kind == "task":
            c.print(
                Panel(
                    Markdown(message.text, code_theme="monokai"),
                    title="Task",
                    border_style="yellow",
                )
            )
            self._write_manifests(message)
            c.print(Text("Commands: check · hint · status · help", style="dim"))
        elif kind == "review":
            table = Table(title="Crew assessment", show_lines=False)
            table.add_column("Aspect", style="bold")
            table.add_column("Assessment")
            for aspect, assessment in message.data.get("rows", []):
                table.add_row(aspect, assessment)
            c.print(table)
        elif kind == "summary":
            c.print(Markdown(message.text))
        elif kind in ("status", "hint", "reply"):
            label = name or "ARIA"
            c.print(Panel(Markdown(message.text), title=label, border_style=colour))
        elif kind == "board":
            c.print(Panel(Markdown(message.text), title="Crew board", border_style="green"))
        else:
            c.print(Text(message.text, style="dim"))
        self._after(message)

    def _after(self, message: Outgoing) -> None:
        if "continue" in message.actions:
            self.console.print(Text("   [Enter] to continue", style="dim"))

    def _write_manifests(self, message: Outgoing) -> None:
        written = []
        for rel in message.attachments:
            source = self.course.resolve(rel)
            target = self.manifests_dir / Path(rel).parent.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.exists():
                shutil.copyfile(source, target)
                written.append(target)
        if written:
            folder = written[0].parent
            self.console.print(
                Text(
                    f"Manifests written to {folder}/ — apply with: kubectl apply -f {folder}/<file>",
                    style="dim",
                )
            )
