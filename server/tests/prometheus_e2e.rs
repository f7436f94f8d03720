//! End to end through a real Prometheus: the `error_spike` scenario is exposed on
//! `/metrics` (accelerated 20 times), a real Prometheus server scrapes it every second on
//! loopback, and the real `watchdog serve` binary pulls it with the `http` template and
//! catches the bad deploy. Needs `WATCHDOG_TEST_PROMETHEUS` (the prometheus binary;
//! scripts/tests.d/40-prometheus.sh sets it); skipped with a note without it.

mod common;

use std::time::Duration;

use common::deploys::{decided, evidence};
use common::{prometheus, scenario};

const TOKEN: &str = "prometheus-e2e-token";
const SPEED: f64 = 20.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_caught_through_prometheus() {
    let Ok(prometheus_bin) = std::env::var("WATCHDOG_TEST_PROMETHEUS") else {
        eprintln!("skipping: WATCHDOG_TEST_PROMETHEUS is not set (scripts/tests.d/40-prometheus.sh sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // The scenario target: 20 minutes of baseline and 10 after the deploy, at 20x.
    let target = scenario::error_spike(SPEED).await;

    // A real Prometheus scraping it every second.
    let prometheus = prometheus::start(&prometheus_bin, tmp.path(), |_| {
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: checkout\n    static_configs:\n      - targets: ['{}']\n", target.addr)
    })
    .await;
    let prom = prometheus.url.clone();

    // watchdog serve pulling the service with the ready-made http template.
    let config = tmp.path().join("watchdog.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[detector]
baseline_window_secs = 50
monitoring_window_secs = 25
allowed_lateness_secs = 8
# Seconds-long baselines: trust the announced deploy time exactly.
deploy_tolerance_secs = 0

[prometheus]
url = "{prom}"
poll_secs = 1
step_secs = 1
timeout_secs = 5

[[prometheus.services]]
service = "checkout"
environment = "production"
template = "http"
selector = 'service="checkout",environment="production"'
rate_window = "5s"
"#
        ),
    )
    .unwrap();
    let (_watchdog, base) = common::cli::serve(&config, &tmp.path().join("state"), TOKEN);

    // The deploy is announced when it happens on the wall clock.
    scenario::announce_deploy(&base, TOKEN, target.deploy_wall_ms).await;

    let last = decided(&base, &["checkout"], 120, Duration::from_millis(500)).await;
    let v = &last["items"][0]["verdict"];
    assert_eq!(v["verdict"], "regression", "{last}");
    let error_rate = evidence(v, "error_rate").expect("error_rate evidence pulled from Prometheus");
    assert_eq!(error_rate["status"], "regressed", "{error_rate}");
    // The baseline came through Prometheus too, one point per second.
    assert!(
        v["window"]["baseline_samples"].as_u64().unwrap() >= 20,
        "{v}"
    );
}
