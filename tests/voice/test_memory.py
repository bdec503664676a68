"""Memory: recent turns within a budget, older ones folded; shared scopes stay private."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from bot.store.records import TranscriptEntry
from bot.store.sqlite import SQLiteStore
from bot.voice.memory import Memory, estimate_tokens


async def test_recent_turns_fit_the_budget_and_the_rest_is_summarised(store: SQLiteStore) -> None:
    for i in range(10):
        await store.add_transcript("learner:chen", "learner", "chen", f"Question {i}? " + "x" * 200)
        await store.add_transcript("learner:chen", "crew", "torres", f"Answer {i}. " + "y" * 200)
    memory = Memory(store, budget_tokens=300)
    recall = await memory.recall("learner:chen", "chen")
    assert sum(estimate_tokens(e.content) for e in recall.turns) <= 300
    assert recall.turns and recall.turns[0].role == "learner"
    assert recall.turns[-1].content.startswith("Answer 9.")
    assert "Question 0?" in recall.summary and "Answer 0." in recall.summary
    summary, upto = await store.summary("learner:chen")
    assert summary == recall.summary and upto == recall.turns[0].id - 1
    # Next time nothing is folded again: the summary is stable.
    again = await memory.recall("learner:chen", "chen")
    assert again.summary == recall.summary and [e.id for e in again.turns] == [
        e.id for e in recall.turns
    ]


async def test_current_message_already_stored_is_not_repeated(store: SQLiteStore) -> None:
    await store.add_transcript("learner:chen", "learner", "chen", "first")
    await store.add_transcript("learner:chen", "crew", "torres", "reply")
    await store.add_transcript("learner:chen", "learner", "chen", "what now?")
    recall = await Memory(store).recall("learner:chen", "chen", current="what now?")
    assert [e.content for e in recall.turns] == ["first", "reply"]


async def test_shared_scope_keeps_only_own_exchanges(store: SQLiteStore) -> None:
    scope = "mission:7"
    await store.add_transcript(scope, "learner", "rivera", "my token is hunter2, help")
    await store.add_transcript(scope, "crew", "torres", "Rivera, never paste that.")
    await store.add_transcript(scope, "learner", "chen", "how do I scale?")
    await store.add_transcript(scope, "crew", "torres", "Chen, look at replicas.")
    recall = await Memory(store).recall(scope, "chen")
    assert [e.content for e in recall.turns] == ["how do I scale?", "Chen, look at replicas."]


async def test_model_summariser_is_used_when_given(store: SQLiteStore) -> None:
    for i in range(6):
        await store.add_transcript("learner:chen", "learner", "chen", "q" * 400 + str(i))
        await store.add_transcript("learner:chen", "crew", "torres", "a" * 400 + str(i))
    seen: list[int] = []

    async def summarise(previous: str, entries: Sequence[TranscriptEntry]) -> str:
        seen.append(len(entries))
        return "- Chen asked about q; Torres answered a."

    recall = await Memory(store, budget_tokens=250).recall(
        "learner:chen", "chen", summariser=summarise
    )
    assert seen and recall.summary == "- Chen asked about q; Torres answered a."


async def test_folding_happens_in_steps_so_the_kept_turns_stay_put(store: SQLiteStore) -> None:
    """The kept turns open the prompt's cached prefix: over budget they are folded down to
    half of it, so the next few turns keep the same start instead of sliding every turn."""
    memory = Memory(store, budget_tokens=400)
    starts = []
    for i in range(12):
        await store.add_transcript("learner:chen", "learner", "chen", f"Q{i} " + "x" * 200)
        await store.add_transcript("learner:chen", "crew", "torres", f"A{i} " + "y" * 200)
        recall = await memory.recall("learner:chen", "chen")
        assert sum(estimate_tokens(e.content) for e in recall.turns) <= 400
        starts.append(recall.turns[0].id)
    changes = sum(1 for a, b in pairwise(starts) if a != b)
    assert changes <= len(starts) // 2  # sliding by one exchange would change it 11 times
