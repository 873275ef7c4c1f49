-- Decisions counted per organization and hour, flushed in batches from memory.
CREATE TABLE usage_hours (
    organization_id TEXT NOT NULL,
    hour TEXT NOT NULL,
    allowed BIGINT NOT NULL,
    denied BIGINT NOT NULL,
    PRIMARY KEY (organization_id, hour)
);
