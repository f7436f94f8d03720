//! Two real `watchdog serve` processes on one PostgreSQL database, with the ingestion
//! split between them: each deploy gets one verdict, each regression one incident, and
//! each alert reaches the receiver once. Needs `WATCHDOG_TEST_DATABASE_URL`
//! (scripts/tests.d/20-postgres.sh); skipped with a note without it.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use watchdog::store::postgres::PostgresStore;

use common::loopback::get_json;
use common::prometheus::Killed;
use common::{metrics_ndjson, Receiver, T0};

const TOKEN: &str = "two-servers-token";

/// `watchdog serve` on `db_url`, alerting `receiver`: the process and its base URL.
fn spawn(db_url: &str, state_dir: &Path, receiver: &Receiver) -> (Killed, String) {
    let hook = receiver.url();
    let env = [
        ("WATCHDOG_DATABASE_URL", db_url),
        ("WATCHDOG_API_TOKEN", TOKEN),
        ("WATCHDOG_WEBHOOK_URL", &hook),
    ];
    common::cli::serve_data_clock(state_dir, &env)
}

async fn post(client: &reqwest::Client, url: String, body: String) {
    let r = client
        .post(url)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn two_servers_decide_each_deploy_once() {
    let Ok(url) = std::env::var("WATCHDOG_TEST_DATABASE_URL") else {
        eprintln!("skipping: WATCHDOG_TEST_DATABASE_URL is not set (scripts/tests.d/20-postgres.sh sets it)");
        return;
    };
    let store = PostgresStore::connect_url(&url).await.unwrap();
    store.truncate_all_for_tests().await.unwrap();
    let receiver = Receiver::start(200).await;
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_a, a_base) = spawn(&url, dirs.0.path(), &receiver);
    // The second one through the pooler-safe mode, so both modes share a database.
    let (_b, b_base) = spawn(&format!("{url}?pgbouncer=true"), dirs.1.path(), &receiver);
    let servers = [&a_base, &b_base];
    let client = reqwest::Client::new();

    // Three services, two bad deploys; every request goes to one server or the other.
    let deploy_at = T0 + 3600;
    let services = [("svc-a", 0.08), ("svc-b", 0.08), ("svc-c", 0.01)];
    // Event time is global with the data clock: every series moves forward together,
    // minute by minute (well within the allowed lateness), each minute to one server or
    // the other.
    for minute in 0..60 {
        for (i, (svc, _)) in services.iter().enumerate() {
            let baseline = metrics_ndjson(svc, "production", T0 + minute * 60, 6, 10, 0.01);
            let server = servers[(i + minute as usize) % 2];
            post(&client, format!("{server}/api/v1/metrics"), baseline).await;
        }
    }
    for (svc, _) in &services {
        let deploy = json!([{"timestamp": watchdog_core::Timestamp::from_secs(deploy_at), "deploy_id": format!("{svc}-v2"), "service": svc, "environment": "production"}]);
        // The same notification to both servers (a retried webhook): stored once.
        for s in servers {
            post(&client, format!("{s}/api/v1/deploys"), deploy.to_string()).await;
        }
    }
    // After the deploy, in event-time order across services (the data clock is global).
    for chunk in 0..20 {
        for (i, (svc, after_rate)) in services.iter().enumerate() {
            let after = metrics_ndjson(
                svc,
                "production",
                deploy_at + chunk * 60,
                6,
                10,
                *after_rate,
            );
            let server = servers[(i + chunk as usize) % 2];
            post(&client, format!("{server}/api/v1/metrics"), after).await;
        }
    }

    // Both servers answer from the same store: three decided deploys, two regressions.
    let mut decided = Value::Null;
    for _ in 0..300 {
        decided = get_json(&client, format!("{b_base}/api/v1/deploys?limit=50")).await;
        let items = decided["items"].as_array().cloned().unwrap_or_default();
        if items.len() == 3 && items.iter().all(|d| d["status"] == "decided") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = decided["items"].as_array().expect("deploy list");
    assert_eq!(items.len(), 3, "one row per deploy: {decided}");
    for d in items {
        assert_eq!(d["status"], "decided", "{d}");
        let expected = if d["service"] == "svc-c" {
            "healthy"
        } else {
            "regression"
        };
        assert_eq!(d["verdict"]["verdict"], expected, "{d}");
        // The deciding engine saw the whole baseline, half of which the other server took:
        // more than its own 180 of the 360 samples. (The default deploy_tolerance_secs,
        // 600 s, leaves the ten minutes before the deploy out: 300 of them.)
        let baseline = d["verdict"]["window"]["baseline_samples"].as_u64().unwrap();
        assert!(baseline > 180, "baseline of {baseline} samples: {d}");
    }
    let incidents = get_json(&client, format!("{a_base}/api/v1/incidents")).await;
    assert_eq!(incidents["total"], 2, "{incidents}");

    // Two alerts, each delivered by one server only; wait past a second outbox poll of
    // each server to see that no duplicate follows.
    receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut ids = receiver.ids();
    ids.sort();
    ids.dedup();
    assert_eq!(receiver.count(), 2, "deliveries {:?}", receiver.ids());
    assert_eq!(ids.len(), 2);
}
