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
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};

use super::exec::{Arg::Int, Exec, SqliteConn, Tx};
use super::rows::{outbox_item, Columns};
use super::series_ids::SeriesIds;
use super::shared::{insert_sample_batch, Backend, PRUNE_CHUNK};
use super::sql;
use super::{NewRecord, OutboxItem, StoreError, StoreResult};

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
        tokio::spawn(samples::index_loop(
            writer.clone(),
            reader.clone(),
            Arc::downgrade(&alive),
        ));
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
        sqlx::query(sql::MIGRATE_INSERT_SCHEMA_MIGRATIONS)
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

/// The writer's transaction.
type WriteTx = SqliteConn<Transaction<'static, Sqlite>>;

/// Due alerts: the shared rule, read on the writer (there is one process to claim them).
static DUE_ALERTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}{}",
        sql::OUTBOX_COLUMNS,
        sql::DUE_ALERTS_FROM_ALERT_OUTBOX
    )
});

impl SqliteStore {
    fn conn(conn: PoolConnection<Sqlite>) -> SqliteConn<PoolConnection<Sqlite>> {
        SqliteConn {
            conn,
            persistent: true,
        }
    }
}

impl Backend for SqliteStore {
    type Conn = SqliteConn<PoolConnection<Sqlite>>;
    type Tx = WriteTx;

    const SHARED: bool = false;
    const SERIES: &'static str = samples::SERIES_SELECT;
    const ADD_LATE_AFTER_VERDICT: &'static str = "SELECT v.id, v.body FROM verdicts v JOIN deploys d ON d.id = v.deploy_row_id WHERE d.deploy_id = $1 AND d.service = $2 AND d.environment = $3 AND d.deployed_at_ms = $4";
    const RECORD_VERDICT_INSERT_DEPLOYS: &'static str = "INSERT INTO deploys (deploy_id, service, environment, deployed_at_ms, source, received_at_ms) VALUES ($1, $2, $3, $4, 'engine', $5) RETURNING id";
    /// SQLite's two-argument `MIN` is NULL when either is: each side falls back to the other.
    const UPSERT_TEMPLATE: &'static str = "INSERT INTO log_templates (service, environment, signature, level, template, first_seen_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (service, environment, signature) DO UPDATE SET template = excluded.template, level = excluded.level, \
         first_seen_ms = MIN(COALESCE(log_templates.first_seen_ms, excluded.first_seen_ms), COALESCE(excluded.first_seen_ms, log_templates.first_seen_ms)), updated_at_ms = excluded.updated_at_ms";
    /// Samples are found by the index (an entry outlived by its sample keeps a series one
    /// more retention run) and by the rows not indexed yet, whose series are listed once
    /// per statement and only when a series has no entries.
    const DELETE_EMPTY_SERIES: &'static str = "DELETE FROM series WHERE id IN (SELECT id FROM series WHERE id > $1 ORDER BY id LIMIT $2) \
         AND NOT EXISTS (SELECT 1 FROM sample_index i WHERE i.series_id = series.id) \
         AND id NOT IN (SELECT series_id FROM samples WHERE id > (SELECT indexed_through FROM sample_index_state WHERE id = 1))";

    async fn read(&self) -> StoreResult<Self::Conn> {
        Ok(Self::conn(self.reader.acquire().await?))
    }

    async fn write(&self) -> StoreResult<Self::Conn> {
        Ok(Self::conn(self.writer.acquire().await?))
    }

    async fn begin(&self) -> StoreResult<WriteTx> {
        Ok(SqliteConn {
            conn: self.writer.begin().await?,
            persistent: true,
        })
    }

    fn forget_series(&self) {
        self.series_ids.forget();
    }

    async fn insert_sample_rows(&self, rows: &[NewRecord], now_ms: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let (series, created) = samples::resolve(&self.series_ids, &mut tx.conn, rows).await?;
        let keyed: Vec<(i64, &NewRecord)> = series.into_iter().zip(rows).collect();
        let ids = insert_chunked(
            &mut tx.conn,
            "samples",
            &["series_id", "ts_ms", "body"],
            &keyed,
            |q, (series, r)| q.bind(*series).bind(r.ts_ms).bind(r.body.as_str()),
        )
        .await?;
        insert_sample_batch(&mut tx, ids, rows, now_ms).await?;
        tx.commit().await?;
        self.series_ids.remember(created);
        Ok(())
    }

    async fn insert_log_rows(&self, rows: &[NewRecord]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_chunked(
            &mut tx.conn,
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

    /// The index entries of the deleted samples, a few hundred series a transaction so
    /// that ingestion takes turns with it.
    async fn prune_extra(&self, before_ms: i64) -> StoreResult<()> {
        let mut after = 0i64;
        loop {
            let mut tx = self.begin().await?;
            let args = [Int(after), Int(PRUNE_CHUNK), Int(before_ms)];
            tx.execute(samples::PRUNE_INDEX, &args).await?;
            let last = tx
                .fetch_one(sql::PRUNE_SELECT_SERIES, &args[..2])
                .await?
                .opt_int(0)?;
            tx.commit().await?;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        Ok(())
    }

    async fn claim_due_alerts(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        let sql = DUE_ALERTS.as_str();
        let args = [Int(now_ms), Int(limit)];
        let rows = self.write().await?.fetch_all(sql, &args).await?;
        rows.iter().map(outbox_item).collect()
    }
}
