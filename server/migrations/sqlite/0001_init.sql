-- WatchDog schema, version 1 (SQLite).
-- Kept to portable SQL: BIGINT/TEXT/DOUBLE PRECISION columns, times as epoch milliseconds,
-- ON CONFLICT ... DO NOTHING, RETURNING. The Postgres migration differs only in how ids are
-- generated (IDENTITY instead of SQLite's INTEGER PRIMARY KEY rowid alias).

-- Raw metric samples; `body` is the record as received (JSON), re-read on restart.
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX samples_series ON samples (service, environment, ts_ms);

-- One row per accepted ingestion batch: where a restart starts re-reading samples, and
-- what retention prunes, without a second index on the large samples table.
CREATE TABLE sample_batches (
    id INTEGER PRIMARY KEY,
    first_sample_id BIGINT NOT NULL,
    last_sample_id BIGINT NOT NULL,
    min_ts_ms BIGINT NOT NULL,
    max_ts_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX sample_batches_max_ts ON sample_batches (max_ts_ms);

CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX logs_ts ON logs (ts_ms);

CREATE TABLE deploys (
    id INTEGER PRIMARY KEY,
    deploy_id TEXT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    deployed_at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    UNIQUE (deploy_id, service, environment, deployed_at_ms)
);
CREATE INDEX deploys_time ON deploys (deployed_at_ms);

-- Exactly one verdict per deploy.
CREATE TABLE verdicts (
    id INTEGER PRIMARY KEY,
    deploy_row_id BIGINT NOT NULL UNIQUE REFERENCES deploys (id),
    verdict TEXT NOT NULL,
    detected_at_ms BIGINT,
    body TEXT NOT NULL,
    decided_at_ms BIGINT NOT NULL
);

-- At most one incident per deploy (opened by a regression verdict).
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    deploy_row_id BIGINT NOT NULL UNIQUE REFERENCES deploys (id),
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    deploy_id TEXT NOT NULL,
    headline TEXT NOT NULL,
    opened_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX incidents_opened ON incidents (opened_at_ms);

CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX notes_incident ON notes (incident_id);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_incident ON audit (incident_id);

CREATE TABLE explanations (
    incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    model TEXT,
    generated_at_ms BIGINT NOT NULL,
    fallback_reason TEXT
);

-- Durable alert outbox: rows are written in the same transaction as the incident change
-- that causes them, and delivered by a background worker.
CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    delivered_at_ms BIGINT
);
CREATE INDEX alert_outbox_due ON alert_outbox (status, next_attempt_ms);
