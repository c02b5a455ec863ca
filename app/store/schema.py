"""The store's schema, one description for both backends (SQLite and PostgreSQL).

Each migration is SQL with a few words in braces that differ between the two (the types of a
row id, a float, bytes; the time now); the rare step that cannot be said once (reading a field
out of a JSON document) gives each backend its own text. Never edit a released migration:
append a new one. docs/scale-out.md explains the lease columns."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "sqlite": {
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "real": "REAL",
        "bigint": "INTEGER",
        "blob": "BLOB",
        # The time now in epoch seconds, from the database: every lease is measured on one clock.
        "now": "((julianday('now') - 2440587.5) * 86400.0)",
    },
    "postgresql": {
        "serial": "BIGSERIAL PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "bigint": "BIGINT",  # GitHub's ids pass 2^31
        "blob": "BYTEA",
        "now": "extract(epoch FROM clock_timestamp())::double precision",
    },
}

Migration = str | dict[str, str]  # one text for both, or one per backend

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        action TEXT,
        installation_id {bigint},
        repo TEXT,
        received_at {real} NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        delivery_id TEXT NOT NULL REFERENCES deliveries(id),
        installation_id {bigint} NOT NULL,
        repo TEXT NOT NULL,
        issue_number {bigint} NOT NULL,
        state TEXT NOT NULL,
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX jobs_state ON jobs(state, created_at);
    CREATE INDEX jobs_repo ON jobs(repo, issue_number);
    CREATE TABLE job_events (
        seq {serial},
        job_id TEXT NOT NULL REFERENCES jobs(id),
        at {real} NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX job_events_job ON job_events(job_id, seq);
    CREATE TABLE commands (
        seq {serial},
        delivery_id TEXT NOT NULL REFERENCES deliveries(id),
        doc TEXT NOT NULL,
        done_at {real},
        outcome TEXT
    );
    CREATE INDEX commands_pending ON commands(done_at, seq);
    """,
    """
    CREATE TABLE inbox_progress (
        segment TEXT PRIMARY KEY,
        read_to {bigint} NOT NULL
    );
    CREATE INDEX jobs_delivery ON jobs(delivery_id);
    """,
    """
    ALTER TABLE deliveries ADD COLUMN body_sha256 TEXT;
    CREATE INDEX deliveries_body ON deliveries(body_sha256) WHERE body_sha256 IS NOT NULL;
    """,
    # The operator's job list filters by worker and pages newest first.
    {
        "sqlite": """
            ALTER TABLE jobs ADD COLUMN worker TEXT;
            UPDATE jobs SET worker = json_extract(doc, '$.worker');
            CREATE INDEX jobs_created ON jobs(created_at, id);
        """,
        "postgresql": """
            ALTER TABLE jobs ADD COLUMN worker TEXT;
            UPDATE jobs SET worker = doc::json->>'worker';
            CREATE INDEX jobs_created ON jobs(created_at, id);
        """,
    },
    # Several workers: a job's lease (who works on it, since which claim, until when), a cancel asked for
    # through another worker, the worker keeping a waiting job's files; the workers' heartbeats; the
    # commands' claims and the issue each is about (one issue's commands run in order); and the inbox
    # that web instances on PostgreSQL write before their 202.
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_epoch {bigint} NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN lease_until {real};
    ALTER TABLE jobs ADD COLUMN lease_stage TEXT;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN home TEXT;
    CREATE INDEX jobs_lease ON jobs(lease_stage, lease_until);
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        seen_at {real} NOT NULL
    );
    ALTER TABLE commands ADD COLUMN repo TEXT;
    ALTER TABLE commands ADD COLUMN issue_number {bigint};
    ALTER TABLE commands ADD COLUMN claimed_by TEXT;
    ALTER TABLE commands ADD COLUMN claimed_until {real};
    CREATE TABLE inbox (
        id {serial},
        delivery_id TEXT NOT NULL,
        event TEXT NOT NULL,
        received_at {real} NOT NULL,
        body {blob} NOT NULL,
        claimed_by TEXT,
        claimed_until {real}
    )
    """,
    {
        "sqlite": """
            UPDATE commands SET repo = json_extract(doc, '$.repo'), issue_number = json_extract(doc, '$.issue_number')
        """,
        "postgresql": """
            UPDATE commands SET repo = doc::json->>'repo', issue_number = (doc::json->>'issue_number')::bigint
        """,
    },
    # Each worker's limit per stage (a JSON object, stage: total), sent with its heartbeat: a queued
    # job's place in line is counted against every live worker's room, not one's.
    "ALTER TABLE workers ADD COLUMN stage_totals TEXT",
]


def render(text: str, backend: str) -> str:
    """`text` with the backend's words in place of the braces."""
    return text.format(**WORDS[backend])


def statements(migration: Migration, backend: str) -> list[str]:
    """A migration's statements, in order, for `backend`."""
    text = migration[backend] if isinstance(migration, dict) else migration
    return [s.strip() for s in render(text, backend).split(";") if s.strip()]
