//! Two replicas on one PostgreSQL, both configured to pull the same real Prometheus:
//! only the holder of the puller lease pulls, so no point is stored twice (issue 12,
//! finding 8); when it stops, the other takes over and resumes after what is stored.
//! Needs `WATCHDOG_TEST_DATABASE_URL` (scripts/tests.d/20-postgres.sh sets it) and the
//! prometheus binary (`WATCHDOG_TEST_PROMETHEUS`, else `prometheus` on PATH); skipped with
//! a note without them.

mod common;

use std::process::Command;
use std::time::Duration;

use watchdog::config::Secret;
use watchdog::server::Server;
use watchdog::store::Store;

use common::prometheus;

async fn start(dir: &std::path::Path, prom: &str, db: &str) -> Server {
    let mut c = prometheus::self_pulling_config(dir, prom);
    c.database_url = Secret::new(db);
    common::app::start(c, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_pull_prometheus_once() {
    let Some(db) = std::env::var("WATCHDOG_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipping: WATCHDOG_TEST_DATABASE_URL is not set (scripts/tests.d/20-postgres.sh sets it)");
        return;
    };
    let prometheus_bin =
        std::env::var("WATCHDOG_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    if Command::new(&prometheus_bin)
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: no prometheus binary (set WATCHDOG_TEST_PROMETHEUS)");
        return;
    }
    watchdog::store::postgres::PostgresStore::connect_url(&db)
        .await
        .unwrap()
        .truncate_all_for_tests()
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let prometheus = prometheus::start_self_scraping(&prometheus_bin, tmp.path()).await;
    let prom = prometheus.url.clone();

    let a = start(&tmp.path().join("a"), &prom, &db).await;
    let b = start(&tmp.path().join("b"), &prom, &db).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The holder goes; the other replica takes over.
    a.shutdown().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    b.shutdown().await;

    let store = watchdog::store::postgres::PostgresStore::connect_url(&db)
        .await
        .unwrap();
    let rows = store.samples_since(0, 0, 1_000_000).await.unwrap();
    let seen = prometheus::stored_points(&rows);
    let ups: Vec<i64> = seen
        .keys()
        .filter(|(_, m)| m == "up")
        .map(|(t, _)| *t)
        .collect();
    assert!(ups.len() >= 6, "points were pulled: {}", ups.len());
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
}
