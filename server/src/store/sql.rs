//! The SQL both stores run as it is: SQLite and PostgreSQL accept the same `$n`
//! placeholders, `RETURNING`, `ON CONFLICT` and window functions, so only the real dialect
//! differences stay in `sqlite.rs` and `postgres.rs` (bulk inserts, `UNNEST`, advisory
//! locks, `FOR UPDATE SKIP LOCKED`, `last_insert_rowid()`, migrations' bookkeeping).
//! Each name says where it is used first and what it does. Statements built from the
//! shared column lists are put together once, on first use.

use std::sync::LazyLock;

use super::rows::{DEPLOY_COLUMNS, DEPLOY_FROM, INCIDENT_COLUMNS};

pub const MIGRATE_SELECT_SCHEMA_MIGRATIONS: &str =
    "SELECT version FROM schema_migrations WHERE version = $1";
pub const AUDIT_INSERT_AUDIT: &str =
    "INSERT INTO audit (incident_id, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)";
pub const ENQUEUE_ALERTS_INSERT_ALERT_OUTBOX: &str = "INSERT INTO alert_outbox (incident_id, channel, kind, status, attempts, next_attempt_ms, created_at_ms) VALUES ($1, $2, $3, 'pending', 0, $4, $4)";
pub const PING_SELECT: &str = "SELECT 1";
pub const INSERT_SAMPLES_INSERT_SAMPLE_BATCHES: &str = "INSERT INTO sample_batches (first_sample_id, last_sample_id, min_ts_ms, max_ts_ms, received_at_ms) VALUES ($1, $2, $3, $4, $5)";
pub const INSERT_DEPLOYS_INSERT_DEPLOYS: &str = "INSERT INTO deploys (deploy_id, service, environment, deployed_at_ms, source, received_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (deploy_id, service, environment, deployed_at_ms) DO NOTHING RETURNING id";
pub const SAMPLES_SINCE_SELECT_SAMPLE_BATCHES: &str =
    "SELECT MIN(first_sample_id) FROM sample_batches WHERE max_ts_ms >= $1";
pub const SAMPLES_SINCE_SELECT_SAMPLES: &str =
    "SELECT id, body FROM samples WHERE id >= $1 AND id > $2 AND ts_ms >= $3 ORDER BY id LIMIT $4";
pub const LOGS_SINCE_SELECT_LOGS: &str =
    "SELECT id, body FROM logs WHERE ts_ms >= $1 AND id > $2 ORDER BY id LIMIT $3";
pub const DEPLOYS_SINCE_SELECT_DEPLOYS: &str = "SELECT id, deploy_id, service, environment, deployed_at_ms FROM deploys WHERE deployed_at_ms >= $1 ORDER BY id";
pub const PRUNE_SELECT_SAMPLE_BATCHES: &str = "SELECT id, first_sample_id, last_sample_id FROM sample_batches WHERE max_ts_ms < $1 ORDER BY id LIMIT $2";
pub const PRUNE_DELETE_SAMPLES: &str =
    "DELETE FROM samples WHERE id >= $1 AND id <= $2 AND ts_ms < $3";
pub const PRUNE_DELETE_SAMPLE_BATCHES: &str = "DELETE FROM sample_batches WHERE id = $1";
pub const PRUNE_DELETE_LOGS: &str =
    "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts_ms < $1 ORDER BY id LIMIT $2)";
pub const OLDEST_UNJUDGED_DEPLOY_MS_SELECT_DEPLOYS: &str = "SELECT MIN(d.deployed_at_ms) FROM deploys d WHERE d.deployed_at_ms < $1 AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.deploy_row_id = d.id)";
pub const LATEST_EVENT_MS_SELECT_SAMPLE_BATCHES: &str = "SELECT MAX(max_ts_ms) FROM sample_batches";
pub const LATEST_EVENT_MS_SELECT_DEPLOYS: &str = "SELECT MAX(deployed_at_ms) FROM deploys";
pub const ADD_LATE_AFTER_VERDICT_UPDATE_VERDICTS: &str =
    "UPDATE verdicts SET body = $1 WHERE id = $2";
pub const RECORD_VERDICT_SELECT_DEPLOYS: &str = "SELECT id FROM deploys WHERE deploy_id = $1 AND service = $2 AND environment = $3 AND deployed_at_ms = $4";
pub const RECORD_VERDICT_INSERT_VERDICTS: &str = "INSERT INTO verdicts (deploy_row_id, verdict, detected_at_ms, body, decided_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deploy_row_id) DO NOTHING RETURNING id";
pub const RECORD_VERDICT_INSERT_INCIDENTS: &str = "INSERT INTO incidents (deploy_row_id, title, status, severity, severity_rank, service, environment, deploy_id, headline, opened_at_ms, updated_at_ms) VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id";
pub const GET_INCIDENT_SELECT_VERDICTS: &str = "SELECT body FROM verdicts WHERE deploy_row_id = $1";
pub const GET_INCIDENT_SELECT_NOTES: &str = "SELECT id, incident_id, author, text, created_at_ms FROM notes WHERE incident_id = $1 ORDER BY id";
pub const GET_INCIDENT_SELECT_AUDIT: &str =
    "SELECT id, at_ms, actor, action, detail FROM audit WHERE incident_id = $1 ORDER BY id";
pub const SET_STATUS_UPDATE_INCIDENTS: &str =
    "UPDATE incidents SET status = $1, updated_at_ms = $2 WHERE id = $3";
pub const ADD_NOTE_INSERT_NOTES: &str = "INSERT INTO notes (incident_id, author, text, created_at_ms) VALUES ($1, $2, $3, $4) RETURNING id";
pub const ADD_NOTE_UPDATE_INCIDENTS: &str = "UPDATE incidents SET updated_at_ms = $1 WHERE id = $2";
pub const GET_EXPLANATION_SELECT_EXPLANATIONS: &str = "SELECT text, source, model, generated_at_ms, fallback_reason FROM explanations WHERE incident_id = $1";
pub const PUT_EXPLANATION_INSERT_EXPLANATIONS: &str = "INSERT INTO explanations (incident_id, text, source, model, generated_at_ms, fallback_reason) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id) DO UPDATE SET text = excluded.text, source = excluded.source, model = excluded.model, generated_at_ms = excluded.generated_at_ms, fallback_reason = excluded.fallback_reason";
pub const INSTALLATION_ID_SELECT_SCHEMA_MIGRATIONS: &str =
    "SELECT MIN(applied_at_ms) FROM schema_migrations";
pub const NEXT_ALERT_DUE_MS_SELECT_ALERT_OUTBOX: &str =
    "SELECT MIN(next_attempt_ms) FROM alert_outbox WHERE status = 'pending'";
pub const MARK_ALERT_DELIVERED_UPDATE_ALERT_OUTBOX: &str = "UPDATE alert_outbox SET status = 'delivered', delivered_at_ms = $1, attempts = attempts + 1 WHERE id = $2 AND status = 'pending'";
pub const MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX: &str = "UPDATE alert_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_ms = $2 WHERE id = $3 AND status = 'pending'";
pub const MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX_2: &str = "UPDATE alert_outbox SET attempts = attempts + 1, last_error = $1, status = 'failed' WHERE id = $2 AND status = 'pending'";
pub const ALERT_COUNTS_SELECT_ALERT_OUTBOX: &str =
    "SELECT status, COUNT(*) FROM alert_outbox GROUP BY status";
pub const TEMPLATES_SELECT_LOG_TEMPLATES: &str = "SELECT service, environment, signature, level, template, first_seen_ms FROM log_templates ORDER BY service, environment, signature";
pub const MIGRATE_INSERT_SCHEMA_MIGRATIONS: &str =
    "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)";
/// One deploy row with its verdict and incident.
pub static GET_DEPLOY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} WHERE d.id = $1"));
/// One incident's summary.
pub static GET_INCIDENT_SUMMARY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"));
/// The outbox rows due (`$1`: now, `$2`: limit), after `SELECT <columns>`: per incident
/// and channel only the oldest pending one.
pub const DUE_ALERTS_FROM_ALERT_OUTBOX: &str = " FROM alert_outbox o WHERE status = 'pending' AND next_attempt_ms <= $1 AND NOT EXISTS (SELECT 1 FROM alert_outbox e WHERE e.incident_id = o.incident_id AND e.channel = o.channel AND e.status = 'pending' AND e.id < o.id) ORDER BY next_attempt_ms, id LIMIT $2";
/// The columns of an outbox row (`rows::outbox_item`).
pub const OUTBOX_COLUMNS: &str = "id, incident_id, channel, kind, attempts";
/// The last id of the `$2` series with ids after `$1`: a stretch of series a retention
/// transaction handles.
pub const PRUNE_SELECT_SERIES: &str =
    "SELECT MAX(id) FROM (SELECT id FROM series WHERE id > $1 ORDER BY id LIMIT $2) AS t";
