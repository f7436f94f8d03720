//! Two replicas on one PostgreSQL, both configured to pull the same real Prometheus:
//! only the holder of the puller lease pulls, so no point is stored twice (issue 12,
//! finding 8); when it stops, the other takes over and resumes after what is stored.
//! Needs `WATCHDOG_TEST_DATABASE_URL` (scripts/tests.d/20-postgres.sh sets it) and the
//! prometheus binary (`WATCHDOG_TEST_PROMETHEUS`, else `prometheus` on PATH); skipped with
//! a note without them.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::prometheus;
use std::time::Duration;

use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::explainer::{Explainer, ExplainerConfig};
use watchdog::ingest::prometheus::PrometheusConfig;
use watchdog::server::Server;
use watchdog::store::Store;
use watchdog_core::Sample;

async fn start(dir: &std::path::Path, prom: &str, db: &str) -> Server {
    let mut c = ServerConfig::for_state_dir(dir);
    c.database_url = Secret::new(db);
    c.clock = Clock::Wall;
    c.api_token = Secret::new("t");
    c.detector.baseline_window_secs = 60;
    let toml_text = format!(
        "url = \"{prom}\"\npoll_secs = 1\nstep_secs = 1\ntimeout_secs = 5\n[[services]]\nservice = \"prometheus\"\n[services.queries]\nup = 'up{{job=\"self\"}}'\nscrape_duration_secs = 'scrape_duration_seconds{{job=\"self\"}}'\n"
    );
    c.prometheus = Some(toml::from_str::<PrometheusConfig>(&toml_text).unwrap());
    let explainer = Explainer::new(ExplainerConfig::from_vars(|_| None).unwrap());
    Server::start(c, Vec::new(), explainer).await.unwrap()
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
    let mut seen: HashMap<(i64, String), usize> = HashMap::new();
    for r in &rows {
        let s = Sample::from_json_line(&r.body).unwrap();
        for (m, _) in &s.metrics {
            *seen.entry((s.timestamp.millis(), m.clone())).or_default() += 1;
        }
    }
    let ups: Vec<i64> = seen
        .keys()
        .filter(|(_, m)| m == "up")
        .map(|(t, _)| *t)
        .collect();
    assert!(ups.len() >= 6, "points were pulled: {}", ups.len());
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
}
