-- Idempotency keys of creates: claimed in the same transaction as the write, completed with the
-- answer once it is known, so that a retried create never writes twice.
CREATE TABLE idempotency (
    scope TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    revision BIGINT NOT NULL,
    status INTEGER,
    body TEXT,
    created_at TEXT NOT NULL
);
