//! End to end with real clients, run by scripts/tests.d/45-otlp.sh:
//! - the OpenTelemetry Python SDK with its OTLP/HTTP exporters (protobuf with gzip for
//!   one service, JSON for another; scripts/otlp_service.py) exporting a simulated
//!   service whose `service.version` changes halfway to a bad version: the change is
//!   recorded as a deploy and becomes a regression with its new error signature.
//!   Needs `WATCHDOG_TEST_OTEL_PYTHON` (a python with the SDK);
//! - a real Prometheus scraping `simulate --serve-metrics` (the `error_spike` scenario at
//!   20x) and forwarding with `remote_write` to `watchdog serve`, which catches the bad
//!   deploy. Needs `WATCHDOG_TEST_PROMETHEUS`.
//!
//! Each test is skipped with a note when its variable is not set. Time runs at seconds
//! rather than minutes here, so the detector trusts the deploy times exactly
//! (`deploy_tolerance_secs = 0`): the version deploy's time is the first sample of the new
//! version, and the announced one is posted when it happens.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::deploys::{assert_payment_timeout_regression, decided, deploy, evidence, signature};
use common::loopback::get_json;
use common::prometheus::{self, Killed};
use common::scenario;

const TOKEN: &str = "otlp-e2e-token";

/// Starts `watchdog serve` on a free loopback port; returns it and its base URL.
fn serve(dir: &Path, config: &str) -> (Killed, String) {
    let path = dir.join("watchdog.toml");
    std::fs::write(&path, config).unwrap();
    common::cli::serve(&path, &dir.join("state"), TOKEN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_version_bump_is_a_deploy_and_a_bad_one_a_regression() {
    let Ok(python) = std::env::var("WATCHDOG_TEST_OTEL_PYTHON") else {
        eprintln!(
            "skipping: WATCHDOG_TEST_OTEL_PYTHON is not set (scripts/tests.d/45-otlp.sh sets it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_watchdog, base) = serve(
        tmp.path(),
        "[detector]\nbaseline_window_secs = 60\nmonitoring_window_secs = 25\nallowed_lateness_secs = 8\nevidence_grace_secs = 10\ndeploy_tolerance_secs = 0\n",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/otlp_service.py");
    let run = |encoding: &str, service: &str| {
        Killed(
            Command::new(&python)
                .arg(&script)
                .args([
                    "--endpoint",
                    &base,
                    "--token",
                    TOKEN,
                    "--encoding",
                    encoding,
                ])
                .args([
                    "--service",
                    service,
                    "--bad",
                    "--before-secs",
                    "45",
                    "--after-secs",
                    "35",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting scripts/otlp_service.py"),
        )
    };
    let mut proto = run("protobuf", "checkout");
    let mut json_run = run("json", "cart");
    for p in [&mut proto, &mut json_run] {
        let status = tokio::task::block_in_place(|| p.0.wait()).unwrap();
        assert!(status.success(), "otlp_service.py failed: {status}");
    }
    let list = decided(&base, &["checkout", "cart"], 80, Duration::from_millis(500)).await;
    for service in ["checkout", "cart"] {
        let d = deploy(&list, service);
        assert_eq!(d["deploy_id"], "1.4.2", "{d}");
        assert_eq!(d["source"], "otlp", "{d}");
        let v = &d["verdict"];
        assert_payment_timeout_regression(service, v);
        // Baseline from the SDK's one-second exports.
        assert!(
            v["window"]["baseline_samples"].as_u64().unwrap() >= 20,
            "{v}"
        );
        // The SDK logged inside spans: the signature leads to their trace ids.
        let t = get_json(
            &reqwest::Client::new(),
            format!("{base}/api/v1/deploys/{}/traces", d["id"]),
        )
        .await;
        let payment = signature(&t, "payment gateway timeout").unwrap_or_else(|| panic!("{t}"));
        let first = &payment["traces"][0];
        let trace_id = first["trace_id"].as_str().unwrap_or_else(|| panic!("{t}"));
        assert_eq!(trace_id.len(), 32, "{first}");
        assert_eq!(first["span_id"].as_str().unwrap().len(), 16, "{first}");
    }
    // v1 was the running version, not a deploy.
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_caught_through_prometheus_remote_write() {
    let Ok(prometheus_bin) = std::env::var("WATCHDOG_TEST_PROMETHEUS") else {
        eprintln!(
            "skipping: WATCHDOG_TEST_PROMETHEUS is not set (scripts/tests.d/45-otlp.sh sets it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_watchdog, base) = serve(
        tmp.path(),
        "[detector]\nbaseline_window_secs = 50\nmonitoring_window_secs = 25\nallowed_lateness_secs = 8\ndeploy_tolerance_secs = 0\n",
    );

    // The scenario target: 20 minutes of baseline and 10 after the deploy, at 20x.
    let target = scenario::error_spike(20.0).await;
    let target_addr = target.addr;

    // A real Prometheus scraping it every second and forwarding with remote_write.
    let _prometheus = prometheus::start(&prometheus_bin, tmp.path(), |_| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shop\n    static_configs:\n      - targets: ['{target_addr}']\nremote_write:\n  - url: {base}/api/v1/write\n    authorization:\n      credentials: {TOKEN}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n"
        )
    })
    .await;

    // The deploy is announced when it happens on the wall clock.
    scenario::announce_deploy(&base, TOKEN, target.deploy_wall_ms).await;

    let list = decided(&base, &["checkout"], 120, Duration::from_millis(500)).await;
    let v = &deploy(&list, "checkout")["verdict"];
    assert_eq!(v["verdict"], "regression", "{list}");
    let error_rate = evidence(v, "error_rate").expect("error_rate evidence from remote write");
    assert_eq!(error_rate["status"], "regressed", "{error_rate}");
    // The baseline came through remote write too, one sample per scrape.
    assert!(
        v["window"]["baseline_samples"].as_u64().unwrap() >= 20,
        "{v}"
    );
}
