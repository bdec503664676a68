"""Splitting long text for Discord: limits, paragraphs, code fences carried across pieces."""

from __future__ import annotations

import random

import pytest

from bot.transports.discord.splitting import CONTENT_LIMIT, EMBED_LIMIT, split_text


def _fences(piece: str) -> int:
    return sum(1 for line in piece.split("\n") if line.lstrip().startswith("```"))


def _words(pieces: list[str]) -> list[str]:
    """The text's words without the fences the splitter added."""
    return [w for p in pieces for w in p.split() if not w.startswith("```")]


def test_short_text_is_one_piece():
    assert split_text("hello") == ["hello"]
    assert split_text("") == []


def test_exact_limit_is_one_piece():
    text = "a" * CONTENT_LIMIT
    assert split_text(text) == [text]


def test_prefers_paragraph_breaks():
    para = ("word " * 60).strip()  # 299 chars
    text = "\n\n".join([para] * 10)
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert all(p.endswith("word") and p.startswith("word") for p in pieces)
    assert all(p.count(para) * len(para) + 2 * (p.count(para) - 1) == len(p) for p in pieces)


def test_code_block_is_closed_and_reopened_with_its_language():
    code = "\n".join(f"  key{i}: value-{i}" for i in range(200))
    text = f"Apply this:\n```yaml\n{code}\n```\nThen check."
    pieces = split_text(text, 500)
    assert len(pieces) > 2
    for piece in pieces:
        assert len(piece) <= 500
        assert _fences(piece) % 2 == 0, piece
    assert pieces[1].startswith("```yaml\n")
    assert pieces[0].rstrip().endswith("```")
    assert _words(pieces) == _words([text])


def test_very_long_line_is_cut():
    text = "x" * 5000
    pieces = split_text(text, CONTENT_LIMIT)
    assert all(len(p) <= CONTENT_LIMIT for p in pieces)
    assert "".join(pieces) == text


def test_long_line_inside_code_block_keeps_fences():
    text = "```\n" + "y" * 4500 + "\n```"
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 and _fences(p) == 2 for p in pieces)
    assert "".join(p.replace("```", "").replace("\n", "") for p in pieces) == "y" * 4500


@pytest.mark.parametrize("limit", [200, 700, CONTENT_LIMIT, EMBED_LIMIT])
def test_random_markdown_respects_limit_and_keeps_every_word(limit):
    rng = random.Random(limit)
    blocks = []
    for i in range(120):
        if rng.random() < 0.3:
            body = "\n".join(
                f"line {i}-{j} " + "z" * rng.randint(0, 80) for j in range(rng.randint(1, 30))
            )
            blocks.append(f"```{rng.choice(['', 'yaml', 'bash'])}\n{body}\n```")
        else:
            blocks.append(" ".join(f"w{i}_{j}" for j in range(rng.randint(1, 90))))
    text = "\n\n".join(blocks)
    pieces = split_text(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert all(_fences(p) % 2 == 0 for p in pieces)
    assert _words(pieces) == _words([text])
