"""The embedded store: one SQLite file in WAL mode.

Writes go through one connection guarded by a lock (:class:`~bot.store.writer.Writer`: a
unit runs on the event loop, a thread takes only what must wait). ``async with store.unit():``
groups writes into one transaction (progress and the outbox change together, or not at all);
calls outside a unit are their own transaction. Units nest: an inner one joins the outer, in
the same task only (a task started inside a unit is not in it). Reads
inside a unit use the writing connection (they see the unit's own changes); reads outside one
use a second, read-only connection through aiosqlite that sees the last commit and never
waits for the lock (an in-memory database has only the one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.core.values import Address, Outgoing, Pacing
from bot.store.errors import StoreCorrupt
from bot.store.migrations import MIGRATIONS
from bot.store.records import (
    Learner,
    Member,
    Mission,
    ObjectiveStatus,
    OutboxItem,
    TranscriptEntry,
)
from bot.store.writer import Writer, is_busy
from sandbox.records import SandboxRecord, WaitlistEntry

_MISSION_COLUMNS = frozenset({"chapter", "beat", "emitted", "state", "data", "pacing", "quorum"})

# The task whose unit of work is open in this context. A task created inside a unit copies
# the context, and with it this variable: it must not count as inside the unit (it would
# write without the lock, into whatever transaction is open then, or none), so being inside
# means being that very task.
_unit_task: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "kepler_store_unit", default=None
)


def _in_unit() -> bool:
    owner = _unit_task.get()
    return owner is not None and owner is asyncio.current_task()


async def _connect(path: str) -> aiosqlite.Connection:
    pending = aiosqlite.connect(path, isolation_level=None)
    # aiosqlite's worker thread is not a daemon: a store someone forgot to close would keep
    # the interpreter from exiting. Committed data is safe in the WAL either way.
    pending._thread.daemon = True
    conn = await pending
    conn.row_factory = aiosqlite.Row
    return conn


def _quick_reader(path: str) -> sqlite3.Connection:
    """A read-only connection used on the loop: never waits for a lock (``timeout=0``)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA query_only=ON")
    return db


class SQLiteStore:
    def __init__(self, path: str | Path, *, migrations: Sequence[str] = MIGRATIONS):
        self.path = str(path)
        self._migrations = migrations
        self._conn: Writer | None = None
        self._reader: aiosqlite.Connection | None = None  # scans outside a unit (file only)
        self._quick: sqlite3.Connection | None = None  # reads by key outside a unit, on the loop
        self._lock: Any = None
        self._group: list[tuple[str, tuple[Any, ...], asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None  # commits self._group

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> SQLiteStore:
        import asyncio

        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = Writer(self.path)
        self._lock = asyncio.Lock()
        try:
            await self._conn.open()
            # (the busy timeout is the writer's: it waits only on its thread)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                await self._conn.execute_waiting(f"PRAGMA {pragma}")
            await self.migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            if isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError):
                raise  # locked, read-only, a bad migration: not a damaged file
            raise StoreCorrupt(
                f"{self.path} is not a readable Kepler database ({exc}). Move it aside and "
                f"restore your last backup: kepler restore BACKUP --db {self.path} (backups "
                "are in backups/ next to the database unless KEPLER_BACKUP_DIR says otherwise)"
            ) from None
        if self.path != ":memory:":
            # Reads outside a unit go to a second connection: in WAL mode it sees the last
            # commit without waiting for the unit in progress, so a thousand learners' reads
            # do not queue behind each other's writes on the one writing connection.
            self._reader = await _connect(self.path)
            await self._reader.execute("PRAGMA query_only=ON")
            await self._reader.execute("PRAGMA busy_timeout=5000")
            self._quick = await asyncio.to_thread(_quick_reader, self.path)
        return self

    async def close(self) -> None:
        if self._committer is not None:  # writes already queued are committed first
            await asyncio.shield(self._committer)
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._quick is not None:
            self._quick.close()
            self._quick = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> SQLiteStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def conn(self) -> Writer:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def schema_version(self) -> int:
        row = (await self.conn.execute_waiting("PRAGMA user_version")).fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        """Apply every migration past the file's version, each in its own transaction."""
        version = await self.schema_version()
        for number, script in enumerate(self._migrations[version:], start=version + 1):
            await self.conn.script(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        return await self.schema_version()

    # --- transactions -------------------------------------------------------------------

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[None]:
        if _in_unit():
            yield
            return
        await self._lock.acquire()
        locked = True
        token = _unit_task.set(asyncio.current_task())
        try:
            try:
                # Inside the try: a task cancelled while BEGIN is queued on the database thread
                # (the live loop stops a watcher) still rolls back, or the next unit would find
                # a transaction open. ROLLBACK is shielded from a second cancel; it queues after
                # BEGIN, and finds nothing to undo when BEGIN never went.
                await self.conn.begin()
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.OperationalError):  # no transaction began
                    await asyncio.shield(self.conn.execute_waiting("ROLLBACK"))
                raise
            # COMMIT (bot/store/writer.py): on the loop, unless something is queued on the
            # thread; then it queues there too, and the lock goes at once: the next unit's
            # BEGIN queues behind it (first in, first out), instead of this unit holding the
            # lock through a disk sync and the loop's wake-up after it.
            if self.conn.idle:
                try:
                    self.conn.execute("COMMIT")
                    return
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        self.conn.execute("ROLLBACK")
                        raise
            commit = self.conn.submit_waiting("COMMIT")
            self._lock.release()
            locked = False
            try:
                await commit
            except sqlite3.OperationalError:
                # nothing was written: undo, so the next unit does not find it open
                with contextlib.suppress(sqlite3.OperationalError):
                    await asyncio.shield(self.conn.submit_waiting("ROLLBACK"))
                raise
        finally:
            _unit_task.reset(token)
            if locked:
                self._lock.release()

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        if _in_unit():
            return self.conn.execute(sql, params).lastrowid or 0
        # A write on its own joins the next group commit (:meth:`_commit_groups`): the writes
        # that a thousand learners' tasks make in the same moment share one transaction and
        # one disk sync, and each caller goes on only once its write is committed. Once
        # queued it runs even if this task is cancelled, never inside another task's unit.
        self.conn  # noqa: B018  (a closed store says so at once: "store is not open")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._group.append((sql, tuple(params), done))
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_groups(), name="store-group-commit")
        return await done

    async def _commit_groups(self) -> None:
        """Commit the queued lone writes, a group at a time, until none is left.

        A WAL sync with ``synchronous=FULL`` was most of a lone write's cost: 0.22 ms of wall
        time and 0.1 ms of CPU each here, against 0.015 / 0.009 ms per statement in groups of
        ten, and it ran on the loop. A group waits for the store's lock like a unit, so it
        collects every write queued meanwhile."""
        try:
            while self._group:
                async with self._lock:
                    group, self._group = self._group, []
                    await self._commit_group(group)
        finally:
            self._committer = None

    async def _commit_group(self, group: list[tuple[str, tuple[Any, ...], asyncio.Future[int]]]
                            ) -> None:
        results: list[tuple[asyncio.Future[int], int | BaseException]] = []
        conn: Writer | None = None
        try:
            conn = self.conn  # the store may have closed meanwhile: every caller hears it
            if len(group) == 1:  # one statement is a transaction of its own (autocommit)
                sql, params, done = group[0]
                try:
                    results.append((done, (await conn.now_or_waiting(sql, params)).lastrowid or 0))
                except sqlite3.Error as exc:
                    results.append((done, exc))
                return
            await conn.begin()
            for sql, params, done in group:
                try:
                    results.append((done, conn.execute(sql, params).lastrowid or 0))
                except sqlite3.Error as exc:
                    # a failed statement undoes only itself (SQLite's statement journal),
                    # unless the error ended the whole transaction (disk full, I/O)
                    results.append((done, exc))
                    if not conn.in_transaction:
                        raise
            await conn.now_or_waiting("COMMIT")
        except BaseException as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(conn.execute_waiting("ROLLBACK"))
            failed = exc if isinstance(exc, Exception) else sqlite3.OperationalError(
                "the store closed before this write was committed")
            results = [(done, failed) for _sql, _params, done in group]
            if not isinstance(exc, Exception):
                raise
        finally:
            for done, result in results:
                if done.done():
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    async def _rows(self, sql: str, params: Iterable[Any] = (), *, scan: bool = False
                    ) -> list[sqlite3.Row]:
        """Rows of a read. Outside a unit, a read by key (the engine's, a few rows through an
        index) runs at once on the loop's own reading connection: microseconds, where a
        hand-off to a thread and back cost a tenth of a millisecond of CPU, for each of a
        check's half-dozen reads. A ``scan`` (whole tables, a transcript) goes to the reading
        thread, so that it never holds up the loop."""
        if _in_unit():
            return self.conn.rows(sql, params)
        if not scan and self._quick is not None:
            try:
                # one statement in autocommit: its read transaction ends with fetchall, and
                # sees the last commit (WAL readers do not wait for the writer)
                return self._quick.execute(sql, tuple(params)).fetchall()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise  # else (a WAL recovery in progress) the thread waits for it
        if self._reader is not None:
            # Execute and fetch in one job of the reader's thread: a cursor left open between
            # two awaits would hold a read transaction, and every read queued meanwhile would
            # share its (stale) snapshot instead of seeing the latest commit.
            return list(await self._reader.execute_fetchall(sql, tuple(params)))
        async with self._lock:  # an in-memory database: behind what is queued on the thread
            done = self.conn.submit(self.conn.rows, sql, params)
        return await done

    async def _one(self, sql: str, params: Iterable[Any] = (), *, scan: bool = False
                   ) -> sqlite3.Row | None:
        rows = await self._rows(sql, params, scan=scan)
        return rows[0] if rows else None

    # --- learners -----------------------------------------------------------------------

    async def ensure_learner(self, learner_id: str, name: str) -> Learner:
        await self._write(
            "INSERT INTO learners(id, name, created) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name = excluded.name",
            (learner_id, name, time.time()),
        )
        learner = await self.get_learner(learner_id)
        assert learner is not None
        return learner

    async def get_learner(self, learner_id: str) -> Learner | None:
        row = await self._one("SELECT * FROM learners WHERE id = ?", (learner_id,))
        if row is None:
            return None
        return Learner(row["id"], row["name"], json.loads(row["profile"]))

    async def set_profile(self, learner_id: str, field: str, value: str) -> None:
        await self._write(
            "UPDATE learners SET profile = json_set(profile, '$.' || ?, ?) WHERE id = ?",
            (field, value, learner_id),
        )

    # --- missions -----------------------------------------------------------------------

    @staticmethod
    def _mission(row: sqlite3.Row) -> Mission:
        return Mission(
            id=row["id"],
            address=Address(row["transport"], row["kind"], row["key"]),
            guild=row["guild"],
            parent_id=row["parent_id"],
            pacing=row["pacing"],
            quorum=row["quorum"],
            chapter=row["chapter"],
            beat=row["beat"],
            emitted=bool(row["emitted"]),
            state=row["state"],
            data=json.loads(row["data"]),
        )

    async def create_mission(
        self,
        address: Address,
        *,
        guild: str | None = None,
        pacing: Pacing = "together",
        quorum: float = 0.5,
        chapter: int = 0,
        parent_id: int | None = None,
    ) -> Mission:
        mission_id = await self._write(
            "INSERT INTO missions(transport, kind, key, guild, parent_id, pacing, quorum, chapter,"
            " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                address.transport,
                address.kind,
                address.key,
                guild,
                parent_id,
                pacing,
                quorum,
                chapter,
                time.time(),
            ),
        )
        mission = await self.get_mission(mission_id)
        assert mission is not None
        return mission

    async def get_mission(self, mission_id: int) -> Mission | None:
        row = await self._one("SELECT * FROM missions WHERE id = ?", (mission_id,))
        return self._mission(row) if row else None

    async def find_mission(self, address: Address) -> Mission | None:
        row = await self._one(
            "SELECT * FROM missions WHERE transport = ? AND key = ?",
            (address.transport, address.key),
        )
        return self._mission(row) if row else None

    async def missions_of(self, learner_id: str) -> list[Mission]:
        rows = await self._rows(
            "SELECT m.* FROM missions m JOIN members x ON x.mission_id = m.id "
            "WHERE x.learner_id = ? AND x.left = 0 AND m.state = 'running' ORDER BY m.id",
            (learner_id,),
        )
        return [self._mission(r) for r in rows]

    async def children(self, mission_id: int) -> list[Mission]:
        rows = await self._rows(
            "SELECT * FROM missions WHERE parent_id = ? ORDER BY id", (mission_id,)
        )
        return [self._mission(r) for r in rows]

    async def all_missions(self) -> list[Mission]:
        rows = await self._rows("SELECT * FROM missions ORDER BY id", scan=True)
        return [self._mission(r) for r in rows]

    async def update_mission(self, mission_id: int, **changes: Any) -> None:
        """Write only the named columns: a concurrent change to another column survives."""
        if not changes:
            return
        unknown = set(changes) - _MISSION_COLUMNS
        if unknown:
            raise ValueError(f"not mission columns: {sorted(unknown)}")
        values = [
            json.dumps(v) if k == "data" else int(v) if k == "emitted" else v
            for k, v in changes.items()
        ]
        sets = ", ".join(f"{k} = ?" for k in changes)
        await self._write(f"UPDATE missions SET {sets} WHERE id = ?", (*values, mission_id))

    async def save_mission(self, mission: Mission) -> None:
        await self._write(
            "UPDATE missions SET chapter = ?, beat = ?, emitted = ?, state = ?, data = ?,"
            " pacing = ?, quorum = ? WHERE id = ?",
            (
                mission.chapter,
                mission.beat,
                int(mission.emitted),
                mission.state,
                json.dumps(mission.data),
                mission.pacing,
                mission.quorum,
                mission.id,
            ),
        )

    # --- members ------------------------------------------------------------------------

    async def add_member(self, mission_id: int, learner_id: str) -> None:
        now = time.time()
        await self._write(
            "INSERT INTO members(mission_id, learner_id, joined, last_active) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(mission_id, learner_id) DO UPDATE SET left = 0, last_active = ?",
            (mission_id, learner_id, now, now, now),
        )

    async def leave(self, mission_id: int, learner_id: str) -> None:
        await self._write(
            "UPDATE members SET left = 1 WHERE mission_id = ? AND learner_id = ?",
            (mission_id, learner_id),
        )

    async def touch(self, mission_id: int, learner_id: str, at: float | None = None) -> None:
        await self._write(
            "UPDATE members SET last_active = ? WHERE mission_id = ? AND learner_id = ?",
            (at if at is not None else time.time(), mission_id, learner_id),
        )

    async def members(self, mission_id: int) -> list[Member]:
        rows = await self._rows(
            "SELECT x.*, l.name FROM members x JOIN learners l ON l.id = x.learner_id "
            "WHERE x.mission_id = ? ORDER BY x.joined, x.learner_id",
            (mission_id,),
        )
        return [
            Member(r["learner_id"], r["name"], r["joined"], r["last_active"], bool(r["left"]))
            for r in rows
        ]

    async def running_members(self) -> dict[int, list[Member]]:
        rows = await self._rows(
            "SELECT x.*, l.name FROM members x JOIN learners l ON l.id = x.learner_id "
            "JOIN missions m ON m.id = x.mission_id WHERE m.state = 'running' "
            "ORDER BY x.mission_id, x.joined, x.learner_id",
            scan=True,
        )
        out: dict[int, list[Member]] = {}
        for r in rows:
            out.setdefault(r["mission_id"], []).append(
                Member(r["learner_id"], r["name"], r["joined"], r["last_active"], bool(r["left"]))
            )
        return out

    # --- progress -----------------------------------------------------------------------

    async def pass_task(self, learner_id: str, task_key: str) -> None:
        await self._write(
            "INSERT OR IGNORE INTO task_passes(learner_id, task_key, passed_at) VALUES (?, ?, ?)",
            (learner_id, task_key, time.time()),
        )

    async def passed(self, learner_ids: Iterable[str], task_key: str) -> set[str]:
        ids = list(learner_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = await self._rows(
            f"SELECT learner_id FROM task_passes WHERE task_key = ? AND learner_id IN ({marks})",
            (task_key, *ids),
        )
        return {r["learner_id"] for r in rows}

    async def save_objectives(
        self, learner_id: str, task_key: str, results: Iterable[tuple[str, bool, str]]
    ) -> None:
        now = time.time()
        async with self.unit():
            for objective_id, passed, reason in results:
                await self._write(
                    "INSERT INTO objective_status VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
                    " SET passed = excluded.passed, reason = excluded.reason,"
                    " checked_at = excluded.checked_at",
                    (learner_id, task_key, objective_id, int(passed), reason, now),
                )

    async def objectives(self, learner_id: str, task_key: str) -> dict[str, ObjectiveStatus]:
        rows = await self._rows(
            "SELECT * FROM objective_status WHERE learner_id = ? AND task_key = ?",
            (learner_id, task_key),
        )
        return {
            r["objective_id"]: ObjectiveStatus(
                r["objective_id"], bool(r["passed"]), r["reason"], r["checked_at"]
            )
            for r in rows
        }

    async def next_hint_tier(self, learner_id: str, task_key: str, objective_id: str) -> int:
        """Advance and return the hint tier (1..3) for an objective; it stays at 3."""
        async with self.unit():
            await self._write(
                "INSERT INTO hints VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE"
                " SET tier = min(tier + 1, 3)",
                (learner_id, task_key, objective_id),
            )
            row = await self._one(
                "SELECT tier FROM hints WHERE learner_id = ? AND task_key = ? AND objective_id = ?",
                (learner_id, task_key, objective_id),
            )
        return int(row["tier"]) if row else 1

    async def save_answer(self, mission_id: int, beat_key: str, learner_id: str, text: str) -> None:
        await self._write(
            "INSERT INTO answers VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET text = excluded.text",
            (mission_id, beat_key, learner_id, text, time.time()),
        )

    async def answered(self, mission_id: int, beat_key: str) -> dict[str, str]:
        rows = await self._rows(
            "SELECT learner_id, text FROM answers WHERE mission_id = ? AND beat_key = ?",
            (mission_id, beat_key),
        )
        return {r["learner_id"]: r["text"] for r in rows}

    # --- outbox -------------------------------------------------------------------------

    async def enqueue(self, mission_id: int, messages: Iterable[Outgoing]) -> None:
        now = time.time()
        async with self.unit():
            for message in messages:
                await self._write(
                    "INSERT INTO outbox(mission_id, payload, created) VALUES (?, ?, ?)",
                    (mission_id, json.dumps(message.to_json()), now),
                )

    async def pending(self, mission_id: int) -> list[OutboxItem]:
        rows = await self._rows(
            "SELECT * FROM outbox WHERE mission_id = ? AND sent_at IS NULL ORDER BY id",
            (mission_id,),
        )
        return [
            OutboxItem(r["id"], r["mission_id"], Outgoing.from_json(json.loads(r["payload"])))
            for r in rows
        ]

    async def missions_with_pending(self) -> list[int]:
        rows = await self._rows(
            "SELECT DISTINCT mission_id FROM outbox WHERE sent_at IS NULL", scan=True
        )
        return [r["mission_id"] for r in rows]

    async def prune_outbox(self, sent_before: float) -> int:
        """Delete messages delivered before ``sent_before``; return the highest id deleted (0:
        none). Ids are never reused (AUTOINCREMENT), so no key up to it is sent again."""
        async with self.unit():
            row = await self._one(
                "SELECT MAX(id) AS upto FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                (sent_before,),
            )
            upto = int(row["upto"] or 0) if row else 0
            if upto:
                await self._write(
                    "DELETE FROM outbox WHERE id <= ? AND sent_at IS NOT NULL", (upto,)
                )
        return upto

    async def prune_ledger(self, scope: str, upto: int) -> None:
        """Forget a transport's sent-message marks (keys ``out-N`` and ``out-N.piece``) for
        outbox ids up to ``upto``: those messages are never delivered again."""
        await self._write(
            "DELETE FROM settings WHERE scope = ? AND key GLOB 'out-[0-9]*' "
            "AND CAST(substr(key, 5) AS INTEGER) <= ?",
            (scope, upto),
        )

    async def mark_sent(self, item_id: int) -> None:
        await self._write("UPDATE outbox SET sent_at = ? WHERE id = ?", (time.time(), item_id))

    # --- transcripts and settings -------------------------------------------------------

    async def add_transcript(
        self, scope: str, role: str, speaker: str | None, content: str, tokens: int = 0
    ) -> int:
        return await self._write(
            "INSERT INTO transcripts(scope, role, speaker, content, tokens, at) VALUES (?,?,?,?,?,?)",
            (scope, role, speaker, content, tokens, time.time()),
        )

    async def transcript(self, scope: str, after_id: int = 0) -> list[TranscriptEntry]:
        rows = await self._rows(
            "SELECT * FROM transcripts WHERE scope = ? AND id > ? ORDER BY id",
            (scope, after_id),
            scan=True,
        )
        return [
            TranscriptEntry(r["id"], r["role"], r["speaker"], r["content"], r["tokens"], r["at"])
            for r in rows
        ]

    async def summary(self, scope: str) -> tuple[str, int]:
        row = await self._one("SELECT summary, upto_id FROM summaries WHERE scope = ?", (scope,))
        return (row["summary"], row["upto_id"]) if row else ("", 0)

    async def set_summary(self, scope: str, summary: str, upto_id: int) -> None:
        await self._write(
            "INSERT INTO summaries VALUES (?, ?, ?) ON CONFLICT DO UPDATE"
            " SET summary = excluded.summary, upto_id = excluded.upto_id",
            (scope, summary, upto_id),
        )

    async def get_setting(self, scope: str, key: str) -> str | None:
        row = await self._one(
            "SELECT value FROM settings WHERE scope = ? AND key = ?", (scope, key)
        )
        return row["value"] if row else None

    async def set_setting(self, scope: str, key: str, value: str | None) -> None:
        if value is None:
            await self._write("DELETE FROM settings WHERE scope = ? AND key = ?", (scope, key))
        else:
            await self._write(
                "INSERT INTO settings VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
                (scope, key, value),
            )

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
    ) -> None:
        """Add one model call's usage to the learner's row for ``day`` (a station day)."""
        await self._write(
            "INSERT INTO voice_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " requests = requests + excluded.requests,"
            " input_tokens = input_tokens + excluded.input_tokens,"
            " output_tokens = output_tokens + excluded.output_tokens,"
            " cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,"
            " cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens",
            (
                day,
                learner_id,
                guild or "",
                requests,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_creation_tokens,
            ),
        )

    async def voice_usage(
        self, day: str, *, learner_id: str | None = None, guild: str | None = None
    ) -> dict[str, int]:
        """Totals for ``day``, for one learner (across servers) and/or one server."""
        where, params = ["day = ?"], [day]
        if learner_id is not None:
            where.append("learner_id = ?")
            params.append(learner_id)
        if guild is not None:
            where.append("guild = ?")
            params.append(guild)
        row = await self._one(
            "SELECT coalesce(sum(requests), 0) AS requests,"
            " coalesce(sum(input_tokens), 0) AS input_tokens,"
            " coalesce(sum(output_tokens), 0) AS output_tokens,"
            " coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,"
            " coalesce(sum(cache_creation_tokens), 0) AS cache_creation_tokens"
            f" FROM voice_usage WHERE {' AND '.join(where)}",
            params,
            scan=True,
        )
        keys = (
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_creation_tokens",
        )
        return {k: int(row[k]) if row else 0 for k in keys}

    # --- sandboxes ----------------------------------------------------------------------

    @staticmethod
    def _sandbox(row: sqlite3.Row) -> SandboxRecord:
        return SandboxRecord(
            learner_id=row["learner_id"], backend=row["backend"], name=row["name"],
            phase=row["phase"], created=row["created"], last_active=row["last_active"],
            guild=row["guild"], expires_at=row["expires_at"], warned=bool(row["warned"]),
            paused_at=row["paused_at"], error=row["error"], host=row["host"],
        )  # fmt: skip

    async def get_sandbox(self, learner_id: str) -> SandboxRecord | None:
        row = await self._one("SELECT * FROM sandboxes WHERE learner_id = ?", (learner_id,))
        return self._sandbox(row) if row else None

    async def save_sandbox(self, record: SandboxRecord) -> None:
        r = record
        await self._write(
            "INSERT INTO sandboxes(learner_id, backend, name, phase, guild, created, last_active,"
            " expires_at, warned, paused_at, error, host)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(learner_id) DO UPDATE SET backend = excluded.backend,"
            " name = excluded.name, phase = excluded.phase, guild = excluded.guild,"
            " created = excluded.created, last_active = excluded.last_active,"
            " expires_at = excluded.expires_at, warned = excluded.warned,"
            " paused_at = excluded.paused_at, error = excluded.error, host = excluded.host",
            (r.learner_id, r.backend, r.name, r.phase, r.guild, r.created, r.last_active,
             r.expires_at, int(r.warned), r.paused_at, r.error, r.host),
        )  # fmt: skip

    async def delete_sandbox(self, learner_id: str) -> None:
        await self._write("DELETE FROM sandboxes WHERE learner_id = ?", (learner_id,))

    async def sandboxes(self, guild: str | None = None) -> list[SandboxRecord]:
        if guild is None:
            rows = await self._rows(
                "SELECT * FROM sandboxes ORDER BY created, learner_id", scan=True
            )
        else:
            rows = await self._rows(
                "SELECT * FROM sandboxes WHERE guild = ? ORDER BY created, learner_id",
                (guild,),
                scan=True,
            )
        return [self._sandbox(r) for r in rows]

    async def add_waiting(self, learner_id: str, guild: str | None, at: float) -> int:
        async with self.unit():
            await self._write(
                "INSERT OR IGNORE INTO sandbox_waitlist(learner_id, guild, since) VALUES (?, ?, ?)",
                (learner_id, guild, at),
            )
            row = await self._one(
                "SELECT count(*) AS n FROM sandbox_waitlist w, sandbox_waitlist me"
                " WHERE me.learner_id = ? AND w.guild IS me.guild"
                " AND (w.since < me.since OR (w.since = me.since AND w.learner_id <= me.learner_id))",
                (learner_id,),
            )
        return int(row["n"]) if row else 1

    async def remove_waiting(self, learner_id: str) -> None:
        await self._write("DELETE FROM sandbox_waitlist WHERE learner_id = ?", (learner_id,))

    async def waitlist(self, guild: str | None = None) -> list[WaitlistEntry]:
        if guild is None:
            rows = await self._rows(
                "SELECT * FROM sandbox_waitlist ORDER BY since, learner_id", scan=True
            )
        else:
            rows = await self._rows(
                "SELECT * FROM sandbox_waitlist WHERE guild IS ? ORDER BY since, learner_id",
                (guild,),
                scan=True,
            )
        return [WaitlistEntry(r["learner_id"], r["guild"], r["since"]) for r in rows]

    # --- terminal links -----------------------------------------------------------------

    async def spend_link(self, digest: str, expires: float, now: float) -> bool:
        async with self.unit():
            self.conn.execute("DELETE FROM spent_links WHERE expires <= ?", (now,))
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO spent_links(digest, expires) VALUES (?, ?)", (digest, expires)
            )
            return cur.rowcount == 1

    async def save_terminal_session(
        self, digest: str, learner_id: str, generation: str, opened: float
    ) -> None:
        async with self.unit():
            self.conn.execute(
                "DELETE FROM terminal_sessions WHERE NOT EXISTS (SELECT 1 FROM sandboxes s"
                " WHERE s.learner_id = terminal_sessions.learner_id"
                " AND s.name = terminal_sessions.generation)"
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO terminal_sessions(digest, learner_id, generation, opened)"
                " VALUES (?, ?, ?, ?)",
                (digest, learner_id, generation, opened),
            )

    async def terminal_session(self, digest: str) -> tuple[str, str, float] | None:
        row = await self._one(
            "SELECT learner_id, generation, opened FROM terminal_sessions WHERE digest = ?",
            (digest,),
        )
        return (row["learner_id"], row["generation"], row["opened"]) if row else None

    async def drop_terminal_session(self, digest: str) -> None:
        await self._write("DELETE FROM terminal_sessions WHERE digest = ?", (digest,))
