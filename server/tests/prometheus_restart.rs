//! A restart of a server that pulls from a real Prometheus does not store the same points
//! twice (issue 12, finding 8): each query resumes after the latest point the store holds
//! for it. The Prometheus server scrapes itself on loopback. Needs
//! `WATCHDOG_TEST_PROMETHEUS` (the prometheus binary; scripts/tests.d/40-prometheus.sh
//! sets it); skipped with a note without it.

mod common;

use std::time::Duration;

use watchdog::config::ServerConfig;
use watchdog::server::Server;

use common::prometheus;

async fn start(dir: &std::path::Path, prom: &str) -> Server {
    common::app::start(prometheus::self_pulling_config(dir, prom), Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_pull_the_same_points_again() {
    let Ok(prometheus_bin) = std::env::var("WATCHDOG_TEST_PROMETHEUS") else {
        eprintln!("skipping: WATCHDOG_TEST_PROMETHEUS is not set (scripts/tests.d/40-prometheus.sh sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prometheus = prometheus::start_self_scraping(&prometheus_bin, tmp.path()).await;
    let prom = prometheus.url.clone();

    let state = tmp.path().join("state");
    for _ in 0..2 {
        let server = start(&state, &prom).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.shutdown().await;
    }

    let c = ServerConfig::for_state_dir(&state);
    let store = watchdog::server::open_store(&c).await.unwrap();
    let rows = store.samples_since(0, 0, 1_000_000).await.unwrap();
    let seen = prometheus::stored_points(&rows);
    let ups = seen.keys().filter(|(_, m)| m == "up").count();
    assert!(ups >= 5, "points were pulled: {ups}");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
}
