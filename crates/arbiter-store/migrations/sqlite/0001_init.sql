-- Every object as JSON, keyed by kind and id. Reads are served by the in-memory index; the store
-- keeps objects durable, unique names unique, and the change log the index follows.
CREATE TABLE objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Names that must stay unique (emails, external ids, role names per organization...).
CREATE TABLE unique_names (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    id TEXT NOT NULL
);
CREATE INDEX unique_names_owner ON unique_names (kind, id);

-- One row per committed write: the revision and the ops it applied.
CREATE TABLE changes (
    revision INTEGER PRIMARY KEY,
    ops TEXT NOT NULL,
    committed_at TEXT NOT NULL
);

-- Last use of API keys: written in batches, outside revisions.
CREATE TABLE api_key_usage (
    key_id TEXT PRIMARY KEY,
    last_used_at TEXT NOT NULL
);

-- Every admin write, in the same transaction as the write.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL,
    at TEXT NOT NULL,
    organization_id TEXT,
    actor_user_id TEXT,
    actor_key_id TEXT,
    action TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    before TEXT,
    after TEXT,
    request_id TEXT
);
CREATE INDEX audit_events_org ON audit_events (organization_id, seq);
