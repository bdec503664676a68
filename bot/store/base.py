"""The store's interface: what the engine, voice and adapters need from persistence.

:class:`bot.store.sqlite.SQLiteStore` is the embedded implementation; a server database can
replace it by providing the same methods. ``unit()`` groups calls into one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bot.core.values import Address, Outgoing, Pacing
from bot.store.records import Learner, Member, Mission, ObjectiveStatus, OutboxItem, TranscriptEntry
from sandbox.records import SandboxRecord, WaitlistEntry


class Store(Protocol):
    def unit(self) -> AbstractAsyncContextManager[None]: ...

    async def ensure_learner(self, learner_id: str, name: str) -> Learner: ...

    async def get_learner(self, learner_id: str) -> Learner | None: ...

    async def set_profile(self, learner_id: str, field: str, value: str) -> None: ...

    async def create_mission(
        self,
        address: Address,
        *,
        guild: str | None = None,
        pacing: Pacing = "together",
        quorum: float = 0.5,
        chapter: int = 0,
        parent_id: int | None = None,
    ) -> Mission: ...

    async def get_mission(self, mission_id: int) -> Mission | None: ...

    async def find_mission(self, address: Address) -> Mission | None: ...

    async def missions_of(self, learner_id: str) -> list[Mission]: ...

    async def children(self, mission_id: int) -> list[Mission]: ...

    async def all_missions(self) -> list[Mission]: ...

    async def save_mission(self, mission: Mission) -> None: ...

    async def update_mission(self, mission_id: int, **changes: Any) -> None:
        """Write only these fields (chapter, beat, emitted, state, data, pacing, quorum)."""
        ...

    async def add_member(self, mission_id: int, learner_id: str) -> None: ...

    async def leave(self, mission_id: int, learner_id: str) -> None: ...

    async def touch(self, mission_id: int, learner_id: str, at: float | None = None) -> None: ...

    async def members(self, mission_id: int) -> list[Member]: ...

    async def running_members(self) -> dict[int, list[Member]]:
        """Every running mission's members (left ones included), in one query."""
        ...

    async def pass_task(self, learner_id: str, task_key: str) -> None: ...

    async def passed(self, learner_ids: Iterable[str], task_key: str) -> set[str]: ...

    async def save_objectives(
        self, learner_id: str, task_key: str, results: Iterable[tuple[str, bool, str]]
    ) -> None: ...

    async def objectives(self, learner_id: str, task_key: str) -> dict[str, ObjectiveStatus]: ...

    async def next_hint_tier(self, learner_id: str, task_key: str, objective_id: str) -> int: ...

    async def save_answer(
        self, mission_id: int, beat_key: str, learner_id: str, text: str
    ) -> None: ...

    async def answered(self, mission_id: int, beat_key: str) -> dict[str, str]: ...

    async def enqueue(self, mission_id: int, messages: Iterable[Outgoing]) -> None: ...

    async def pending(self, mission_id: int) -> list[OutboxItem]: ...

    async def missions_with_pending(self) -> list[int]: ...

    async def mark_sent(self, item_id: int) -> None: ...

    async def prune_outbox(self, sent_before: float) -> int:
        """Delete messages delivered before ``sent_before``; the highest id deleted, or 0."""
        ...

    async def prune_ledger(self, scope: str, upto: int) -> None:
        """Forget a transport's sent marks for outbox ids up to ``upto``."""
        ...

    async def add_transcript(
        self, scope: str, role: str, speaker: str | None, content: str, tokens: int = 0
    ) -> int: ...

    async def transcript(self, scope: str, after_id: int = 0) -> list[TranscriptEntry]: ...

    async def summary(self, scope: str) -> tuple[str, int]: ...

    async def set_summary(self, scope: str, summary: str, upto_id: int) -> None: ...

    async def get_setting(self, scope: str, key: str) -> str | None: ...

    async def set_setting(self, scope: str, key: str, value: str | None) -> None: ...

    # --- voice usage ----------------------------------------------------------------------

    async def add_voice_usage(
        self,
        day: str,
        learner_id: str,
        guild: str | None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        requests: int = 1,
    ) -> None: ...

    async def voice_usage(
        self, day: str, *, learner_id: str | None = None, guild: str | None = None
    ) -> dict[str, int]: ...

    # --- sandboxes ------------------------------------------------------------------------

    async def get_sandbox(self, learner_id: str) -> SandboxRecord | None: ...

    async def save_sandbox(self, record: SandboxRecord) -> None: ...

    async def delete_sandbox(self, learner_id: str) -> None: ...

    async def sandboxes(self, guild: str | None = None) -> list[SandboxRecord]:
        """All records, or those of one server (``guild``)."""
        ...

    async def add_waiting(self, learner_id: str, guild: str | None, at: float) -> int:
        """Put a learner on the waitlist (once); return their 1-based position."""
        ...

    async def remove_waiting(self, learner_id: str) -> None: ...

    async def waitlist(self, guild: str | None = None) -> list[WaitlistEntry]: ...

    # --- terminal links -------------------------------------------------------------------

    async def spend_link(self, digest: str, expires: float, now: float) -> bool:
        """Mark a link spent (by a digest, never the token); False when it was spent already.
        Rows past their expiry are deleted on the way (an expired link is refused anyway)."""
        ...

    async def save_terminal_session(
        self, digest: str, learner_id: str, generation: str, opened: float
    ) -> None:
        """Keep a browser terminal session (by a digest of its cookie) while its sandbox
        generation lives; sessions of a generation that is gone are deleted on the way."""
        ...

    async def terminal_session(self, digest: str) -> tuple[str, str, float] | None:
        """(learner, generation, opened) of a kept session."""
        ...

    async def drop_terminal_session(self, digest: str) -> None: ...
