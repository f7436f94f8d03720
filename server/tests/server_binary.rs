//! The real `watchdog serve` binary on loopback: a restart in the middle of a watch, and
//! kill -9 during ingestion, against a real SQLite state directory.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use common::loopback::get_json;
use common::prometheus::Killed;
use common::{metrics_ndjson, Receiver, T0};

/// The deploy under watch.
const DEPLOY_AT: i64 = T0 + 1800;

const TOKEN: &str = "binary-test-token";

/// A `watchdog serve` process (killed when dropped) and its base URL.
struct Running {
    process: Killed,
    base: String,
}

fn spawn(state_dir: &Path, receiver: &Receiver) -> Running {
    spawn_with_hook(state_dir, &receiver.url())
}

fn spawn_with_hook(state_dir: &Path, hook_url: &str) -> Running {
    let env = [
        ("WATCHDOG_API_TOKEN", TOKEN),
        ("WATCHDOG_WEBHOOK_URL", hook_url),
    ];
    let (process, base) = common::cli::serve_data_clock(state_dir, &env);
    Running { process, base }
}

async fn post(client: &reqwest::Client, url: String, body: String) -> reqwest::Response {
    client
        .post(url)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Baseline before `deploy_at`, the deploy, all stored.
async fn baseline_and_deploy(client: &reqwest::Client, base: &str, deploy_at: i64) {
    let baseline = metrics_ndjson("checkout", "production", deploy_at - 1800, 180, 10, 0.01);
    let r = post(client, format!("{base}/api/v1/metrics"), baseline).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let deploy = json!([{"timestamp": watchdog_core::Timestamp::from_secs(deploy_at), "deploy_id": "v2.0.0", "service": "checkout", "environment": "production"}]);
    let r = post(client, format!("{base}/api/v1/deploys"), deploy.to_string()).await;
    assert_eq!(r.status(), 200);
}

async fn wait_for_incidents(client: &reqwest::Client, base: &str, n: i64) -> Value {
    for _ in 0..300 {
        let v = get_json(client, format!("{base}/api/v1/incidents")).await;
        if v["total"].as_i64() == Some(n) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {n} incident(s) within 30 s");
}

/// The server's SQLite state database in `dir`, opened beside it.
async fn state_db(dir: &Path) -> sqlx::SqlitePool {
    let db = dir.join("watchdog.db");
    sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

/// How many alerts the outbox marks delivered.
const DELIVERED: &str = "SELECT COUNT(*) FROM alert_outbox WHERE status = 'delivered'";

/// The answer of a `SELECT COUNT(*) …`.
async fn count(pool: &sqlx::SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn terminate(r: Running) {
    let mut r = r;
    let pid = r.process.0.id().to_string();
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = r.process.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(200).await;
    let client = reqwest::Client::new();
    let deploy_at = DEPLOY_AT;
    let server = spawn(dir.path(), &receiver);
    baseline_and_deploy(&client, &server.base, deploy_at).await;
    // Healthy for the first 200 s of the watch: the watch is under way.
    let healthy = metrics_ndjson("checkout", "production", deploy_at + 10, 20, 10, 0.01);
    let r = post(&client, format!("{}/api/v1/metrics", server.base), healthy).await;
    assert_eq!(r.status(), 200);
    let v = get_json(&client, format!("{}/api/v1/deploys", server.base)).await;
    assert_eq!(v["items"][0]["status"], "watching");
    let text = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("watchdog_active_watches 1"), "{text}");
    terminate(server);

    // The new process only knows the deploy and its watch from the store.
    let server = spawn(dir.path(), &receiver);
    let after = metrics_ndjson("checkout", "production", deploy_at + 210, 40, 10, 0.10);
    let r = post(&client, format!("{}/api/v1/metrics", server.base), after).await;
    assert_eq!(r.status(), 200);
    let v = wait_for_incidents(&client, &server.base, 1).await;
    assert_eq!(v["items"][0]["deploy_id"], "v2.0.0");
    receiver.wait_for(1).await;
    terminate(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_sends_each_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    // The receiver fails at first: the alert must wait in the outbox across the crash.
    let receiver = Receiver::start(503).await;
    let client = reqwest::Client::new();
    let deploy_at = DEPLOY_AT;
    let mut server = spawn(dir.path(), &receiver);
    baseline_and_deploy(&client, &server.base, deploy_at).await;
    let after = metrics_ndjson("checkout", "production", deploy_at + 10, 40, 10, 0.10);
    assert_eq!(
        post(&client, format!("{}/api/v1/metrics", server.base), after)
            .await
            .status(),
        200
    );
    wait_for_incidents(&client, &server.base, 1).await;

    // Continuous ingestion, then kill -9 in the middle of it.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (client, base, acked, stop) = (
            client.clone(),
            server.base.clone(),
            acked.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body =
                    metrics_ndjson(&format!("bulk-{w}"), "production", deploy_at, 1000, 0, 0.01);
                i += 1;
                match client
                    .post(format!("{base}/api/v1/metrics"))
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        acked.fetch_add(1000, Ordering::SeqCst);
                    }
                    _ => {
                        if i > 0 {
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.process.0.kill().unwrap(); // SIGKILL
    server.process.0.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 0, "some batches were acknowledged before the kill");

    receiver.set_status(200);
    let server = spawn(dir.path(), &receiver);
    // Every acknowledged sample is in the database (220 = baseline and regression).
    let pool = state_db(dir.path()).await;
    let stored: i64 = count(&pool, "SELECT COUNT(*) FROM samples").await;
    assert!(
        stored >= acked as i64 + 220,
        "stored {stored} < acknowledged {acked} + 220"
    );
    let deploys: i64 = count(&pool, "SELECT COUNT(*) FROM deploys").await;
    assert_eq!(deploys, 1);
    // The incident is there once, and its alert is delivered exactly once.
    wait_for_incidents(&client, &server.base, 1).await;
    receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.ids().len(), 1, "{:?}", receiver.ids());
    let delivered: i64 = count(&pool, DELIVERED).await;
    assert_eq!(delivered, 1);
    pool.close().await;
    terminate(server);
}

/// A webhook receiver that records each delivery id as the request arrives and then never
/// answers: the sender has sent the alert but cannot know it arrived.
async fn holding_receiver() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::HeaderMap;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/hold",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<
                    Arc<std::sync::Mutex<Vec<String>>>,
                >,
                 headers: HeaderMap| async move {
                    let id = headers
                        .get("x-watchdog-delivery")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(id);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let addr = common::loopback::serve(app).await;
    (format!("http://{addr}/hold"), seen)
}

/// A crash after an alert was sent and before it was marked delivered: the restarted
/// server sends it again with the same delivery id (at-least-once, with the key a
/// receiver needs to drop the repeat), and marks it delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_sending_an_alert_and_marking_it_resends_it_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let (hold_url, held) = holding_receiver().await;
    let client = reqwest::Client::new();
    let mut server = spawn_with_hook(dir.path(), &hold_url);
    baseline_and_deploy(&client, &server.base, DEPLOY_AT).await;
    let after = metrics_ndjson("checkout", "production", DEPLOY_AT + 10, 40, 10, 0.10);
    let r = post(&client, format!("{}/api/v1/metrics", server.base), after).await;
    assert_eq!(r.status(), 200);
    for _ in 0..300 {
        if !held.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = held.lock().unwrap().clone();
    assert_eq!(first.len(), 1, "the alert was sent: {first:?}");
    server.process.0.kill().unwrap(); // SIGKILL while the delivery is in flight
    server.process.0.wait().unwrap();

    let receiver = Receiver::start(200).await;
    let server = spawn(dir.path(), &receiver);
    receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.ids(),
        first,
        "resent once, with the same delivery id"
    );
    let pool = state_db(dir.path()).await;
    let delivered: i64 = count(&pool, DELIVERED).await;
    assert_eq!(delivered, 1);
    pool.close().await;
    terminate(server);
}
