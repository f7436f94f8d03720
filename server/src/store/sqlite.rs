//! The embedded SQLite store: one file `watchdog.db` in the state directory.
//!
//! Durability: WAL journal with `synchronous = NORMAL`. A committed transaction is in the
//! WAL file before the commit returns, so a crash of the process (kill -9, panic, OOM)
//! loses nothing acknowledged; only a power loss or kernel crash can lose the last commits
//! before the next WAL sync. `synchronous = FULL` (flag `--sqlite-synchronous full`) closes
//! that gap at the cost of an fsync per ingestion request.
//!
//! Writes go through a pool of one connection (SQLite has one writer; queuing in-process
//! is cheaper than SQLite's busy-wait), reads through a separate pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
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
use samples::SeriesIds;

mod samples;

/// Embedded migrations, applied in order at start.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        10,
        include_str!("../../migrations/sqlite/0010_log_templates.sql"),
    ),
    (20, include_str!("../../migrations/sqlite/0020_series.sql")),
];

/// Rows per multi-row INSERT: 3 or 4 parameters each stays far below SQLite's 32766 limit, and
/// the statement for a full chunk is prepared once per connection and reused.
const CHUNK_ROWS: usize = 256;

/// How durable a commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = NORMAL` in WAL mode: survives process crashes.
    #[default]
    Normal,
    /// `synchronous = FULL`: also survives power loss, one fsync per commit.
    Full,
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(format!(
                "unknown sqlite synchronous mode {other:?}; expected normal or full"
            )),
        }
    }
}

/// WAL size (pages of 4 KiB) at which the writer checkpoints by itself: only a backstop
/// for when the background checkpointer falls behind.
const WRITER_AUTOCHECKPOINT_PAGES: &str = "16384";

/// Page cache of the writer connection (negative: KiB), 64 MiB. The index pass touches
/// the last leaf page of every live series (10,000 series: about 40 MiB); with SQLite's
/// default of 2 MiB each pass would read most of them back from the file.
const WRITER_CACHE_KIB: &str = "-65536";

/// How often the background task copies the WAL into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Series ids of recently written label pairs.
    series_ids: SeriesIds,
    /// Alive while any clone of the store is; the checkpoint task stops when it is gone.
    _alive: Arc<()>,
}

impl SqliteStore {
    /// Opens (creating when missing) `watchdog.db` in `state_dir` and applies migrations.
    ///
    /// # Errors
    /// When the directory cannot be created or the database cannot be opened or migrated.
    pub async fn open(state_dir: &Path, durability: Durability) -> StoreResult<Self> {
        Self::open_file(&state_dir.join("watchdog.db"), durability).await
    }

    /// Opens (creating when missing) the database file `path`, creating its directory,
    /// and applies migrations.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_file(path: &Path, durability: Durability) -> StoreResult<Self> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::StateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .statement_cache_capacity(256);
        // Checkpoints (copying the WAL into the database file) would otherwise run on the
        // one writer connection, after the commit that crosses the threshold, and hold up
        // every ingestion request queued behind it. A background connection does them on
        // the other core instead.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(
                opts.clone()
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
                    .pragma("cache_size", WRITER_CACHE_KIB),
            )
            .await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        let alive = Arc::new(());
        tokio::spawn(checkpoint_loop(checkpointer, Arc::downgrade(&alive)));
        tokio::spawn(samples::index_loop(writer.clone(), Arc::downgrade(&alive)));
        Ok(SqliteStore {
            writer,
            reader,
            series_ids: SeriesIds::default(),
            _alive: alive,
        })
    }
}

/// Runs passive checkpoints (they never block the writer or readers) until the store is
/// dropped. A passive checkpoint that copies the whole WAL lets the next write start the
/// WAL file over, so it stays a few dozen MiB under sustained ingestion.
async fn checkpoint_loop(pool: SqlitePool, alive: Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            break;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer will checkpoint instead");
        }
    }
    pool.close().await;
}

async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, sql) in MIGRATIONS {
        let done: Option<i64> = sqlx::query_scalar(sql::MIGRATE_SELECT_SCHEMA_MIGRATIONS)
            .bind(version)
            .fetch_optional(pool)
            .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = pool.begin().await?;
        // One statement at a time: portable, and errors point at the statement.
        for stmt in split_sql(sql) {
            sqlx::raw_sql(AssertSqlSafe(stmt)).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

/// Splits a migration file into statements (no semicolons inside strings in our files).
fn split_sql(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `INSERT INTO table (cols) VALUES (?,…),(…)` for `rows` rows of `cols` columns.
///
/// Anonymous `?` placeholders on purpose: for each parameter sqlx asks SQLite for its name,
/// and SQLite finds a name by scanning the list of named parameters, so `$1…$1024` made
/// binding one full chunk quadratic (40% of the server's time under load).
fn multi_insert(table: &str, cols: &[&str], rows: usize) -> String {
    let row = format!("({})", vec!["?"; cols.len()].join(","));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    sql.reserve(rows * (row.len() + 1));
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    sql
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

/// Inserts `rows` with multi-row INSERTs of [`CHUNK_ROWS`] rows, `bind` binding the
/// `cols` of one row. Returns the first and last new id.
async fn insert_chunked<'r, T>(
    tx: &mut Transaction<'static, Sqlite>,
    table: &str,
    cols: &[&str],
    rows: &'r [T],
    bind: impl Fn(SqliteQuery<'r>, &'r T) -> SqliteQuery<'r>,
) -> StoreResult<(i64, i64)> {
    let full_sql = multi_insert(table, cols, CHUNK_ROWS);
    let mut first_id = None;
    for chunk in rows.chunks(CHUNK_ROWS) {
        let persistent = chunk.len() == CHUNK_ROWS;
        let sql = if persistent {
            full_sql.clone()
        } else {
            multi_insert(table, cols, chunk.len())
        };
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(persistent);
        for r in chunk {
            q = bind(q, r);
        }
        let res = q.execute(&mut **tx).await?;
        let last = res.last_insert_rowid();
        if first_id.is_none() {
            first_id = Some(last - chunk.len() as i64 + 1);
        }
    }
    let last: i64 = sqlx::query_scalar("SELECT last_insert_rowid()")
        .fetch_one(&mut **tx)
        .await?;
    Ok((first_id.unwrap_or(last), last))
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    binds: &[Bind],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

async fn get_incident_summary(
    conn: &mut sqlx::SqliteConnection,
    id: i64,
) -> StoreResult<Option<IncidentSummary>> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(incident_summary).transpose()
}

async fn audit(
    conn: &mut sqlx::SqliteConnection,
    incident_id: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(sql::AUDIT_INSERT_AUDIT)
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
    conn: &mut sqlx::SqliteConnection,
    incident_id: i64,
    channels: &[String],
    kind: &str,
    now_ms: i64,
) -> StoreResult<()> {
    for channel in channels {
        sqlx::query(sql::ENQUEUE_ALERTS_INSERT_ALERT_OUTBOX)
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
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(sql::PING_SELECT).execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_samples(&self, rows: &[NewRecord], now_ms: i64) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        let (series, created) = self.series_ids.resolve(&mut tx, rows).await?;
        let keyed: Vec<(i64, &NewRecord)> = series.into_iter().zip(rows).collect();
        let (first, last) = insert_chunked(
            &mut tx,
            "samples",
            &["series_id", "ts_ms", "body"],
            &keyed,
            |q, (series, r)| q.bind(*series).bind(r.ts_ms).bind(r.body.as_str()),
        )
        .await?;
        let min_ts = rows.iter().map(|r| r.ts_ms).min().unwrap_or(0);
        let max_ts = rows.iter().map(|r| r.ts_ms).max().unwrap_or(0);
        sqlx::query(sql::INSERT_SAMPLES_INSERT_SAMPLE_BATCHES)
            .bind(first)
            .bind(last)
            .bind(min_ts)
            .bind(max_ts)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.series_ids.remember(created);
        Ok(())
    }

    async fn insert_logs(&self, rows: &[NewRecord]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        insert_chunked(
            &mut tx,
            "logs",
            &["ts_ms", "service", "environment", "body"],
            rows,
            |q, r| {
                q.bind(r.ts_ms)
                    .bind(r.service.as_str())
                    .bind(r.environment.as_str())
                    .bind(r.body.as_str())
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_deploys(
        &self,
        rows: &[NewDeploy],
        now_ms: i64,
    ) -> StoreResult<Vec<Option<i64>>> {
        let mut tx = self.writer.begin().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in rows {
            let id: Option<i64> = sqlx::query_scalar(sql::INSERT_DEPLOYS_INSERT_DEPLOYS)
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
        let start: Option<i64> = sqlx::query_scalar(sql::SAMPLES_SINCE_SELECT_SAMPLE_BATCHES)
            .bind(from_ms)
            .fetch_one(&self.reader)
            .await?;
        let Some(start) = start else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sql::SAMPLES_SINCE_SELECT_SAMPLES)
            .bind(start)
            .bind(after_id)
            .bind(from_ms)
            .bind(limit)
            .fetch_all(&self.reader)
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
        let rows = sqlx::query(sql::LOGS_SINCE_SELECT_LOGS)
            .bind(from_ms)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.reader)
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
        let rows = sqlx::query(sql::DEPLOYS_SINCE_SELECT_DEPLOYS)
            .bind(from_ms)
            .fetch_all(&self.reader)
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

    async fn prune(&self, before_ms: i64) -> StoreResult<Pruned> {
        const CHUNK: i64 = 200;
        let mut pruned = Pruned::default();
        loop {
            let mut tx = self.writer.begin().await?;
            let batches = sqlx::query(sql::PRUNE_SELECT_SAMPLE_BATCHES)
                .bind(before_ms)
                .bind(CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            for b in &batches {
                let (id, first, last): (i64, i64, i64) =
                    (b.try_get(0)?, b.try_get(1)?, b.try_get(2)?);
                // The time test keeps another batch's newer rows that share the id range
                // (concurrent writers may interleave ids).
                let done = sqlx::query(sql::PRUNE_DELETE_SAMPLES)
                    .bind(first)
                    .bind(last)
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?;
                pruned.samples += done.rows_affected();
                sqlx::query(sql::PRUNE_DELETE_SAMPLE_BATCHES)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            if (batches.len() as i64) < CHUNK {
                break;
            }
        }
        // The index entries of the deleted samples, a few hundred series a transaction so
        // that ingestion waits for the writer no longer than for one index pass.
        let mut after = 0i64;
        loop {
            let mut tx = self.writer.begin().await?;
            sqlx::query(samples::PRUNE_INDEX)
                .bind(after)
                .bind(CHUNK)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(id) FROM (SELECT id FROM series WHERE id > $1 ORDER BY id LIMIT $2)",
            )
            .bind(after)
            .bind(CHUNK)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        loop {
            let done = sqlx::query(sql::PRUNE_DELETE_LOGS)
                .bind(before_ms)
                .bind(CHUNK * 50)
                .execute(&self.writer)
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
        Ok(sqlx::query_scalar(sql)
            .bind(before_ms)
            .fetch_one(&self.reader)
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
        let rows = sqlx::query(samples::SERIES_SELECT)
            .bind(service)
            .bind(environment)
            .bind(from_ms)
            .bind(to_ms)
            .bind(limit)
            .fetch_all(&self.reader)
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
        let a: Option<i64> = sqlx::query_scalar(sql::LATEST_EVENT_MS_SELECT_SAMPLE_BATCHES)
            .fetch_one(&self.reader)
            .await?;
        let b: Option<i64> = sqlx::query_scalar(sql::LATEST_EVENT_MS_SELECT_DEPLOYS)
            .fetch_one(&self.reader)
            .await?;
        Ok(a.max(b))
    }

    async fn add_late_after_verdict(&self, deploy: &Deploy, samples: u64) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT v.id, v.body FROM verdicts v JOIN deploys d ON d.id = v.deploy_row_id WHERE d.deploy_id = $1 AND d.service = $2 AND d.environment = $3 AND d.deployed_at_ms = $4",
        )
        .bind(deploy.deploy_id.as_str())
        .bind(deploy.service.as_str())
        .bind(deploy.environment.as_str())
        .bind(deploy.timestamp.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, body)) = found else {
            return Ok(false);
        };
        let body = super::with_late_after_verdict(&body, samples)?;
        sqlx::query(sql::ADD_LATE_AFTER_VERDICT_UPDATE_VERDICTS)
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
        let mut tx = self.writer.begin().await?;
        let deploy_row_id: i64 = match sqlx::query_scalar(
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
                sqlx::query_scalar(
                    "INSERT INTO deploys (deploy_id, service, environment, deployed_at_ms, source, received_at_ms) VALUES ($1, $2, $3, $4, 'engine', $5) RETURNING id",
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
        let inserted: Option<i64> = sqlx::query_scalar(sql::RECORD_VERDICT_INSERT_VERDICTS)
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
            let id: i64 = sqlx::query_scalar(sql::RECORD_VERDICT_INSERT_INCIDENTS)
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
                &mut tx,
                id,
                now_ms,
                "watchdog",
                "opened",
                &format!("opened by a regression verdict ({} severity)", new.severity),
            )
            .await?;
            enqueue_alerts(&mut tx, id, &new.channels, "opened", now_ms).await?;
            opened = get_incident_summary(&mut tx, id).await?;
        }
        let sql = format!("SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} WHERE d.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
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
            let mut cq = sqlx::query_scalar(AssertSqlSafe(count_sql));
            for b in &binds {
                cq = match b {
                    Bind::Text(s) => cq.bind(s.clone()),
                    Bind::Int(i) => cq.bind(*i),
                };
            }
            cq.fetch_one(&self.reader).await?
        };
        let n = binds.len();
        let sql = format!(
            "SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} {where_sql} ORDER BY d.deployed_at_ms DESC, d.id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        binds.push(Bind::Int(q.limit));
        binds.push(Bind::Int(q.offset));
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.reader)
            .await?;
        let items = rows.iter().map(deploy_row).collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn get_deploy(&self, id: i64) -> StoreResult<Option<DeployRow>> {
        let sql = format!("SELECT {DEPLOY_COLUMNS} {DEPLOY_FROM} WHERE d.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
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
            let mut cq = sqlx::query_scalar(AssertSqlSafe(count_sql));
            for b in &binds {
                cq = match b {
                    Bind::Text(s) => cq.bind(s.clone()),
                    Bind::Int(i) => cq.bind(*i),
                };
            }
            cq.fetch_one(&self.reader).await?
        };
        let n = binds.len();
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {where_sql} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        binds.push(Bind::Int(q.limit));
        binds.push(Bind::Int(q.offset));
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.reader)
            .await?;
        let items = rows
            .iter()
            .map(incident_summary)
            .collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn get_incident(&self, id: i64) -> StoreResult<Option<IncidentRecord>> {
        let mut conn = self.reader.acquire().await?;
        let Some(summary) = get_incident_summary(&mut conn, id).await? else {
            return Ok(None);
        };
        let body: String = sqlx::query_scalar(sql::GET_INCIDENT_SELECT_VERDICTS)
            .bind(summary.deploy_row_id)
            .fetch_one(&mut *conn)
            .await?;
        let verdict = parse_verdict(&body)?;
        let notes = sqlx::query(sql::GET_INCIDENT_SELECT_NOTES)
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
        let audit = sqlx::query(sql::GET_INCIDENT_SELECT_AUDIT)
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
        let mut tx = self.writer.begin().await?;
        let Some(current) = get_incident_summary(&mut tx, id).await? else {
            return Ok(None);
        };
        if current.status == status {
            tx.rollback().await?;
            return Ok(Some(current));
        }
        sqlx::query(sql::SET_STATUS_UPDATE_INCIDENTS)
            .bind(status.as_str())
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            id,
            now_ms,
            actor,
            "status",
            &format!("status {} -> {}", current.status.as_str(), status.as_str()),
        )
        .await?;
        enqueue_alerts(&mut tx, id, channels, status.as_str(), now_ms).await?;
        let updated = get_incident_summary(&mut tx, id).await?;
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
        let mut tx = self.writer.begin().await?;
        if get_incident_summary(&mut tx, id).await?.is_none() {
            return Ok(None);
        }
        let note_id: i64 = sqlx::query_scalar(sql::ADD_NOTE_INSERT_NOTES)
            .bind(id)
            .bind(author)
            .bind(text)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(sql::ADD_NOTE_UPDATE_INCIDENTS)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
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
        let row = sqlx::query(sql::GET_EXPLANATION_SELECT_EXPLANATIONS)
            .bind(id)
            .fetch_optional(&self.reader)
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
        let mut tx = self.writer.begin().await?;
        sqlx::query(sql::PUT_EXPLANATION_INSERT_EXPLANATIONS)
            .bind(id)
            .bind(e.text.as_str())
            .bind(e.source.as_str())
            .bind(e.model.as_deref())
            .bind(e.generated_at.millis())
            .bind(e.fallback_reason.as_deref())
            .execute(&mut *tx)
            .await?;
        audit(
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
        let created: Option<i64> =
            sqlx::query_scalar(sql::INSTALLATION_ID_SELECT_SCHEMA_MIGRATIONS)
                .fetch_one(&self.writer)
                .await?;
        Ok(format!("{:x}", created.unwrap_or(0)))
    }

    async fn due_alerts(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT id, incident_id, channel, kind, attempts FROM alert_outbox o WHERE status = 'pending' AND next_attempt_ms <= $1 AND NOT EXISTS (SELECT 1 FROM alert_outbox e WHERE e.incident_id = o.incident_id AND e.channel = o.channel AND e.status = 'pending' AND e.id < o.id) ORDER BY next_attempt_ms, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.writer)
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
            .collect()
    }

    async fn next_alert_due_ms(&self) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar(sql::NEXT_ALERT_DUE_MS_SELECT_ALERT_OUTBOX)
                .fetch_one(&self.writer)
                .await?,
        )
    }

    async fn mark_alert_delivered(&self, id: i64, now_ms: i64) -> StoreResult<bool> {
        let res = sqlx::query(sql::MARK_ALERT_DELIVERED_UPDATE_ALERT_OUTBOX)
            .bind(now_ms)
            .bind(id)
            .execute(&self.writer)
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
                sqlx::query(sql::MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX)
                    .bind(error)
                    .bind(next)
                    .bind(id)
                    .execute(&self.writer)
                    .await?
            }
            None => {
                sqlx::query(sql::MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX_2)
                    .bind(error)
                    .bind(id)
                    .execute(&self.writer)
                    .await?
            }
        };
        Ok(())
    }

    async fn alert_counts(&self) -> StoreResult<OutboxCounts> {
        let rows = sqlx::query(sql::ALERT_COUNTS_SELECT_ALERT_OUTBOX)
            .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO log_templates (service, environment, signature, level, template, first_seen_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (service, environment, signature) DO UPDATE SET template = excluded.template, level = excluded.level, \
                 first_seen_ms = MIN(COALESCE(log_templates.first_seen_ms, excluded.first_seen_ms), COALESCE(excluded.first_seen_ms, log_templates.first_seen_ms)), updated_at_ms = excluded.updated_at_ms",
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
        let rows = sqlx::query(sql::TEMPLATES_SELECT_LOG_TEMPLATES)
            .fetch_all(&self.reader)
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
