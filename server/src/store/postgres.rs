//! The PostgreSQL store (also Supabase), chosen with `WATCHDOG_DATABASE_URL=postgres://…`.
//!
//! The schema is `supabase/migrations/*.sql`, applied at start under an advisory lock (so
//! that servers starting together do not race) and recorded in `schema_migrations`; the
//! files are idempotent, so a database prepared with `supabase db push` is left as it is.
//!
//! Several servers may share one database (docs/postgres.md):
//! - inserts into `samples`, `logs` and `deploys` take a transaction-level advisory lock
//!   per table first, so row ids become visible in id order and a server following the
//!   store by id ([`crate::follow`]) never skips a row committed late;
//! - a verdict is stored once per deploy (unique key, `ON CONFLICT DO NOTHING`), and its
//!   incident and alerts only by the transaction that stored it;
//! - due alerts are claimed with `FOR UPDATE SKIP LOCKED` and leased for
//!   [`alert_lease_ms`], longer than the batch can take, so one server delivers each one.
//!
//! Transaction poolers (Supabase's on port 6543, PgBouncer in transaction mode) hand each
//! transaction a different server connection, where a statement prepared earlier does not
//! exist. With `?pgbouncer=true` (or sqlx's own `?statement-cache-capacity=0`) in the URL,
//! no statement is prepared under a name or cached: each query is parsed as the unnamed
//! statement and runs in the same round trip.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row, SqlSafeStr};
use watchdog_core::{Deploy, DeployVerdict, Timestamp};

use super::rows::{
    deploy_row, incident_summary, like_pattern, parse_verdict, ts, Bind, DEPLOY_COLUMNS,
    DEPLOY_FROM, INCIDENT_COLUMNS,
};
use super::sql;
use super::{
    AuditEntry, DeployQuery, DeployRow, IncidentQuery, IncidentRecord, IncidentSort,
    IncidentStatus, IncidentSummary, NewDeploy, NewIncident, NewRecord, Note, OutboxCounts,
    OutboxItem, Pruned, RecordedVerdict, Store, StoreError, StoreResult, StoredDeploy,
    StoredExplanation, StoredRecord, StoredTemplate,
};

/// Migrations, applied in order at start (the same files `supabase db push` applies).
const MIGRATIONS: &[(i64, &str)] = &[
    (
        20260401000000,
        include_str!("../../../supabase/migrations/20260401000000_watchdog_init.sql"),
    ),
    (
        20261201000010,
        include_str!("../../../supabase/migrations/20261201000010_log_templates.sql"),
    ),
    (
        20261201000020,
        include_str!("../../../supabase/migrations/20261201000020_series.sql"),
    ),
];

/// How long a claimed batch of `limit` alerts stays invisible to other servers while one
/// delivers it: longer than delivering every row of it can take (each is bounded by
/// [`crate::alerts::DELIVERY_TIMEOUT`]), plus a minute for the store round trips, so a
/// slow receiver does not get the same alert from a second server.
pub fn alert_lease_ms(limit: i64) -> i64 {
    limit.max(1) * crate::alerts::DELIVERY_TIMEOUT.as_millis() as i64 + 60_000
}

/// One series' samples in a time range. SQLite reads through its own bulk-built index
/// instead (store/sqlite/samples.rs); PostgreSQL keeps a plain index on the samples.
const SERIES_SELECT_SAMPLES: &str = "SELECT id, body FROM samples WHERE series_id = (SELECT id FROM series WHERE service = $1 AND environment = $2) AND ts_ms >= $3 AND ts_ms <= $4 ORDER BY ts_ms, id LIMIT $5";

/// Creates the `series` rows of label pairs not seen before. Sorted, so that two servers
/// creating the same new pairs take their row locks in the same order; a pair another
/// transaction is creating waits for it and is then skipped.
const INSERT_SERIES: &str = "INSERT INTO series (service, environment) SELECT DISTINCT service, environment FROM UNNEST($1::TEXT[], $2::TEXT[]) AS t(service, environment) ORDER BY service, environment ON CONFLICT DO NOTHING";

/// Inserts samples with their series ids, in the order given (ids follow `n`), and
/// returns the first and last new id.
const INSERT_SAMPLES: &str = "WITH ins AS (INSERT INTO samples (ts_ms, series_id, body) SELECT t.ts_ms, r.id, t.body FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) WITH ORDINALITY AS t(ts_ms, service, environment, body, n) JOIN series r ON r.service = t.service AND r.environment = t.environment ORDER BY t.n RETURNING id) SELECT MIN(id), MAX(id) FROM ins";

/// Advisory lock keys (one 64-bit key space per database; "WDOG" in the high bits).
const LOCK_MIGRATE: i64 = 0x5744_4f47_0000_0001;
const LOCK_SAMPLES: i64 = 0x5744_4f47_0000_0002;
const LOCK_LOGS: i64 = 0x5744_4f47_0000_0003;
const LOCK_DEPLOYS: i64 = 0x5744_4f47_0000_0004;
/// Session-level lock of the replica that pulls Prometheus.
const LOCK_PROMETHEUS_PULLER: i64 = 0x5744_4f47_0000_0010;

/// A connection holding a session-level advisory lock: the lease lasts as long as it.
#[derive(Debug)]
struct AdvisoryLease {
    conn: Option<sqlx::pool::PoolConnection<Postgres>>,
}

impl Drop for AdvisoryLease {
    /// The connection is closed, not returned to the pool: a pooled connection would keep
    /// the session lock for whoever used it next.
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(c.detach());
        }
    }
}

#[async_trait]
impl super::LeaseGuard for AdvisoryLease {
    async fn alive(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let ok = sqlx::query(sql::PING_SELECT)
            .execute(&mut **conn)
            .await
            .is_ok();
        if !ok {
            // A broken connection: the server has released the lock already.
            if let Some(c) = self.conn.take() {
                c.detach();
            }
        }
        ok
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Whether statements may be prepared once and reused (false behind a pooler).
    p: bool,
}

/// Connection settings read from a `postgres://` URL.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// sqlx options (host, credentials, TLS, …).
    pub options: PgConnectOptions,
    /// False behind a transaction pooler: no named or cached prepared statements.
    pub prepared_statements: bool,
    /// Pool size.
    pub max_connections: u32,
}

impl PgSettings {
    /// Reads a URL. Besides libpq-style parameters it takes `pgbouncer=true` (behind a
    /// transaction pooler) and `max_connections=N` (pool size, default 10).
    ///
    /// # Errors
    /// When the URL is not a valid PostgreSQL URL; the message never contains the URL,
    /// which may hold a password.
    pub fn from_url(url: &str) -> Result<PgSettings, String> {
        let mut parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("WATCHDOG_DATABASE_URL is not a valid URL: {e}"))?;
        let mut pooler = false;
        let mut max_connections = 10;
        let mut kept = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "pgbouncer" => {
                    pooler = matches!(v.as_ref(), "true" | "1" | "yes");
                }
                "max_connections" => {
                    max_connections = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("max_connections in WATCHDOG_DATABASE_URL must be a positive integer, got {v:?}")
                    })?;
                }
                "statement-cache-capacity" if v == "0" => {
                    pooler = true;
                    kept.push((k.to_string(), v.to_string()));
                }
                _ => kept.push((k.to_string(), v.to_string())),
            }
        }
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let mut options = PgConnectOptions::from_str(parsed.as_str())
            .map_err(|e| format!("WATCHDOG_DATABASE_URL: {e}"))?
            .application_name("watchdog");
        if pooler {
            options = options.statement_cache_capacity(0);
        }
        Ok(PgSettings {
            options,
            prepared_statements: !pooler,
            max_connections,
        })
    }
}

impl PostgresStore {
    /// Connects and applies migrations.
    ///
    /// # Errors
    /// When the server cannot be reached or a migration fails.
    pub async fn connect(settings: PgSettings) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(settings.options)
            .await?;
        let store = PostgresStore {
            pool,
            p: settings.prepared_statements,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to a URL (see [`PgSettings::from_url`]).
    ///
    /// # Errors
    /// An invalid URL, or [`PostgresStore::connect`]'s.
    pub async fn connect_url(url: &str) -> StoreResult<Self> {
        let settings = PgSettings::from_url(url).map_err(StoreError::Corrupt)?;
        Self::connect(settings).await
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Simple-query protocol throughout: no prepared statements, fine behind poolers.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "SELECT pg_advisory_xact_lock({LOCK_MIGRATE})"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL); ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY",
        )
        .execute(&mut *tx)
        .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> = scalar(false, sql::MIGRATE_SELECT_SCHEMA_MIGRATIONS)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            query(
                false,
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tracing::info!(version, "applied migration");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes every row of every table (tests only: the suite shares one database).
    ///
    /// # Errors
    /// Database failures.
    pub async fn truncate_all_for_tests(&self) -> StoreResult<()> {
        sqlx::raw_sql(
            "TRUNCATE samples, series, sample_batches, logs, deploys, verdicts, incidents, notes, audit, explanations, alert_outbox, log_templates RESTART IDENTITY",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn query<'q>(
    persistent: bool,
    sql: impl SqlSafeStr,
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    sqlx::query(sql).persistent(persistent)
}

fn scalar<'q, O>(
    persistent: bool,
    sql: impl SqlSafeStr,
) -> sqlx::query::QueryScalar<'q, Postgres, O, PgArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(persistent)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Waits for the table's insert lock, held until the transaction ends.
async fn lock(p: bool, conn: &mut PgConnection, key: i64) -> StoreResult<()> {
    query(p, "SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts records in one statement (arrays unnested server-side: one round trip and one
/// plan whatever the batch size). Logs go in as they are; samples get their series id
/// (creating new series first). Returns the first and last new id.
async fn insert_records(
    p: bool,
    conn: &mut PgConnection,
    table: &str,
    rows: &[NewRecord],
) -> StoreResult<(i64, i64)> {
    let ts: Vec<i64> = rows.iter().map(|r| r.ts_ms).collect();
    let services: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
    let envs: Vec<&str> = rows.iter().map(|r| r.environment.as_str()).collect();
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    let sql = if table == "samples" {
        query(p, INSERT_SERIES)
            .bind(&services)
            .bind(&envs)
            .execute(&mut *conn)
            .await?;
        INSERT_SAMPLES.to_string()
    } else {
        format!(
            "WITH ins AS (INSERT INTO {table} (ts_ms, service, environment, body) SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) RETURNING id) SELECT MIN(id), MAX(id) FROM ins"
        )
    };
    let row = query(p, AssertSqlSafe(sql))
        .bind(ts)
        .bind(services)
        .bind(envs)
        .bind(bodies)
        .fetch_one(&mut *conn)
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Postgres, PgArguments>,
    binds: &[Bind],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

async fn get_incident_summary(
    p: bool,
    conn: &mut PgConnection,
    id: i64,
) -> StoreResult<Option<IncidentSummary>> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
    let row = query(p, AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(incident_summary).transpose()
}

async fn audit(
    p: bool,
    conn: &mut PgConnection,
    incident_id: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> StoreResult<()> {
    query(p, sql::AUDIT_INSERT_AUDIT)
        .bind(incident_id)
        .bind(at_ms)
        .bind(actor)
        .bind(action)
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn enqueue_alerts(
    p: bool,
    conn: &mut PgConnection,
    incident_id: i64,
    channels: &[String],
    kind: &str,
    now_ms: i64,
) -> StoreResult<()> {
    for channel in channels {
        query(p, sql::ENQUEUE_ALERTS_INSERT_ALERT_OUTBOX)
            .bind(incident_id)
            .bind(channel.as_str())
            .bind(kind)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> StoreResult<()> {
        query(self.p, sql::PING_SELECT).execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_samples(&self, rows: &[NewRecord], now_ms: i64) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        lock(self.p, &mut tx, LOCK_SAMPLES).await?;
        let (first, last) = insert_records(self.p, &mut tx, "samples", rows).await?;
        let min_ts = rows.iter().map(|r| r.ts_ms).min().unwrap_or(0);
        let max_ts = rows.iter().map(|r| r.ts_ms).max().unwrap_or(0);
        query(self.p, sql::INSERT_SAMPLES_INSERT_SAMPLE_BATCHES)
            .bind(first)
            .bind(last)
            .bind(min_ts)
            .bind(max_ts)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_logs(&self, rows: &[NewRecord]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        lock(self.p, &mut tx, LOCK_LOGS).await?;
        insert_records(self.p, &mut tx, "logs", rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_deploys(
        &self,
        rows: &[NewDeploy],
        now_ms: i64,
    ) -> StoreResult<Vec<Option<i64>>> {
        let mut tx = self.pool.begin().await?;
        lock(self.p, &mut tx, LOCK_DEPLOYS).await?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in rows {
            let id: Option<i64> = scalar(self.p, sql::INSERT_DEPLOYS_INSERT_DEPLOYS)
                .bind(r.deploy.deploy_id.as_str())
                .bind(r.deploy.service.as_str())
                .bind(r.deploy.environment.as_str())
                .bind(r.deploy.timestamp.millis())
                .bind(r.source.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn samples_since(
        &self,
        from_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        // Start at the first batch that reaches `from_ms`: batches are small and indexed
        // by their latest event time, so this avoids a time index on every sample.
        let start: Option<i64> = scalar(self.p, sql::SAMPLES_SINCE_SELECT_SAMPLE_BATCHES)
            .bind(from_ms)
            .fetch_one(&self.pool)
            .await?;
        let Some(start) = start else {
            return Ok(Vec::new());
        };
        let rows = query(self.p, sql::SAMPLES_SINCE_SELECT_SAMPLES)
            .bind(start)
            .bind(after_id)
            .bind(from_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredRecord {
                    id: r.try_get(0)?,
                    body: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn logs_since(
        &self,
        from_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        let rows = query(self.p, sql::LOGS_SINCE_SELECT_LOGS)
            .bind(from_ms)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredRecord {
                    id: r.try_get(0)?,
                    body: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn deploys_since(&self, from_ms: i64) -> StoreResult<Vec<StoredDeploy>> {
        let rows = query(self.p, sql::DEPLOYS_SINCE_SELECT_DEPLOYS)
            .bind(from_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredDeploy {
                    id: r.try_get(0)?,
                    deploy: Deploy {
                        deploy_id: r.try_get(1)?,
                        service: r.try_get(2)?,
                        environment: r.try_get(3)?,
                        timestamp: ts(r.try_get(4)?),
                    },
                })
            })
            .collect()
    }

    async fn try_lead(&self, role: super::LeaseRole) -> StoreResult<Option<super::Lease>> {
        let key = match role {
            super::LeaseRole::PrometheusPuller => LOCK_PROMETHEUS_PULLER,
        };
        let mut conn = self.pool.acquire().await?;
        // Session level, on a connection kept out of the pool's reuse while held: the
        // lock ends when the lease is dropped (the connection is closed) or the process
        // dies (the server sees the connection go).
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            return Ok(None);
        }
        Ok(Some(super::Lease(Box::new(AdvisoryLease {
            conn: Some(conn),
        }))))
    }

    async fn prune(&self, before_ms: i64) -> StoreResult<Pruned> {
        const CHUNK: i64 = 200;
        let mut pruned = Pruned::default();
        loop {
            let mut tx = self.pool.begin().await?;
            let batches = query(self.p, sql::PRUNE_SELECT_SAMPLE_BATCHES)
                .bind(before_ms)
                .bind(CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            for b in &batches {
                let (id, first, last): (i64, i64, i64) =
                    (b.try_get(0)?, b.try_get(1)?, b.try_get(2)?);
                // The time test keeps another batch's newer rows that share the id range
                // (concurrent writers may interleave ids).
                let done = query(self.p, sql::PRUNE_DELETE_SAMPLES)
                    .bind(first)
                    .bind(last)
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?;
                pruned.samples += done.rows_affected();
                query(self.p, sql::PRUNE_DELETE_SAMPLE_BATCHES)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            if (batches.len() as i64) < CHUNK {
                break;
            }
        }
        loop {
            let done = query(self.p, sql::PRUNE_DELETE_LOGS)
                .bind(before_ms)
                .bind(CHUNK * 50)
                .execute(&self.pool)
                .await?;
            pruned.logs += done.rows_affected();
            if done.rows_affected() < (CHUNK * 50) as u64 {
                break;
            }
        }
        Ok(pruned)
    }

    async fn oldest_unjudged_deploy_ms(&self, before_ms: i64) -> StoreResult<Option<i64>> {
        let sql = sql::OLDEST_UNJUDGED_DEPLOY_MS_SELECT_DEPLOYS;
        Ok(scalar(self.p, sql)
            .bind(before_ms)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn series(
        &self,
        service: &str,
        environment: &str,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        let rows = query(self.p, SERIES_SELECT_SAMPLES)
            .bind(service)
            .bind(environment)
            .bind(from_ms)
            .bind(to_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredRecord {
                    id: r.try_get(0)?,
                    body: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn latest_event_ms(&self) -> StoreResult<Option<i64>> {
        let a: Option<i64> = scalar(self.p, sql::LATEST_EVENT_MS_SELECT_SAMPLE_BATCHES)
            .fetch_one(&self.pool)
            .await?;
        let b: Option<i64> = scalar(self.p, sql::LATEST_EVENT_MS_SELECT_DEPLOYS)
            .fetch_one(&self.pool)
            .await?;
        Ok(a.max(b))
    }

    async fn add_late_after_verdict(&self, deploy: &Deploy, samples: u64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: replicas adding counts to the same verdict take turns.
        let found = query(
            self.p,
            "SELECT v.id, v.body FROM verdicts v JOIN deploys d ON d.id = v.deploy_row_id WHERE d.deploy_id = $1 AND d.service = $2 AND d.environment = $3 AND d.deployed_at_ms = $4 FOR UPDATE OF v",
        )
        .bind(deploy.deploy_id.as_str())
        .bind(deploy.service.as_str())
        .bind(deploy.environment.as_str())
        .bind(deploy.timestamp.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = found else {
            return Ok(false);
        };
        let id: i64 = row.try_get(0)?;
        let body: String = row.try_get(1)?;
        let body = super::with_late_after_verdict(&body, samples)?;
        query(self.p, sql::ADD_LATE_AFTER_VERDICT_UPDATE_VERDICTS)
            .bind(body)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_verdict(
        &self,
        verdict: &DeployVerdict,
        incident: Option<&NewIncident>,
        now_ms: i64,
    ) -> StoreResult<Option<RecordedVerdict>> {
        let body = serde_json::to_string(verdict)
            .map_err(|e| StoreError::Corrupt(format!("verdict to JSON: {e}")))?;
        let mut tx = self.pool.begin().await?;
        let deploy_row_id: i64 = match scalar(self.p,
            sql::RECORD_VERDICT_SELECT_DEPLOYS,
        )
        .bind(verdict.deploy_id.as_str())
        .bind(verdict.service.as_str())
        .bind(verdict.environment.as_str())
        .bind(verdict.deployed_at.millis())
        .fetch_optional(&mut *tx)
        .await?
        {
            Some(id) => id,
            None => {
                scalar(self.p,
                    "INSERT INTO deploys (deploy_id, service, environment, deployed_at_ms, source, received_at_ms) VALUES ($1, $2, $3, $4, 'engine', $5) ON CONFLICT (deploy_id, service, environment, deployed_at_ms) DO UPDATE SET source = deploys.source RETURNING id",
                )
                .bind(verdict.deploy_id.as_str())
                .bind(verdict.service.as_str())
                .bind(verdict.environment.as_str())
                .bind(verdict.deployed_at.millis())
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let inserted: Option<i64> = scalar(self.p, sql::RECORD_VERDICT_INSERT_VERDICTS)
            .bind(deploy_row_id)
            .bind(verdict.verdict.as_str())
            .bind(verdict.detected_at.map(Timestamp::millis))
            .bind(body)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut opened = None;
        if let Some(new) = incident {
            let id: i64 = scalar(self.p, sql::RECORD_VERDICT_INSERT_INCIDENTS)
                .bind(deploy_row_id)
                .bind(new.title.as_str())
                .bind(new.severity.as_str())
                .bind(new.severity_rank)
                .bind(verdict.service.as_str())
                .bind(verdict.environment.as_str())
                .bind(verdict.deploy_id.as_str())
                .bind(new.headline.as_str())
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
            audit(
                self.p,
                &mut tx,
                id,
                now_ms,
                "watchdog",
                "opened",
                &format!("opened by a regression verdict ({} severity)", new.severity),
            )
            .await?;
            enqueue_alerts(self.p, &mut tx, id, &new.channels, "opened", now_ms).await?;
            opened = get_incident_summary(self.p, &mut tx, id).await?;
        }
        let sql = format!("SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} WHERE d.id = $1");
        let row = query(self.p, AssertSqlSafe(sql))
            .bind(deploy_row_id)
            .fetch_one(&mut *tx)
            .await?;
        let deploy = deploy_row(&row)?;
        tx.commit().await?;
        Ok(Some(RecordedVerdict {
            deploy,
            incident: opened,
        }))
    }

    async fn list_deploys(&self, q: &DeployQuery) -> StoreResult<(Vec<DeployRow>, i64)> {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        let mut push = |cond: &str, b: Bind| {
            binds.push(b);
            conds.push(cond.replace('?', &format!("${}", binds.len())));
        };
        if let Some(s) = &q.service {
            push("d.service = ?", Bind::Text(s.clone()));
        }
        if let Some(e) = &q.environment {
            push("d.environment = ?", Bind::Text(e.clone()));
        }
        match q.verdict.as_deref() {
            None => {}
            Some("watching") => conds.push("v.id IS NULL".into()),
            Some(v) => push("v.verdict = ?", Bind::Text(v.to_string())),
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) {DEPLOY_FROM} {where_sql}");
        let total: i64 = {
            let mut cq = scalar(self.p, AssertSqlSafe(count_sql));
            for b in &binds {
                cq = match b {
                    Bind::Text(s) => cq.bind(s.clone()),
                    Bind::Int(i) => cq.bind(*i),
                };
            }
            cq.fetch_one(&self.pool).await?
        };
        let n = binds.len();
        let sql = format!(
            "SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} {where_sql} ORDER BY d.deployed_at_ms DESC, d.id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        binds.push(Bind::Int(q.limit));
        binds.push(Bind::Int(q.offset));
        let rows = bind_all(query(self.p, AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(deploy_row).collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn get_deploy(&self, id: i64) -> StoreResult<Option<DeployRow>> {
        let sql = format!("SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} WHERE d.id = $1");
        let row = query(self.p, AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(deploy_row).transpose()
    }

    async fn list_incidents(&self, q: &IncidentQuery) -> StoreResult<(Vec<IncidentSummary>, i64)> {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        let mut push = |cond: &str, b: Bind| {
            binds.push(b);
            conds.push(cond.replace('?', &format!("${}", binds.len())));
        };
        if let Some(s) = q.status {
            push("status = ?", Bind::Text(s.as_str().into()));
        }
        if let Some(s) = &q.severity {
            push("severity = ?", Bind::Text(s.clone()));
        }
        if let Some(s) = &q.service {
            push("service = ?", Bind::Text(s.clone()));
        }
        if let Some(e) = &q.environment {
            push("environment = ?", Bind::Text(e.clone()));
        }
        if let Some(t) = q.text.as_deref().filter(|t| !t.trim().is_empty()) {
            binds.push(Bind::Text(like_pattern(t.trim())));
            let p = format!("${}", binds.len());
            conds.push(format!(
                "(LOWER(title) LIKE {p} ESCAPE '\\' OR LOWER(headline) LIKE {p} ESCAPE '\\' OR LOWER(deploy_id) LIKE {p} ESCAPE '\\' OR LOWER(service) LIKE {p} ESCAPE '\\')"
            ));
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let order = match q.sort {
            IncidentSort::OpenedAt => "opened_at_ms ASC, id ASC",
            IncidentSort::OpenedAtDesc => "opened_at_ms DESC, id DESC",
            // Rank 0 is the most severe: "-severity" (most severe first) is rank ascending.
            IncidentSort::Severity => "severity_rank DESC, opened_at_ms DESC, id DESC",
            IncidentSort::SeverityDesc => "severity_rank ASC, opened_at_ms DESC, id DESC",
            IncidentSort::UpdatedAt => "updated_at_ms ASC, id ASC",
            IncidentSort::UpdatedAtDesc => "updated_at_ms DESC, id DESC",
        };
        let count_sql = format!("SELECT COUNT(*) FROM incidents {where_sql}");
        let total: i64 = {
            let mut cq = scalar(self.p, AssertSqlSafe(count_sql));
            for b in &binds {
                cq = match b {
                    Bind::Text(s) => cq.bind(s.clone()),
                    Bind::Int(i) => cq.bind(*i),
                };
            }
            cq.fetch_one(&self.pool).await?
        };
        let n = binds.len();
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {where_sql} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        binds.push(Bind::Int(q.limit));
        binds.push(Bind::Int(q.offset));
        let rows = bind_all(query(self.p, AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(incident_summary)
            .collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn get_incident(&self, id: i64) -> StoreResult<Option<IncidentRecord>> {
        let mut conn = self.pool.acquire().await?;
        let Some(summary) = get_incident_summary(self.p, &mut conn, id).await? else {
            return Ok(None);
        };
        let body: String = scalar(self.p, sql::GET_INCIDENT_SELECT_VERDICTS)
            .bind(summary.deploy_row_id)
            .fetch_one(&mut *conn)
            .await?;
        let verdict = parse_verdict(&body)?;
        let notes = query(self.p, sql::GET_INCIDENT_SELECT_NOTES)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(Note {
                    id: r.try_get(0)?,
                    incident_id: r.try_get(1)?,
                    author: r.try_get(2)?,
                    text: r.try_get(3)?,
                    created_at: ts(r.try_get(4)?),
                })
            })
            .collect::<StoreResult<_>>()?;
        let audit = query(self.p, sql::GET_INCIDENT_SELECT_AUDIT)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    at: ts(r.try_get(1)?),
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    detail: r.try_get(4)?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok(Some(IncidentRecord {
            summary,
            verdict,
            notes,
            audit,
        }))
    }

    async fn set_status(
        &self,
        id: i64,
        status: IncidentStatus,
        actor: &str,
        channels: &[String],
        now_ms: i64,
    ) -> StoreResult<Option<IncidentSummary>> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = get_incident_summary(self.p, &mut tx, id).await? else {
            return Ok(None);
        };
        if current.status == status {
            tx.rollback().await?;
            return Ok(Some(current));
        }
        query(self.p, sql::SET_STATUS_UPDATE_INCIDENTS)
            .bind(status.as_str())
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            self.p,
            &mut tx,
            id,
            now_ms,
            actor,
            "status",
            &format!("status {} -> {}", current.status.as_str(), status.as_str()),
        )
        .await?;
        enqueue_alerts(self.p, &mut tx, id, channels, status.as_str(), now_ms).await?;
        let updated = get_incident_summary(self.p, &mut tx, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn add_note(
        &self,
        id: i64,
        author: &str,
        text: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Note>> {
        let mut tx = self.pool.begin().await?;
        if get_incident_summary(self.p, &mut tx, id).await?.is_none() {
            return Ok(None);
        }
        let note_id: i64 = scalar(self.p, sql::ADD_NOTE_INSERT_NOTES)
            .bind(id)
            .bind(author)
            .bind(text)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
        query(self.p, sql::ADD_NOTE_UPDATE_INCIDENTS)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            self.p,
            &mut tx,
            id,
            now_ms,
            author,
            "note",
            &format!("note #{note_id} added"),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Note {
            id: note_id,
            incident_id: id,
            author: author.to_string(),
            text: text.to_string(),
            created_at: ts(now_ms),
        }))
    }

    async fn get_explanation(&self, id: i64) -> StoreResult<Option<StoredExplanation>> {
        let row = query(self.p, sql::GET_EXPLANATION_SELECT_EXPLANATIONS)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredExplanation {
                text: r.try_get(0)?,
                source: r.try_get(1)?,
                model: r.try_get(2)?,
                generated_at: ts(r.try_get(3)?),
                fallback_reason: r.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn put_explanation(
        &self,
        id: i64,
        e: &StoredExplanation,
        actor: &str,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        query(self.p, sql::PUT_EXPLANATION_INSERT_EXPLANATIONS)
            .bind(id)
            .bind(e.text.as_str())
            .bind(e.source.as_str())
            .bind(e.model.as_deref())
            .bind(e.generated_at.millis())
            .bind(e.fallback_reason.as_deref())
            .execute(&mut *tx)
            .await?;
        audit(
            self.p,
            &mut tx,
            id,
            e.generated_at.millis(),
            actor,
            "explanation",
            &format!("explanation generated ({})", e.source),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn installation_id(&self) -> StoreResult<String> {
        // When the schema was first created, in milliseconds: set once per database.
        let created: Option<i64> = scalar(self.p, sql::INSTALLATION_ID_SELECT_SCHEMA_MIGRATIONS)
            .fetch_one(&self.pool)
            .await?;
        Ok(format!("{:x}", created.unwrap_or(0)))
    }

    async fn due_alerts(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        // Claim: rows another server is claiming right now are skipped, and the claimed
        // ones become due again only when the lease runs out (the claimer crashed).
        let rows = query(self.p,
            "UPDATE alert_outbox SET next_attempt_ms = $3 WHERE id IN (SELECT id FROM alert_outbox o WHERE status = 'pending' AND next_attempt_ms <= $1 AND NOT EXISTS (SELECT 1 FROM alert_outbox e WHERE e.incident_id = o.incident_id AND e.channel = o.channel AND e.status = 'pending' AND e.id < o.id) ORDER BY next_attempt_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, incident_id, channel, kind, attempts",
        )
        .bind(now_ms)
        .bind(limit)
        .bind(now_ms + alert_lease_ms(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.try_get(0)?,
                    incident_id: r.try_get(1)?,
                    channel: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()
            .map(|mut items| {
                items.sort_by_key(|i| i.id);
                items
            })
    }

    async fn next_alert_due_ms(&self) -> StoreResult<Option<i64>> {
        Ok(scalar(self.p, sql::NEXT_ALERT_DUE_MS_SELECT_ALERT_OUTBOX)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn mark_alert_delivered(&self, id: i64, now_ms: i64) -> StoreResult<bool> {
        let res = query(self.p, sql::MARK_ALERT_DELIVERED_UPDATE_ALERT_OUTBOX)
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn mark_alert_failed(
        &self,
        id: i64,
        error: &str,
        next_ms: Option<i64>,
    ) -> StoreResult<()> {
        match next_ms {
            Some(next) => {
                query(self.p, sql::MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX)
                    .bind(error)
                    .bind(next)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                query(self.p, sql::MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX_2)
                    .bind(error)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    async fn alert_counts(&self) -> StoreResult<OutboxCounts> {
        let rows = query(self.p, sql::ALERT_COUNTS_SELECT_ALERT_OUTBOX)
            .fetch_all(&self.pool)
            .await?;
        let mut c = OutboxCounts::default();
        for r in rows {
            let status: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            match status.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }
    async fn upsert_templates(&self, rows: &[StoredTemplate], now_ms: i64) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for r in rows {
            query(
                self.p,
                "INSERT INTO log_templates (service, environment, signature, level, template, first_seen_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (service, environment, signature) DO UPDATE SET template = excluded.template, level = excluded.level, \
                 first_seen_ms = LEAST(log_templates.first_seen_ms, excluded.first_seen_ms), updated_at_ms = excluded.updated_at_ms",
            )
            .bind(r.service.as_str())
            .bind(r.environment.as_str())
            .bind(r.record.signature.to_string())
            .bind(r.record.level.map(|l| l.as_str()))
            .bind(r.record.template.as_str())
            .bind(r.record.first_seen.map(|t| t.millis()))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn templates(&self) -> StoreResult<Vec<StoredTemplate>> {
        let rows = query(self.p, sql::TEMPLATES_SELECT_LOG_TEMPLATES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let signature: String = r.try_get(2)?;
                let level: Option<String> = r.try_get(3)?;
                let first_seen: Option<i64> = r.try_get(5)?;
                Ok(StoredTemplate {
                    service: r.try_get(0)?,
                    environment: r.try_get(1)?,
                    record: watchdog_core::signatures::TemplateRecord {
                        signature: signature.parse().map_err(StoreError::Corrupt)?,
                        level: super::parse_template_level(level.as_deref())?,
                        template: r.try_get(4)?,
                        first_seen: first_seen.map(ts),
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_lease_outlasts_a_claim_delivered_at_the_timeout() {
        for limit in [1, 32, 100] {
            let worst_ms = limit * crate::alerts::DELIVERY_TIMEOUT.as_millis() as i64;
            assert!(alert_lease_ms(limit) > worst_ms, "{limit}");
        }
    }
}
