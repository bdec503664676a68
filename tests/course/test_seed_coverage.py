"""The whole story is in the course: every scene, stage direction, line of dialogue and
narration of the seed appears verbatim (whitespace aside) in the loaded chapters."""

from __future__ import annotations

import pytest

from bot.content.course import load_course
from bot.content.schema import Line
from tests.course.seedtext import (
    line_sequences,
    missing_story,
    missing_tables,
    norm,
    parse_seed,
    seed_path,
)

SEED = seed_path()
pytestmark = pytest.mark.skipif(
    SEED is None,
    reason="seed story not found: expected ../shared/seeds/000_2bb9112117a961ba.txt beside the "
    "checkout, or a path in KEPLER_SEED",
)


@pytest.fixture(scope="module")
def story():
    assert SEED is not None
    return parse_seed(SEED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def course():
    return load_course()


def test_seed_parses_into_a_whole_story(story):
    # Guards the parser itself: an extractor that finds nothing would pass everything.
    assert len(story.scenes) == 8
    assert len(story.stages) == 48
    assert len(story.dialogue) == 57
    assert len(story.narration) == 15
    assert len(story.review_rows) == 4 * 5 + 5
    assert len(story.headed_lists) == 6
    assert any(d.startswith('"Chen, I need you to listen carefully.') for d in story.dialogue)
    # Task sections are instructions, not story.
    assert not any("kubectl" in t for t in story.narration + story.dialogue)


def test_every_story_paragraph_is_in_the_course(story, course):
    missing = missing_story(story, line_sequences(course))
    assert not missing, "seed text missing from chapters/:\n" + "\n".join(missing)


def test_review_tables_and_skills_summary_are_in_the_course(story, course):
    missing = missing_tables(story, course)
    assert not missing, "seed tables/lists missing from chapters/:\n" + "\n".join(missing)


@pytest.mark.parametrize("style", ["scene", "stage", "say", "narration"])
def test_checker_notices_a_missing_line(story, course, style):
    """Drop the first line of each style from the course: the check must report it."""
    sequences = line_sequences(course)
    for s, seq in enumerate(sequences):
        for i, line in enumerate(seq):
            if getattr(line, style) is not None and norm(line.text) in _seed_texts(story):
                trimmed = [list(q) for q in sequences]
                del trimmed[s][i]
                assert missing_story(story, trimmed), f"removing {line.text[:60]!r} went unnoticed"
                return
    pytest.fail(f"no {style} line taken whole from the seed")


def test_checker_notices_a_changed_word(story, course):
    sequences = [list(q) for q in line_sequences(course)]
    for seq in sequences:
        for i, line in enumerate(seq):
            if line.say and "Chen" in line.say:
                seq[i] = Line(say=line.say.replace("Chen", "Alex", 1), speaker=line.speaker)
                assert missing_story(story, sequences)
                return
    pytest.fail("no dialogue addressing Chen found")


def _seed_texts(story) -> set[str]:
    return set(story.scenes + story.stages + story.dialogue + story.narration)


def test_persona_examples_are_quoted_from_the_seed(course):
    assert SEED is not None
    seed = norm(SEED.read_text(encoding="utf-8"))
    for persona in course.personas.values():
        for example in persona.examples:
            assert norm(example) in seed, f"{persona.id}: example not in the seed: {example[:80]}"
