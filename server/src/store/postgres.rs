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

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row, SqlSafeStr, Transaction};

use super::exec::{Arg::Int, Exec, PgConn, Tx};
use super::rows::outbox_item;
use super::series_ids::{Lookup, NewSeries, SeriesIds};
use super::shared::{insert_sample_batch, Backend};
use super::sql;
use super::{Lease, LeaseRole, NewRecord, OutboxItem, StoreError, StoreResult};

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
    (
        20261202000030,
        include_str!("../../../supabase/migrations/20261202000030_series_state.sql"),
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

/// Creates the `series` rows of label pairs not seen before and returns the id of every
/// pair given: the rows it created (`RETURNING`: the statement's own snapshot does not
/// see them) and the ones that were there. Series rows are only created under the sample
/// insert lock, so no other transaction creates one of these pairs meanwhile; sorted all
/// the same, so that row locks are taken in one order.
const RESOLVE_SERIES: &str = "WITH want AS (SELECT DISTINCT service, environment FROM UNNEST($1::TEXT[], $2::TEXT[]) AS t(service, environment)), \
     ins AS (INSERT INTO series (service, environment) SELECT service, environment FROM want ORDER BY service, environment ON CONFLICT DO NOTHING RETURNING id, service, environment) \
     SELECT id, service, environment FROM ins \
     UNION ALL SELECT r.id, r.service, r.environment FROM series r JOIN want w ON r.service = w.service AND r.environment = w.environment";

/// The count of series deletions (see `series_state.sql`), read under the insert lock.
const SERIES_GENERATION: &str = "SELECT generation FROM series_state WHERE id = 1";

/// Inserts samples with their series ids, in the order given (ids follow `n`), and
/// returns the first and last new id.
const INSERT_SAMPLES: &str = "WITH ins AS (INSERT INTO samples (ts_ms, series_id, body) SELECT t.ts_ms, t.series_id, t.body FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) WITH ORDINALITY AS t(ts_ms, series_id, body, n) ORDER BY t.n RETURNING id) SELECT MIN(id), MAX(id) FROM ins";

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
    /// Series ids resolved lately (see [`super::series_ids`]).
    series_ids: SeriesIds,
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
            series_ids: SeriesIds::default(),
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
            "TRUNCATE samples, series, sample_batches, logs, deploys, verdicts, incidents, notes, audit, explanations, alert_outbox, log_templates RESTART IDENTITY; \
             UPDATE series_state SET generation = generation + 1 WHERE id = 1",
        )
        .execute(&self.pool)
        .await?;
        self.series_ids.forget();
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

/// Inserts log records in one statement (arrays unnested server-side: one round trip and
/// one plan whatever the batch size). Returns the first and last new id.
async fn insert_logs(
    p: bool,
    conn: &mut PgConnection,
    rows: &[NewRecord],
) -> StoreResult<(i64, i64)> {
    let ts: Vec<i64> = rows.iter().map(|r| r.ts_ms).collect();
    let services: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
    let envs: Vec<&str> = rows.iter().map(|r| r.environment.as_str()).collect();
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    let row = query(
        p,
        "WITH ins AS (INSERT INTO logs (ts_ms, service, environment, body) SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) RETURNING id) SELECT MIN(id), MAX(id) FROM ins",
    )
    .bind(ts)
    .bind(services)
    .bind(envs)
    .bind(bodies)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Inserts samples under their series ids: the ids the cache knows (after checking, under
/// the insert lock the caller holds, that no server deleted series since), the others
/// resolved in one statement that creates the new pairs. Returns the first and last new
/// id and the pairs resolved, to remember once the transaction commits.
async fn insert_samples(
    p: bool,
    conn: &mut PgConnection,
    cache: &SeriesIds,
    rows: &[NewRecord],
) -> StoreResult<((i64, i64), NewSeries)> {
    let generation: i64 = scalar(p, SERIES_GENERATION).fetch_one(&mut *conn).await?;
    cache.at_generation(generation);
    let Lookup {
        mut ids,
        missing,
        mut found,
    } = cache.lookup(rows);
    if !missing.is_empty() {
        let (services, envs): (Vec<&str>, Vec<&str>) = missing.keys().copied().unzip();
        let resolved: Vec<(i64, String, String)> = sqlx::query_as(RESOLVE_SERIES)
            .persistent(p)
            .bind(&services)
            .bind(&envs)
            .fetch_all(&mut *conn)
            .await?;
        for (id, service, environment) in resolved {
            if let Some(at) = missing.get(&(service.as_str(), environment.as_str())) {
                for &i in at {
                    ids[i] = id;
                }
                found.add(&service, &environment, id);
            }
        }
        if let Some(i) = ids.iter().position(|&id| id == 0) {
            return Err(StoreError::Corrupt(format!(
                "no series row for service {:?}, environment {:?} after creating it",
                rows[i].service, rows[i].environment
            )));
        }
    }
    let ts: Vec<i64> = rows.iter().map(|r| r.ts_ms).collect();
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    let row = query(p, INSERT_SAMPLES)
        .bind(ts)
        .bind(ids)
        .bind(bodies)
        .fetch_one(&mut *conn)
        .await?;
    Ok(((row.try_get(0)?, row.try_get(1)?), found))
}

/// The pool's transaction.
type WriteTx = PgConn<Transaction<'static, Postgres>>;

/// Claims due alerts: rows another server is claiming right now are skipped, and the
/// claimed ones become due again only when the lease (`$3`) runs out (the claimer crashed).
static CLAIM_DUE_ALERTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE alert_outbox SET next_attempt_ms = $3 WHERE id IN (SELECT id{} FOR UPDATE SKIP LOCKED) RETURNING {}",
        sql::DUE_ALERTS_FROM_ALERT_OUTBOX,
        sql::OUTBOX_COLUMNS
    )
});

impl Backend for PostgresStore {
    type Conn = PgConn<PoolConnection<Postgres>>;
    type Tx = WriteTx;

    const SHARED: bool = true;
    const SERIES: &'static str = SERIES_SELECT_SAMPLES;
    /// FOR UPDATE: replicas adding counts to the same verdict take turns.
    const ADD_LATE_AFTER_VERDICT: &'static str = "SELECT v.id, v.body FROM verdicts v JOIN deploys d ON d.id = v.deploy_row_id WHERE d.deploy_id = $1 AND d.service = $2 AND d.environment = $3 AND d.deployed_at_ms = $4 FOR UPDATE OF v";
    /// A replica may be storing the same deploy meanwhile: the update returns its id.
    const RECORD_VERDICT_INSERT_DEPLOYS: &'static str = "INSERT INTO deploys (deploy_id, service, environment, deployed_at_ms, source, received_at_ms) VALUES ($1, $2, $3, $4, 'engine', $5) ON CONFLICT (deploy_id, service, environment, deployed_at_ms) DO UPDATE SET source = deploys.source RETURNING id";
    /// `LEAST` ignores NULLs.
    const UPSERT_TEMPLATE: &'static str = "INSERT INTO log_templates (service, environment, signature, level, template, first_seen_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (service, environment, signature) DO UPDATE SET template = excluded.template, level = excluded.level, \
         first_seen_ms = LEAST(log_templates.first_seen_ms, excluded.first_seen_ms), updated_at_ms = excluded.updated_at_ms";
    /// Counts the deletion in `series_state` for the other servers' caches (once a
    /// chunk, whether it deleted any: a needless count costs one query per pair later).
    const DELETE_EMPTY_SERIES: &'static str = "WITH g AS (UPDATE series_state SET generation = generation + 1 WHERE id = 1) \
         DELETE FROM series s WHERE s.id IN (SELECT id FROM series WHERE id > $1 ORDER BY id LIMIT $2) \
         AND NOT EXISTS (SELECT 1 FROM samples x WHERE x.series_id = s.id)";

    async fn read(&self) -> StoreResult<Self::Conn> {
        Ok(PgConn {
            conn: self.pool.acquire().await?,
            persistent: self.p,
        })
    }

    async fn write(&self) -> StoreResult<Self::Conn> {
        self.read().await
    }

    async fn begin(&self) -> StoreResult<WriteTx> {
        Ok(PgConn {
            conn: self.pool.begin().await?,
            persistent: self.p,
        })
    }

    async fn lock_deploys(&self, tx: &mut WriteTx) -> StoreResult<()> {
        lock(self.p, &mut tx.conn, LOCK_DEPLOYS).await
    }

    fn forget_series(&self) {
        self.series_ids.forget();
    }

    /// The lock [`Backend::insert_sample_rows`] takes before it creates series.
    async fn lock_samples(&self, tx: &mut WriteTx) -> StoreResult<()> {
        lock(self.p, &mut tx.conn, LOCK_SAMPLES).await
    }

    async fn insert_sample_rows(&self, rows: &[NewRecord], now_ms: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock(self.p, &mut tx.conn, LOCK_SAMPLES).await?;
        let (ids, found) = insert_samples(self.p, &mut tx.conn, &self.series_ids, rows).await?;
        insert_sample_batch(&mut tx, ids, rows, now_ms).await?;
        tx.commit().await?;
        self.series_ids.remember(found);
        Ok(())
    }

    async fn insert_log_rows(&self, rows: &[NewRecord]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock(self.p, &mut tx.conn, LOCK_LOGS).await?;
        insert_logs(self.p, &mut tx.conn, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lead(&self, role: LeaseRole) -> StoreResult<Option<Lease>> {
        let key = match role {
            LeaseRole::PrometheusPuller => LOCK_PROMETHEUS_PULLER,
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
        Ok(Some(Lease(Box::new(AdvisoryLease { conn: Some(conn) }))))
    }

    async fn claim_due_alerts(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        let sql = CLAIM_DUE_ALERTS.as_str();
        let args = [Int(now_ms), Int(limit), Int(now_ms + alert_lease_ms(limit))];
        let rows = self.write().await?.fetch_all(sql, &args).await?;
        let mut items = rows
            .iter()
            .map(outbox_item)
            .collect::<StoreResult<Vec<_>>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
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
