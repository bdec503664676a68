"""The terminal transport: the story in colour, tasks as highlighted Markdown, manifests on disk.

Delivery is at least once from the outbox; a ledger file of printed keys (appended and synced
right after each print) turns a re-send after a crash into a no-op, so a restarted
``kepler play`` neither repeats nor loses a line.

Layout rules: only dialogue that opens with a quote carries the speaker's name (a line that
starts "Commander Torres' jaw tightens." names its speaker itself); check results are one
line per objective, failures first, and never inside a box (a box whose emoji a terminal
draws narrower or wider than rich counts overflows the screen); text streamed from the crew
wraps at word boundaries.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.content.course import Course
from bot.core.text import scrub, strip_controls
from bot.engine.ports import Address, Outgoing
from bot.voice.scripted import CommandWords

# How the crew should quote this transport's commands (the scripted voice uses these).
COMMANDS = CommandWords(check="`check`", hint="`hint`", proceed="press Enter")
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")
_QUOTES = ('"', "\u201c", "'")


def inline(text: str, style: str = "") -> Text:
    """Text with the seed's inline Markdown (**bold**, `code`) as styles, never raw markers."""
    out = Text(style=style)
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(text[pos : m.start()])
        if m.group(1) is not None:
            out.append(m.group(1), style="bold")
        else:
            out.append(m.group(2), style="bold cyan")
        pos = m.end()
    out.append(text[pos:])
    return out


def kubeconfig_line(kubeconfig: Path | None, env_kubeconfig: str | None) -> str:
    """What a learner types so their own kubectl reads the cluster ``kepler play`` watches."""
    if kubeconfig is not None:
        path = kubeconfig.expanduser().resolve()
        return (f"kepler play is watching the cluster in {path}. For your own kubectl, run: "
                f"export KUBECONFIG={path}   (PowerShell: $env:KUBECONFIG = \"{path}\")")
    if env_kubeconfig:
        return (f"kepler play is watching your current context from KUBECONFIG={env_kubeconfig}; "
                "your shell already has it, so skip the export.")
    return ("kepler play is watching the current context of ~/.kube/config, which kubectl uses "
            "by default: skip the export.")

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
        *,
        kubeconfig_hint: str = "",
    ):
        self.course = course
        self.ledger = ledger
        self.manifests_dir = manifests_dir
        self.console = console or Console(highlight=False)
        self.kubeconfig_hint = kubeconfig_hint
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
        label = f"{name}: "
        self.console.print(Text(label, style=f"bold {colour}"), end="")
        wrap = _WordWrap(self.console, start=len(label))
        parts: list[str] = []
        async for chunk in chunks:
            parts.append(chunk)
            wrap.feed(strip_controls(chunk))
        wrap.close()
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
            c.print(inline(message.text, f"bold {colour}"))
        elif kind == "line" and message.style == "dialogue":
            c.print(self._spoken(message.text, name, colour))
        elif kind == "line" and message.style == "command":
            c.print(Text.assemble(("  $ ", "dim"), (message.text, "bold cyan")))
        elif kind == "line":
            c.print(inline(message.text))
        elif kind == "question":
            c.print(self._spoken(message.text, name, colour))
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
            if self.kubeconfig_hint and "export KUBECONFIG" in message.text:
                c.print(Text(self.kubeconfig_hint, style="bold"))
            c.print(Text("Commands: check · hint · status · help", style="dim"))
        elif kind == "review":
            table = Table(title="Crew assessment", show_lines=False)
            table.add_column("Aspect", style="bold")
            table.add_column("Assessment")
            results = message.data.get("results") or []
            if results:
                table.add_column("Result")
            for i, (aspect, assessment) in enumerate(message.data.get("rows", [])):
                row = [aspect, assessment] + ([results[i]] if i < len(results) else [])
                table.add_row(*row)
            c.print(table)
        elif kind == "summary":
            c.print(Markdown(message.text))
        elif kind == "status" and "lines" in message.data:
            self._check_lines(message.data["lines"], message.data.get("footer", ""))
        elif kind in ("status", "hint", "reply"):
            c.print(Text(f"{name or 'ARIA'}:", style=f"bold {colour}"))
            c.print(Markdown(message.text))
        elif kind == "board":
            c.print(Panel(Markdown(message.text), title="Crew board", border_style="green"))
        else:
            c.print(Text(message.text, style="dim"))
        self._after(message)

    def _spoken(self, text: str, name: str, colour: str) -> Text:
        """Dialogue carries its speaker's name only when it opens with the words spoken."""
        if name and text.lstrip().startswith(_QUOTES):
            label = Text(f"{name}: ", style=f"bold {colour}")
            return Text.assemble(label, inline(text))
        return inline(text)

    def _check_lines(self, lines: list[dict[str, Any]], footer: str) -> None:
        """One line per objective (failures come first from the engine), then the footer."""
        c = self.console
        c.print(Text("Check results", style="bold cyan"))
        for line in lines:
            text = Text.assemble(f"{line['mark']} ", (line["title"], "bold"))
            if line.get("reason"):
                text.append(f" — {line['reason']}", style="red" if not line["passed"] else "")
            c.print(text)
        if footer:
            c.print(Text(footer, style="green" if all(x["passed"] for x in lines) else "dim"))

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


class _WordWrap:
    """Prints streamed text, breaking lines only between words (chunks split words anywhere)."""

    def __init__(self, console: Console, start: int = 0):
        self.console = console
        self.column = start
        self.pending = ""

    def feed(self, chunk: str) -> None:
        self.pending += chunk
        *words, self.pending = re.split(r"(\s+)", self.pending)
        for word in words:
            self._emit(word)

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
        self.pending = ""
        self.console.print()

    def _emit(self, word: str) -> None:
        width = max(20, self.console.width)
        if not word:
            return
        if word.isspace():
            if "\n" in word:
                self.console.print("\n" * word.count("\n"), end="", markup=False, highlight=False)
                self.column = 0
            elif self.column and self.column + 1 < width:
                self.console.print(" ", end="", markup=False, highlight=False)
                self.column += 1
            elif self.column:
                self.console.print(end="\n")
                self.column = 0
            return
        if self.column and self.column + len(word) > width:
            self.console.print(end="\n")
            self.column = 0
        self.console.print(word, end="", markup=False, highlight=False)
        self.column += len(word)
