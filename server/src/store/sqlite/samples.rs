//! How the SQLite store keeps metric samples: rows keyed by an interned series id,
//! appended in id order, and a series index built in bulk behind ingestion (migration
//! `0020_series.sql` says why).
//!
//! - [`SeriesIds`] maps (service, environment) to the id of its `series` row, so that a
//!   commit resolves a label pair with a hash lookup instead of a query.
//! - [`index_loop`] copies the rows written since the last pass into `sample_index`,
//!   sorted by series, on the writer connection.
//! - [`SERIES_SELECT`] reads one series through the index plus the rows not indexed yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::store::{NewRecord, StoreResult};

/// How often the indexer runs. Each pass costs about a page write per series it touches,
/// so fewer, larger passes are cheaper per sample: in `scripts/eval/sqlite_index.py bulk`
/// (10,000 series, 5,000-row commits) passes of 100k rows cost 2.7 s per million rows
/// indexed, passes of 500k rows 1.1 s. At 100k samples/s five seconds is a 500k-row
/// pass (it holds the writer for about half a second: the p99 of a soak's requests);
/// at ordinary rates a pass is small and quick.
const INDEX_INTERVAL: Duration = Duration::from_secs(5);

/// Label pairs remembered at most; the map is emptied when it would grow past this (the
/// `series` table keeps every pair, so a forgotten one costs one query the next time).
/// Churning names (pods) would otherwise grow it for as long as the server runs.
const MAX_CACHED_SERIES: usize = 100_000;

/// The series id of each label pair seen lately, by environment and then service: two
/// levels so that a lookup borrows the row's strings instead of building a key.
#[derive(Debug, Default, Clone)]
pub(super) struct SeriesIds(Arc<Mutex<Known>>);

#[derive(Debug, Default)]
struct Known {
    by_env: HashMap<String, HashMap<String, i64>>,
    len: usize,
}

impl SeriesIds {
    /// The series id of every row, creating `series` rows for new pairs inside `tx`.
    /// Returns the ids and the pairs created, to [`SeriesIds::remember`] once `tx` has
    /// committed (a rolled-back id must not be cached).
    pub(super) async fn resolve(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        rows: &[NewRecord],
    ) -> StoreResult<(Vec<i64>, Vec<((String, String), i64)>)> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut missing: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        {
            let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for (i, r) in rows.iter().enumerate() {
                match known
                    .by_env
                    .get(r.environment.as_str())
                    .and_then(|m| m.get(r.service.as_str()))
                {
                    Some(&id) => ids.push(id),
                    None => {
                        ids.push(0);
                        missing
                            .entry((r.service.as_str(), r.environment.as_str()))
                            .or_default()
                            .push(i);
                    }
                }
            }
        }
        let mut found = Vec::with_capacity(missing.len());
        for ((service, environment), at) in missing {
            let id: i64 =
                match sqlx::query_scalar(
                    "SELECT id FROM series WHERE service = $1 AND environment = $2",
                )
                .bind(service)
                .bind(environment)
                .fetch_optional(&mut **tx)
                .await?
                {
                    Some(id) => id,
                    None => sqlx::query_scalar(
                        "INSERT INTO series (service, environment) VALUES ($1, $2) RETURNING id",
                    )
                    .bind(service)
                    .bind(environment)
                    .fetch_one(&mut **tx)
                    .await?,
                };
            for i in at {
                ids[i] = id;
            }
            found.push(((service.to_string(), environment.to_string()), id));
        }
        Ok((ids, found))
    }

    /// Caches pairs whose rows are committed.
    pub(super) fn remember(&self, found: Vec<((String, String), i64)>) {
        if found.is_empty() {
            return;
        }
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.len + found.len() > MAX_CACHED_SERIES {
            *known = Known::default();
        }
        for ((service, environment), id) in found {
            if known
                .by_env
                .entry(environment)
                .or_default()
                .insert(service, id)
                .is_none()
            {
                known.len += 1;
            }
        }
    }
}

/// One series' samples in a time range, ordered by event time: the indexed rows, and the
/// rows written since the last index pass (a range scan of the newest ids, at most one
/// [`INDEX_INTERVAL`] of ingestion). One statement, so it reads one snapshot and an index
/// pass committing meanwhile cannot make a row appear twice or not at all.
pub(super) const SERIES_SELECT: &str = "WITH s AS (SELECT id FROM series WHERE service = $1 AND environment = $2), \
     pos AS (SELECT indexed_through FROM sample_index_state WHERE id = 1) \
     SELECT id, body FROM ( \
       SELECT x.id, x.ts_ms, x.body FROM sample_index i JOIN samples x ON x.id = i.sample_id \
         WHERE i.series_id = (SELECT id FROM s) AND i.ts_ms >= $3 AND i.ts_ms <= $4 \
       UNION ALL \
       SELECT id, ts_ms, body FROM samples \
         WHERE id > (SELECT indexed_through FROM pos) AND series_id = (SELECT id FROM s) AND ts_ms >= $3 AND ts_ms <= $4 \
     ) ORDER BY ts_ms, id LIMIT $5";

/// Deletes index entries older than `$3` of the series with ids after `$1` (at most `$2`
/// series a statement). An entry outlived by its sample is harmless (the join drops it).
/// A sample older than the cut that retention keeps because its batch reaches past the
/// cut loses its entry: reads of one series then start at the cut, as they would once
/// the whole batch is gone.
pub(super) const PRUNE_INDEX: &str = "DELETE FROM sample_index WHERE series_id IN (SELECT id FROM series WHERE id > $1 ORDER BY id LIMIT $2) AND ts_ms < $3";

/// Indexes the rows written since the last pass; returns how many.
///
/// # Errors
/// Database failures; the position is only moved in the same transaction as the entries.
pub(super) async fn index_pass(writer: &SqlitePool) -> StoreResult<u64> {
    let mut tx = writer.begin().await?;
    let from: i64 =
        sqlx::query_scalar("SELECT indexed_through FROM sample_index_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
    let Some(to) = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM samples")
        .fetch_one(&mut *tx)
        .await?
        .filter(|&to| to > from)
    else {
        tx.rollback().await?;
        return Ok(0);
    };
    // Sorted, so the entries go into the B-tree in key order: each leaf page is loaded
    // and written once for all of its new entries.
    let done = sqlx::query(
        "INSERT OR IGNORE INTO sample_index (series_id, ts_ms, sample_id) SELECT series_id, ts_ms, id FROM samples WHERE id > $1 AND id <= $2 ORDER BY series_id, ts_ms, id",
    )
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sample_index_state SET indexed_through = $1 WHERE id = 1")
        .bind(to)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Runs [`index_pass`] every [`INDEX_INTERVAL`] until the store is dropped.
pub(super) async fn index_loop(writer: SqlitePool, alive: Weak<()>) {
    let mut tick = tokio::time::interval(INDEX_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; nothing needs indexing at open (the migration indexed
    // what it converted, and a pass before a crash left at most one interval behind,
    // which reads scan).
    tick.tick().await;
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            break;
        }
        if let Err(e) = index_pass(&writer).await {
            // Nothing is lost: the rows stay readable by the scan of unindexed ids, and
            // the next pass starts from the same position.
            tracing::warn!(error = %e, "indexing new samples failed; will try again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore, MIGRATIONS};
    use crate::store::Store;

    fn record(ts_ms: i64, service: &str) -> NewRecord {
        NewRecord {
            ts_ms,
            service: service.into(),
            environment: "production".into(),
            body: format!(
                "{{\"timestamp\":{ts_ms},\"service\":\"{service}\",\"environment\":\"production\",\"error_rate\":0.01}}"
            ),
        }
    }

    /// Runs an index pass (the background one may have run first) and checks that no
    /// row is left unindexed.
    async fn index_all(store: &SqliteStore) {
        index_pass(&store.writer).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM samples WHERE id > (SELECT indexed_through FROM sample_index_state)",
        )
        .fetch_one(&store.reader)
        .await
        .unwrap();
        assert_eq!(left, 0);
    }

    fn ids(rows: &[crate::store::StoredRecord]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    /// A series reads the same before the index pass (scan of the new ids), after it
    /// (index), and half and half; pruning deletes the index entries with the samples.
    #[tokio::test]
    async fn series_reads_indexed_and_unindexed_rows_alike() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal)
            .await
            .unwrap();
        let a: Vec<NewRecord> = (0..300)
            .map(|i| record(1000 * i, if i % 3 == 0 { "search" } else { "checkout" }))
            .collect();
        store.insert_samples(&a, 0).await.unwrap();
        let before = store.series("search", "production", 0, i64::MAX, 1000);
        let before = before.await.unwrap();
        assert_eq!(before.len(), 100);
        index_all(&store).await;
        let after = store.series("search", "production", 0, i64::MAX, 1000);
        assert_eq!(ids(&after.await.unwrap()), ids(&before));

        // New rows on top of indexed ones, out of event-time order: the read merges both
        // parts by event time.
        let b: Vec<NewRecord> = (0..10).map(|i| record(500 + 3000 * i, "search")).collect();
        store.insert_samples(&b, 0).await.unwrap();
        let mixed = store.series("search", "production", 0, 30_000, 1000);
        let mixed = mixed.await.unwrap();
        assert_eq!(mixed.len(), 11 + 10);
        let ts: Vec<i64> = mixed
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                v["timestamp"].as_i64().unwrap()
            })
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "event-time order: {ts:?}"
        );
        index_all(&store).await;
        let again = store.series("search", "production", 0, 30_000, 1000);
        assert_eq!(ids(&again.await.unwrap()), ids(&mixed));
        index_all(&store).await;
        assert!(store
            .series("nothing", "production", 0, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty());

        // Batch b is wholly older than the cut, batch a is not: b goes, a's rows stay
        // in the table, but the index forgets everything older than the cut.
        let pruned = store.prune(150_000).await.unwrap();
        assert_eq!(pruned.samples, 10);
        let kept = store.series("search", "production", 0, i64::MAX, 1000);
        assert_eq!(kept.await.unwrap().len(), 50);
        store
            .insert_samples(&[record(200_000, "search")], 0)
            .await
            .unwrap();
        let pruned = store.prune(400_000).await.unwrap();
        assert_eq!(pruned.samples, 301);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sample_index")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(left, 0, "index entries pruned with their samples");
    }

    /// A database written before series were interned opens, keeps its samples under the
    /// same ids, reads them by series and takes new ones.
    #[tokio::test]
    async fn a_database_from_before_series_ids_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.db");
        {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePool::connect_with(opts).await.unwrap();
            sqlx::raw_sql("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)")
                .execute(&pool)
                .await
                .unwrap();
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v < 20) {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO schema_migrations VALUES ($1, 1)")
                    .bind(version)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            for i in 0..40i64 {
                let service = if i % 2 == 0 { "search" } else { "checkout" };
                let r = record(1000 * i, service);
                sqlx::query("INSERT INTO samples (ts_ms, service, environment, body) VALUES ($1, $2, $3, $4)")
                    .bind(r.ts_ms)
                    .bind(r.service)
                    .bind(r.environment)
                    .bind(r.body)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::query(crate::store::sql::INSERT_SAMPLES_INSERT_SAMPLE_BATCHES)
                .bind(1)
                .bind(40)
                .bind(0)
                .bind(39_000)
                .bind(0)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let store = SqliteStore::open_file(&path, Durability::Normal)
            .await
            .unwrap();
        let all = store.samples_since(0, 0, 100).await.unwrap();
        assert_eq!(ids(&all), (1..=40).collect::<Vec<_>>());
        let search = store.series("search", "production", 0, i64::MAX, 100);
        let search = search.await.unwrap();
        assert_eq!(ids(&search), (1..=40).step_by(2).collect::<Vec<_>>());
        assert!(search.iter().all(|r| r.body.contains("search")));
        store
            .insert_samples(&[record(50_000, "search"), record(50_000, "new")], 0)
            .await
            .unwrap();
        let search = store.series("search", "production", 0, i64::MAX, 100);
        assert_eq!(search.await.unwrap().last().unwrap().id, 41);
        let new = store.series("new", "production", 0, i64::MAX, 100);
        assert_eq!(ids(&new.await.unwrap()), vec![42]);
        index_all(&store).await;
        let new = store.series("new", "production", 0, i64::MAX, 100);
        assert_eq!(ids(&new.await.unwrap()), vec![42]);
    }
}
