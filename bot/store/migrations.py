"""Versioned schema migrations, applied in order at start (``PRAGMA user_version`` tracks them).

Append a new entry to :data:`MIGRATIONS` for every change; never edit a shipped one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: learners, missions, crews, progress, answers, outbox
    """
    CREATE TABLE learners (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        profile TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL
    );
    CREATE TABLE missions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        transport TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        guild TEXT,
        parent_id INTEGER REFERENCES missions(id),
        pacing TEXT NOT NULL DEFAULT 'together',
        quorum REAL NOT NULL DEFAULT 0.5,
        chapter INTEGER NOT NULL DEFAULT 0,
        beat INTEGER NOT NULL DEFAULT 0,
        emitted INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'running',
        data TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        UNIQUE (transport, key)
    );
    CREATE TABLE members (
        mission_id INTEGER NOT NULL REFERENCES missions(id),
        learner_id TEXT NOT NULL REFERENCES learners(id),
        joined REAL NOT NULL,
        last_active REAL NOT NULL,
        left INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (mission_id, learner_id)
    );
    CREATE INDEX members_by_learner ON members(learner_id);
    CREATE TABLE task_passes (
        learner_id TEXT NOT NULL,
        task_key TEXT NOT NULL,
        passed_at REAL NOT NULL,
        PRIMARY KEY (learner_id, task_key)
    );
    CREATE TABLE objective_status (
        learner_id TEXT NOT NULL,
        task_key TEXT NOT NULL,
        objective_id TEXT NOT NULL,
        passed INTEGER NOT NULL,
        reason TEXT NOT NULL,
        checked_at REAL NOT NULL,
        PRIMARY KEY (learner_id, task_key, objective_id)
    );
    CREATE TABLE hints (
        learner_id TEXT NOT NULL,
        task_key TEXT NOT NULL,
        objective_id TEXT NOT NULL,
        tier INTEGER NOT NULL,
        PRIMARY KEY (learner_id, task_key, objective_id)
    );
    CREATE TABLE answers (
        mission_id INTEGER NOT NULL,
        beat_key TEXT NOT NULL,
        learner_id TEXT NOT NULL,
        text TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (mission_id, beat_key, learner_id)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        mission_id INTEGER NOT NULL REFERENCES missions(id),
        payload TEXT NOT NULL,
        created REAL NOT NULL,
        sent_at REAL
    );
    CREATE INDEX outbox_pending ON outbox(mission_id, id) WHERE sent_at IS NULL;
    """,
    # 2: conversation memory and per-scope settings
    """
    CREATE TABLE transcripts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scope TEXT NOT NULL,
        role TEXT NOT NULL,
        speaker TEXT,
        content TEXT NOT NULL,
        tokens INTEGER NOT NULL DEFAULT 0,
        at REAL NOT NULL
    );
    CREATE INDEX transcripts_by_scope ON transcripts(scope, id);
    CREATE TABLE summaries (
        scope TEXT PRIMARY KEY,
        summary TEXT NOT NULL,
        upto_id INTEGER NOT NULL
    );
    CREATE TABLE settings (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (scope, key)
    );
    """,
    # 3 (voice): token usage per learner, per server, per station day
    """
    CREATE TABLE voice_usage (
        day TEXT NOT NULL,
        learner_id TEXT NOT NULL,
        guild TEXT NOT NULL DEFAULT '',
        requests INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, learner_id, guild)
    );
    CREATE INDEX voice_usage_by_guild ON voice_usage(day, guild);
    """,
    # 4 (sandboxes): one sandbox record per learner, and the waitlist when a server is full
    """
    CREATE TABLE sandboxes (
        learner_id TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        name TEXT NOT NULL,
        phase TEXT NOT NULL,
        guild TEXT,
        created REAL NOT NULL,
        last_active REAL NOT NULL,
        expires_at REAL,
        warned INTEGER NOT NULL DEFAULT 0,
        paused_at REAL,
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX sandboxes_by_guild ON sandboxes(guild, phase);
    CREATE TABLE sandbox_waitlist (
        learner_id TEXT PRIMARY KEY,
        guild TEXT,
        since REAL NOT NULL
    );
    """,
    # 5 (hosts): which host cluster holds each sandbox ('' = the only one, HOST_KUBECONFIG)
    """
    ALTER TABLE sandboxes ADD COLUMN host TEXT NOT NULL DEFAULT '';
    CREATE INDEX sandboxes_by_host ON sandboxes(host, phase);
    """,
    # 6 (browser terminal): spent single-use links, by a hash of their nonce, until they expire;
    # open terminal sessions, by a hash of their cookie, while their sandbox generation lives
    """
    CREATE TABLE spent_links (
        digest TEXT PRIMARY KEY,
        expires REAL NOT NULL
    );
    CREATE INDEX spent_links_by_expiry ON spent_links(expires);
    CREATE TABLE terminal_sessions (
        digest TEXT PRIMARY KEY,
        learner_id TEXT NOT NULL,
        generation TEXT NOT NULL,
        opened REAL NOT NULL
    );
    CREATE INDEX terminal_sessions_by_learner ON terminal_sessions(learner_id);
    """,
]
