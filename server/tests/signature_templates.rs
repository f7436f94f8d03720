//! Log templates persist in the store: a signature keeps its id, and stays known, across
//! a restart of the server, on a real SQLite file, through the HTTP API (`oneshot`).

mod common;

use axum::body::Body;
use serde_json::json;
use watchdog::config::Clock;
use watchdog::server::Server;
use watchdog_core::Timestamp;

use common::app::call;
use common::{metrics_ndjson, T0};

async fn start(dir: &std::path::Path) -> Server {
    common::app::start(common::app::config(dir, Clock::Data), vec![]).await
}

fn login_failures(from_secs: i64, step_secs: i64, users: &[&str]) -> String {
    users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            json!({
                "timestamp": Timestamp::from_secs(from_secs + i as i64 * step_secs).to_string(),
                "service": "checkout",
                "environment": "production",
                "level": "error",
                "message": format!("login failed for user {user} from 10.0.0.{}", i + 1),
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// FNV-1a 64, the signature id of a template's first masked line.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_keeps_its_id_and_stays_known_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The id of the template's first line (level byte 4 = error, then the masked text).
    let id = format!(
        "{:016x}",
        fnv1a(b"\x04login failed for user alice from <*>")
    );
    let first_seen = T0 - 3 * 86_400;

    // First life: the template is learned three days before, and stored.
    let server = start(dir.path()).await;
    call(
        &server,
        "POST",
        "/api/v1/logs",
        login_failures(first_seen, 60, &["alice", "bob"]),
    )
    .await;
    // The baseline metrics arrive before the restart too: the store's latest event is
    // then recent, and the recovery after the restart re-feeds only the hours before it.
    call(
        &server,
        "POST",
        "/api/v1/metrics",
        metrics_ndjson("checkout", "production", T0, 180, 10, 0.01),
    )
    .await;
    server.state.engine.barrier().await.unwrap();
    let stored = server.state.store.templates().await.unwrap();
    let t = stored
        .iter()
        .find(|t| t.service == "checkout")
        .expect("the template is stored");
    assert_eq!(t.record.signature.to_string(), id);
    assert_eq!(t.record.template, "login failed for user <*> from <*>");
    assert_eq!(t.record.first_seen, Some(Timestamp::from_secs(first_seen)));
    server.shutdown().await;

    // Second life: recovery re-feeds only the last couple of hours, so the old lines are
    // not mined again; the first failure of this life names another user.
    let server = start(dir.path()).await;
    let deploy = json!([{"timestamp": Timestamp::from_secs(T0 + 1800).to_string(), "deploy_id": "v2", "service": "checkout", "environment": "production"}]);
    call(&server, "POST", "/api/v1/deploys", deploy.to_string()).await;
    let users = [
        "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
    ];
    call(
        &server,
        "POST",
        "/api/v1/logs",
        login_failures(T0 + 1810, 30, &users),
    )
    .await;
    call(
        &server,
        "POST",
        "/api/v1/metrics",
        metrics_ndjson("checkout", "production", T0 + 1800, 90, 10, 0.01),
    )
    .await;
    server.state.engine.barrier().await.unwrap();

    let v = call(
        &server,
        "GET",
        "/api/v1/deploys?service=checkout",
        Body::empty(),
    )
    .await;
    let verdict = &v["items"][0]["verdict"];
    let login = verdict["signatures"]
        .as_array()
        .expect("a decided verdict")
        .iter()
        .find(|s| s["template"] == "login failed for user <*> from <*>")
        .unwrap_or_else(|| panic!("the login failures are evidence: {verdict}"));
    // Same id as before the restart, and known: a rise, not a new error.
    assert_eq!(login["signature"], id.as_str(), "{verdict}");
    assert_eq!(login["change"], "surging", "{verdict}");
    assert_ne!(verdict["verdict"], "regression", "{verdict}");
    server.shutdown().await;
}
