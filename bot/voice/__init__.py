"""The crew's voice: Claude when a key is configured, scripted lines otherwise.

>>> voice = build_voice(api_key=None, model="claude-sonnet-5-5", store=store,
...                     cluster_provider=lambda learner_id: None)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.content.schema import Persona
from bot.engine.ports import Voice
from bot.voice.budget import Budget, BudgetLimits
from bot.voice.memory import Memory
from bot.voice.models import DEFAULT_MODEL, SUMMARY_MODEL
from bot.voice.scripted import CommandWords, ScriptedVoice
from bot.voice.tools import ClusterProvider, ClusterTools

if TYPE_CHECKING:
    import httpx2  # the anthropic SDK's HTTP client (an httpx fork)

    from bot.voice.claude import ClaudeVoice

__all__ = [
    "DEFAULT_MODEL",
    "BudgetLimits",
    "ClaudeVoice",
    "ClusterTools",
    "CommandWords",
    "ScriptedVoice",
    "build_voice",
    "load_personas",
]

log = logging.getLogger("bot.voice")
# Recent turns kept verbatim. They sit in the cached prefix, read at a tenth of the input
# price, while every fold into the summary re-writes the history at 1.25x: fewer, larger
# folds are cheaper (bench/voice_cache_share.py: 1,500 tokens folded every ~5 turns).
MEMORY_TOKENS = 4000


def __getattr__(name: str) -> Any:
    """``ClaudeVoice`` on first use: importing the Anthropic SDK takes seconds, and the
    scripted crew (no key) never needs it."""
    if name == "ClaudeVoice":
        from bot.voice.claude import ClaudeVoice

        return ClaudeVoice
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_personas(directory: Path | None = None) -> dict[str, Persona]:
    """Every ``personas/*.yaml`` (without loading chapters)."""
    from bot.content.course import DEFAULT_PERSONAS
    from bot.content.loader import load_persona

    return {p.id: p for p in map(load_persona, sorted((directory or DEFAULT_PERSONAS)
                                                        .glob("*.yaml")))}  # fmt: skip


def build_voice(
    *,
    api_key: str | None,
    model: str = DEFAULT_MODEL,
    store: Any,
    cluster_provider: ClusterProvider | None = None,
    personas: Mapping[str, Persona] | None = None,
    limits: BudgetLimits | None = None,
    summary_model: str = SUMMARY_MODEL,
    memory_tokens: int = MEMORY_TOKENS,
    max_retries: int = 2,
    timeout: float = 25.0,
    max_tool_rounds: int = 3,
    base_url: str | None = None,
    http_client: httpx2.AsyncClient | None = None,
    seed: int = 0,
    commands: CommandWords | None = None,
) -> Voice:
    """Claude with tools, memory and budgets if ``api_key`` is set; else the scripted crew.

    ``store`` provides transcripts/summaries and voice usage (:class:`bot.store.sqlite.SQLiteStore`).
    ``cluster_provider`` maps a learner id to that learner's ``ApiClient`` (or None).
    ``timeout`` is per HTTP request; whatever it is, the engine shows a scripted line when
    nothing is said within its 15 s reply deadline (``Engine.reply_within``).
    ``commands`` is how the transport spells its commands, for the scripted lines.
    """
    personas = dict(personas) if personas is not None else load_personas()
    scripted = ScriptedVoice(personas, seed=seed, commands=commands)
    if not api_key:
        log.info("voice: scripted (no ANTHROPIC_API_KEY)")
        return scripted
    from anthropic import AsyncAnthropic, Timeout

    from bot.voice.claude import ClaudeVoice

    client = AsyncAnthropic(
        api_key=api_key, base_url=base_url, max_retries=max_retries,
        timeout=Timeout(timeout, connect=min(5.0, timeout)), http_client=http_client,
    )  # fmt: skip
    log.info("voice: claude model=%s", model)
    return ClaudeVoice(
        client, personas=personas, scripted=scripted, model=model, summary_model=summary_model,
        memory=Memory(store, budget_tokens=memory_tokens),
        tools=ClusterTools(cluster_provider) if cluster_provider is not None else None,
        budget=Budget(store, limits), max_tool_rounds=max_tool_rounds,
    )  # fmt: skip
