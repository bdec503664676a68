"""Split long text into Discord-sized pieces without breaking code blocks.

Pure functions. A piece that ends inside a fenced code block gets a closing fence, and the
next piece reopens it with the same opener (```yaml stays ```yaml), so every piece renders on
its own. Pieces break at paragraph ends when possible, then at line ends, then mid-line.
"""

from __future__ import annotations

CONTENT_LIMIT = 2000  # message content
EMBED_LIMIT = 4096  # embed description

_FENCE = "```"


def split_text(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters each; fences balanced in every piece."""
    if limit < 40:
        raise ValueError("limit too small to carry code fences")
    text = text.strip("\n")
    if len(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    lines: list[str] = []
    size = 0  # characters in ``lines`` joined with newlines
    fence: str | None = None  # the opener of the block we are inside
    piece_fence: str | None = None  # the block open at the start of the current piece
    last_break = -1  # index in ``lines`` after which a paragraph ends (outside code)

    def flush(upto: int | None = None) -> None:
        """Emit lines[:upto] as a piece; keep the rest for the next one."""
        nonlocal lines, size, piece_fence, last_break
        upto = len(lines) if upto is None else upto
        head, rest = lines[:upto], lines[upto:]
        open_at_end = _open_fence(head, piece_fence)
        body = "\n".join(head).strip("\n")
        if open_at_end is not None:
            body += "\n" + _FENCE
        if body.strip() and body.strip() != _FENCE:
            pieces.append(body)
        lines = ([open_at_end] if open_at_end is not None else []) + rest
        while lines and not lines[0].strip() and open_at_end is None:
            lines.pop(0)
        piece_fence = open_at_end
        size = len("\n".join(lines))
        last_break = -1

    for raw in text.split("\n"):
        for line in _chop(raw, limit - len(_FENCE) - 2 - _max_opener(fence, raw)):
            reserve = len(_FENCE) + 1 if (fence is not None or _toggles(line)) else 0
            added = len(line) + (1 if lines else 0)
            if lines and size + added + reserve > limit:
                if fence is None and last_break > 0 and last_break >= len(lines) // 2:
                    flush(last_break)
                else:
                    flush()
                added = len(line) + (1 if lines else 0)
                if lines and size + added + reserve > limit:
                    flush()
                    added = len(line)
            lines.append(line)
            size += added
            if _toggles(line):
                fence = line.strip() if fence is None else None
            if fence is None and not line.strip():
                last_break = len(lines)
    flush()
    return pieces


def _toggles(line: str) -> bool:
    return line.lstrip().startswith(_FENCE)


def _open_fence(lines: list[str], start: str | None) -> str | None:
    fence = start
    for i, line in enumerate(lines):
        if i == 0 and start is not None and line == start:
            continue  # the reopened fence carried over from the previous piece
        if _toggles(line):
            fence = line.strip() if fence is None else None
    return fence


def _max_opener(fence: str | None, line: str) -> int:
    return max(len(fence or ""), len(line.strip()) if _toggles(line) else 0, len(_FENCE)) + 1


def _chop(line: str, width: int) -> list[str]:
    """A line longer than ``width``, cut at spaces where possible."""
    width = max(width, 10)
    out: list[str] = []
    while len(line) > width:
        cut = line.rfind(" ", width // 2, width)
        cut = cut if cut > 0 else width
        out.append(line[:cut])
        line = line[cut:].lstrip(" ") if cut < len(line) and line[cut] == " " else line[cut:]
    out.append(line)
    return out
