-- The App-ID records. `record` is the record's canonical JSON, exactly the bytes the registry serves
-- and signs; the other columns are copies of its fields for filtering and fast lookups.
CREATE TABLE app_ids (
    app_id   TEXT PRIMARY KEY NOT NULL,
    version  INTEGER NOT NULL CHECK (version >= 1),
    status   TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    class    TEXT NOT NULL,
    app_type TEXT NOT NULL,
    name     TEXT NOT NULL,
    record   BLOB NOT NULL,
    -- the device deny patterns, one per line ('' when none)
    denied   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX app_ids_by_status ON app_ids (status, app_id);
CREATE INDEX app_ids_by_class ON app_ids (class, app_id);
CREATE INDEX app_ids_by_type ON app_ids (app_type, app_id);

-- The change feed: one row per change, written in the change's transaction. Never deleted, so a
-- sequence number is never reused.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY,
    app_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    status TEXT NOT NULL,
    at     INTEGER NOT NULL,  -- microseconds since the Unix epoch
    reason TEXT
);

-- Bearer tokens, by SHA-256 of the token; the tokens themselves are never stored.
CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('read', 'admin')),
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Ed25519 signing keys. `active` signs, `published` still verifies, `retired` is gone (seed wiped).
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY NOT NULL,
    seed       BLOB NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'published', 'retired')),
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX one_active_key ON signing_keys (state) WHERE state = 'active';
