-- Tamper evidence for the audit log. Each record carries the hash of the record before it
-- (`prev_hash`) and its own `hash`: SHA-256 over a canonical serialisation of its fields and
-- `prev_hash`, computed in the write's transaction. `audit_head` holds the newest record's
-- sequence number and hash, so that records removed from the end are noticed too. Records
-- written before this migration have no hash; the chain starts after them, from 64 zeros.
-- Committers lock the one row of `audit_head` (`SELECT ... FOR UPDATE`) before reading the
-- newest hash, so that two chains never fork.
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE INDEX audit_events_actor_key ON audit_events (actor_key_id, seq);
