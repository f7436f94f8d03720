-- Log templates the engine has seen, per service and environment, so that a signature
-- keeps its id (and "new" keeps meaning never seen) across restarts. Row level security
-- on with no policy, like every other table (see the init migration).
CREATE TABLE IF NOT EXISTS log_templates (
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    signature TEXT NOT NULL,
    level TEXT,
    template TEXT NOT NULL,
    first_seen_ms BIGINT,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (service, environment, signature)
);

ALTER TABLE log_templates ENABLE ROW LEVEL SECURITY;
