//! How the SQLite store keeps metric samples: rows keyed by an interned series id,
//! appended in id order, and a series index built in bulk behind ingestion (migration
//! `0020_series.sql` says why).
//!
//! - [`resolve`] maps (service, environment) to the id of its `series` row through the
//!   [`SeriesIds`] cache, so that a commit resolves a label pair with a hash lookup
//!   instead of a query.
//! - [`index_loop`] copies the rows written since the last pass into `sample_index`,
//!   sorted by series, in transactions of [`INDEX_CHUNK_ROWS`] entries so that writers
//!   take turns with it; the position moves when the whole pass is in.
//! - [`SERIES_SELECT`] reads one series through the index entries up to the position
//!   plus the rows after it.

use std::sync::Weak;
use std::time::Duration;

use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::store::series_ids::{Lookup, NewSeries, SeriesIds};
use crate::store::{NewRecord, StoreResult};

/// How often the indexer runs. Each pass costs about a page write per series it touches,
/// so fewer, larger passes are cheaper per sample: in `scripts/eval/sqlite_index.py bulk`
/// (10,000 series, 5,000-row commits) passes of 100k rows cost 2.7 s per million rows
/// indexed, passes of 500k rows 1.1 s. At 100k samples/s five seconds is a 500k-row
/// pass; at ordinary rates a pass is small and quick.
const INDEX_INTERVAL: Duration = Duration::from_secs(5);

/// Index entries one write transaction of a pass adds at most. A pass sorts its rows by
/// series first, so each transaction fills a stretch of the index's leaf pages and the
/// pages are written about once per pass however it is cut; one transaction holds the
/// writer for milliseconds instead of the whole pass (half a second for 500k rows, which
/// was the p99 of ingestion requests in a soak).
pub(super) const INDEX_CHUNK_ROWS: usize = 10_000;

/// Index entries a statement inserts: three parameters each, far below SQLite's limit.
const ENTRIES_PER_STATEMENT: usize = 256;

/// The series id of every row, creating `series` rows for new pairs inside `tx`.
/// Returns the ids and the pairs resolved by query, to [`SeriesIds::remember`] once `tx`
/// has committed (a rolled-back id must not be cached).
pub(super) async fn resolve(
    cache: &SeriesIds,
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[NewRecord],
) -> StoreResult<(Vec<i64>, NewSeries)> {
    let Lookup {
        mut ids,
        missing,
        mut found,
    } = cache.lookup(rows);
    for ((service, environment), at) in missing {
        let id: i64 = match sqlx::query_scalar(
            "SELECT id FROM series WHERE service = $1 AND environment = $2",
        )
        .bind(service)
        .bind(environment)
        .fetch_optional(&mut **tx)
        .await?
        {
            Some(id) => id,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO series (service, environment) VALUES ($1, $2) RETURNING id",
                )
                .bind(service)
                .bind(environment)
                .fetch_one(&mut **tx)
                .await?
            }
        };
        for i in at {
            ids[i] = id;
        }
        found.add(service, environment, id);
    }
    Ok((ids, found))
}

/// One series' samples in a time range, ordered by event time: the index entries up to
/// the position of the last complete pass, and the rows after it (a range scan of the
/// newest ids, about one [`INDEX_INTERVAL`] of ingestion). One statement, so it reads
/// one snapshot: entries a pass has added beyond the position are left to the scan until
/// the position moves, so no row appears twice or not at all.
pub(super) const SERIES_SELECT: &str = "WITH s AS (SELECT id FROM series WHERE service = $1 AND environment = $2), \
     pos AS (SELECT indexed_through FROM sample_index_state WHERE id = 1) \
     SELECT id, body FROM ( \
       SELECT x.id, x.ts_ms, x.body FROM sample_index i JOIN samples x ON x.id = i.sample_id \
         WHERE i.series_id = (SELECT id FROM s) AND i.ts_ms >= $3 AND i.ts_ms <= $4 AND i.sample_id <= (SELECT indexed_through FROM pos) \
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

/// Indexes the rows written since the last pass, [`INDEX_CHUNK_ROWS`] entries a write
/// transaction; returns how many entries were added.
///
/// # Errors
/// Database failures. The position only moves once every entry up to it is committed; a
/// pass cut short leaves entries beyond it, which reads ignore and the next pass skips.
pub(super) async fn index_pass(writer: &SqlitePool, reader: &SqlitePool) -> StoreResult<u64> {
    index_pass_in_chunks(writer, reader, INDEX_CHUNK_ROWS).await
}

/// [`index_pass`] with `chunk_rows` entries a transaction.
async fn index_pass_in_chunks(
    writer: &SqlitePool,
    reader: &SqlitePool,
    chunk_rows: usize,
) -> StoreResult<u64> {
    // What to index is read on a reader: the writer is not held while the rows are read
    // and sorted. One writer commits ids in order, so every id up to the newest one a
    // reader sees is committed.
    let mut conn = reader.acquire().await?;
    let from: i64 =
        sqlx::query_scalar("SELECT indexed_through FROM sample_index_state WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    let Some(to) = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM samples")
        .fetch_one(&mut *conn)
        .await?
        .filter(|&to| to > from)
    else {
        return Ok(0);
    };
    let mut entries: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT series_id, ts_ms, id FROM samples WHERE id > $1 AND id <= $2")
            .bind(from)
            .bind(to)
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);
    // Sorted, so the entries go into the B-tree in key order: each leaf page is loaded
    // and written once for all of its new entries.
    entries.sort_unstable();
    let full_sql = insert_entries_sql(ENTRIES_PER_STATEMENT);
    let mut added = 0;
    for chunk in entries.chunks(chunk_rows.max(1)) {
        let mut tx = writer.begin().await?;
        for part in chunk.chunks(ENTRIES_PER_STATEMENT) {
            let full = part.len() == ENTRIES_PER_STATEMENT;
            let sql = if full {
                full_sql.clone()
            } else {
                insert_entries_sql(part.len())
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(full);
            for &(series_id, ts_ms, id) in part {
                q = q.bind(series_id).bind(ts_ms).bind(id);
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
    }
    // Never backwards: a pass started earlier may finish later.
    sqlx::query(
        "UPDATE sample_index_state SET indexed_through = MAX(indexed_through, $1) WHERE id = 1",
    )
    .bind(to)
    .execute(writer)
    .await?;
    Ok(added)
}

/// `INSERT OR IGNORE` of `rows` index entries (an entry is there already when a pass was
/// cut short), with anonymous placeholders (see `multi_insert` in sqlite.rs).
fn insert_entries_sql(rows: usize) -> String {
    let values = vec!["(?,?,?)"; rows].join(",");
    format!("INSERT OR IGNORE INTO sample_index (series_id, ts_ms, sample_id) VALUES {values}")
}

/// Runs [`index_pass`] every [`INDEX_INTERVAL`] until the store is dropped.
pub(super) async fn index_loop(writer: SqlitePool, reader: SqlitePool, alive: Weak<()>) {
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
        if let Err(e) = index_pass(&writer, &reader).await {
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
    use std::sync::Arc;

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
        index_pass(&store.writer, &store.reader).await.unwrap();
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
        assert_eq!((pruned.samples, pruned.series), (10, 0));
        let kept = store.series("search", "production", 0, i64::MAX, 1000);
        assert_eq!(kept.await.unwrap().len(), 50);
        store
            .insert_samples(&[record(200_000, "search")], 0)
            .await
            .unwrap();
        let pruned = store.prune(400_000).await.unwrap();
        assert_eq!(
            (pruned.samples, pruned.series),
            (301, 2),
            "indexed series emptied"
        );
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sample_index")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(left, 0, "index entries pruned with their samples");
    }

    /// Samples written while a pass runs, in many small transactions, are all readable,
    /// once each, during and after it and after the next pass; and writers commit while
    /// it runs instead of after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_written_during_a_chunked_pass_are_all_readable() {
        const SERIES: i64 = 20;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal)
            .await
            .unwrap();
        let name = |i: i64| format!("s{}", i % SERIES);
        let first: Vec<NewRecord> = (0..40_000).map(|i| record(i, &name(i))).collect();
        store.insert_samples(&first, 0).await.unwrap();

        let batches = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = tokio::spawn({
            let (store, batches, stop) = (store.clone(), batches.clone(), stop.clone());
            async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let k = batches.load(std::sync::atomic::Ordering::SeqCst);
                    // Event times inside the indexed range too: reads merge both parts.
                    let rows: Vec<NewRecord> =
                        (0..SERIES).map(|i| record(k * 7 + i, &name(i))).collect();
                    store.insert_samples(&rows, 0).await.unwrap();
                    batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        // A reader meanwhile: no row twice while entries beyond the position exist.
        let reads = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let rows = store.series("s3", "production", 0, i64::MAX, 1_000_000);
                    let mut got = ids(&rows.await.unwrap());
                    let n = got.len();
                    got.sort_unstable();
                    got.dedup();
                    assert_eq!(got.len(), n, "a row read twice during a pass");
                    reads += 1;
                }
                reads
            }
        });
        while batches.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let before = batches.load(std::sync::atomic::Ordering::SeqCst);
        let added = index_pass_in_chunks(&store.writer, &store.reader, 500)
            .await
            .unwrap();
        let during = batches.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert!(added >= 40_000, "{added}");
        assert!(during > 0, "no write committed while the pass ran");
        // Reads while the writer keeps going, then after it stopped, before and after
        // the next pass: each series has every one of its rows, once.
        let check = |store: SqliteStore| async move {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM samples")
                .fetch_one(&store.reader)
                .await
                .unwrap();
            let mut seen = 0;
            for i in 0..SERIES {
                let service = name(i);
                let rows = store.series(&service, "production", 0, i64::MAX, 1_000_000);
                let mut got = ids(&rows.await.unwrap());
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                assert_eq!(got.len(), n, "a row read twice");
                seen += n as i64;
            }
            (seen, total)
        };
        let (seen, total) = check(store.clone()).await;
        assert!(seen >= total, "{seen} rows read of at least {total}");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        writer.await.unwrap();
        assert!(reads.await.unwrap() > 0);
        let (seen, total) = check(store.clone()).await;
        assert_eq!(seen, total);
        index_all(&store).await;
        let (seen, total) = check(store.clone()).await;
        assert_eq!(seen, total);
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
