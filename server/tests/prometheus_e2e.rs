//! End to end through a real Prometheus: the `error_spike` scenario is exposed on
//! `/metrics` (accelerated 20 times), a real Prometheus server scrapes it every second on
//! loopback, and the real `watchdog serve` binary pulls it with the `http` template and
//! catches the bad deploy. Needs `WATCHDOG_TEST_PROMETHEUS` (the prometheus binary;
//! scripts/tests.d/40-prometheus.sh sets it); skipped with a note without it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use watchdog::commands::simulate_serve::{router, Replay};
use watchdog_core::scenarios::{generate, ScenarioParams};
use watchdog_core::Timestamp;

use common::prometheus;

const TOKEN: &str = "prometheus-e2e-token";
const SPEED: f64 = 20.0;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_caught_through_prometheus() {
    let Ok(prometheus_bin) = std::env::var("WATCHDOG_TEST_PROMETHEUS") else {
        eprintln!("skipping: WATCHDOG_TEST_PROMETHEUS is not set (scripts/tests.d/40-prometheus.sh sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // The scenario target: 20 minutes of baseline and 10 after the deploy, at 20x.
    let params = ScenarioParams {
        baseline_mins: 20,
        after_mins: 10,
        ..ScenarioParams::default()
    };
    let data = generate("error_spike", &params).unwrap();
    let replay = Arc::new(Replay::new(&data, SPEED, now_ms()).unwrap());
    let deploy_wall_ms = replay.wall_ms(data.deploys[0].timestamp);
    let target = common::loopback::serve(router(replay)).await;

    // A real Prometheus scraping it every second.
    let prometheus = prometheus::start(&prometheus_bin, tmp.path(), |_| {
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: checkout\n    static_configs:\n      - targets: ['{target}']\n")
    })
    .await;
    let prom = prometheus.url.clone();
    let client = reqwest::Client::new();

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
    let wait = (deploy_wall_ms - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let deploy = json!([{"timestamp": Timestamp(deploy_wall_ms), "deploy_id": "v1.4.2", "service": "checkout", "environment": "production"}]);
    let r = client
        .post(format!("{base}/api/v1/deploys"))
        .bearer_auth(TOKEN)
        .body(deploy.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let mut last = Value::Null;
    for _ in 0..120 {
        last = client
            .get(format!("{base}/api/v1/deploys"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if last["items"][0]["status"] == "decided" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v = &last["items"][0]["verdict"];
    assert_eq!(v["verdict"], "regression", "{last}");
    let error_rate = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == "error_rate")
        .expect("error_rate evidence pulled from Prometheus");
    assert_eq!(error_rate["status"], "regressed", "{error_rate}");
    // The baseline came through Prometheus too, one point per second.
    assert!(
        v["window"]["baseline_samples"].as_u64().unwrap() >= 20,
        "{v}"
    );
}
