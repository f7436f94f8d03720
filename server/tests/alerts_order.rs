//! Alerts for every incident status change, in order per incident, with a dedup key
//! unique to the installation, and redirects never followed (issue 12, finding 7). A real
//! server core on a SQLite file, real receivers on loopback.

mod common;

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use watchdog::alerts::Channel;
use watchdog::config::Clock;
use watchdog::server::Server;

use common::{metrics_ndjson, T0};

use common::app::TOKEN;

/// A receiver that records every JSON body POSTed to `/events` (answering with `status`,
/// counting every attempt), answers `/moved` with a 301 to `/landing`, and counts GETs of
/// `/landing`.
#[derive(Clone, Default)]
struct Recorder {
    bodies: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    landed: Arc<AtomicUsize>,
}

impl Recorder {
    async fn start(status: u16) -> (Recorder, std::net::SocketAddr) {
        let r = Recorder::default();
        r.status.store(status, Ordering::SeqCst);
        let app = Router::new()
            .route(
                "/events",
                post(|axum::extract::State(r): axum::extract::State<Recorder>, body: String| async move {
                    r.attempts.fetch_add(1, Ordering::SeqCst);
                    let code = StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap();
                    if code.is_success() {
                        r.bodies.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    }
                    code
                }),
            )
            .route(
                "/moved",
                post(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/landing")]).into_response() }),
            )
            .route(
                "/landing",
                get(|axum::extract::State(r): axum::extract::State<Recorder>| async move {
                    r.landed.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                }),
            )
            .with_state(r.clone());
        let addr = common::loopback::serve(app).await;
        (r, addr)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            if self.bodies().len() >= n {
                return self.bodies();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} alerts, got {:?}", self.bodies());
    }
}

async fn start(dir: &std::path::Path, channels: Vec<Channel>) -> Server {
    common::app::start(common::app::config(dir, Clock::Data), channels).await
}

async fn send(server: &Server, method: &str, uri: &str, body: String) -> (StatusCode, Value) {
    let a = common::app::request(
        server,
        method,
        uri,
        Some(&common::app::bearer(TOKEN)),
        Some("application/json"),
        body,
    )
    .await;
    (a.status, a.json())
}

/// Ingests a regression and returns its incident id.
async fn open_incident(server: &Server) -> i64 {
    let before = metrics_ndjson("checkout", "production", T0, 180, 10, 0.01);
    send(server, "POST", "/api/v1/metrics", before).await;
    let deploy = json!([{"timestamp": "2026-03-30T18:30:00Z", "deploy_id": "v1.4.2", "service": "checkout", "environment": "production"}]);
    send(server, "POST", "/api/v1/deploys", deploy.to_string()).await;
    let after = metrics_ndjson("checkout", "production", T0 + 1800, 90, 10, 0.09);
    send(server, "POST", "/api/v1/metrics", after).await;
    server.state.engine.barrier().await.unwrap();
    let (_, v) = send(server, "GET", "/api/v1/incidents", String::new()).await;
    v["items"][0]["id"].as_i64().expect("an incident")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_change_reaches_pagerduty_in_order_with_an_installation_key() {
    let (rec, addr) = Recorder::start(500).await;
    let dir = tempfile::tempdir().unwrap();
    let channels = vec![Channel::PagerDuty {
        routing_key: "R0UTINGKEY".into(),
        events_url: format!("http://{addr}/events"),
    }];
    let server = start(dir.path(), channels).await;
    let id = open_incident(&server).await;
    // The trigger fails once and waits out its backoff (1 s) …
    for _ in 0..300 {
        if rec.attempts.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        rec.attempts.load(Ordering::SeqCst) >= 1,
        "the trigger was never attempted"
    );
    rec.status.store(202, Ordering::SeqCst);
    // … while the incident is acknowledged and resolved: those must not overtake it.
    let uri = format!("/api/v1/incidents/{id}");
    for status in ["acknowledged", "resolved"] {
        let (s, v) = send(
            &server,
            "PATCH",
            &uri,
            json!({"status": status}).to_string(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let got = rec.wait_for(3).await;
    let actions: Vec<&str> = got
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"], "{got:?}");
    let key = got[0]["dedup_key"].as_str().unwrap();
    assert!(
        key.starts_with("watchdog-") && key.ends_with(&format!("-{id}")),
        "{key}"
    );
    assert!(got.iter().all(|b| b["dedup_key"] == key), "{got:?}");

    // Another installation's incident of the same number has another key.
    let (rec2, addr2) = Recorder::start(202).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dir2 = tempfile::tempdir().unwrap();
    let other = start(
        dir2.path(),
        vec![Channel::PagerDuty {
            routing_key: "R0UTINGKEY".into(),
            events_url: format!("http://{addr2}/events"),
        }],
    )
    .await;
    assert_eq!(open_incident(&other).await, id);
    let got2 = rec2.wait_for(1).await;
    assert_ne!(got2[0]["dedup_key"], key, "{got2:?}");
    other.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failed_delivery_not_a_followed_one() {
    let (rec, addr) = Recorder::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let channels = vec![Channel::Webhook {
        url: format!("http://{addr}/moved"),
        secret: None,
    }];
    let server = start(dir.path(), channels).await;
    open_incident(&server).await;
    let mut counts = server.state.store.alert_counts().await.unwrap();
    for _ in 0..300 {
        if counts.failed + counts.delivered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts = server.state.store.alert_counts().await.unwrap();
    }
    assert_eq!((counts.delivered, counts.failed), (0, 1), "{counts:?}");
    assert_eq!(
        rec.landed.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    server.shutdown().await;
}
