-- Log templates the engine has seen, per service and environment, so that a signature
-- keeps its id (and "new" keeps meaning never seen) across restarts.
CREATE TABLE log_templates (
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    signature TEXT NOT NULL,
    level TEXT,
    template TEXT NOT NULL,
    first_seen_ms BIGINT,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (service, environment, signature)
);
