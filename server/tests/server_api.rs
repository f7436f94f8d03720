//! The HTTP API through `app(state)` with `oneshot`, on a real SQLite file in a temp
//! directory, with a real alert receiver on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use watchdog::alerts::Channel;
use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::explainer::{Explainer, ExplainerConfig};
use watchdog::server::Server;

use common::{metrics_ndjson, Receiver, T0};

use common::app::TOKEN;

fn config(dir: &std::path::Path) -> ServerConfig {
    let mut c = common::app::config(dir, Clock::Data);
    c.github_secret = Secret::new("It's a Secret to Everybody");
    c.max_body_bytes = 1024 * 1024;
    c
}

async fn start(dir: &std::path::Path, receiver: &Receiver) -> Server {
    let channels = vec![Channel::Webhook {
        url: receiver.url(),
        secret: None,
    }];
    common::app::start(config(dir), channels).await
}

/// A request with `token` if any: its status, its JSON when it answered JSON, its text.
async fn call(
    server: &Server,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Value, String) {
    let auth = token.map(common::app::bearer);
    let a = common::app::request(server, method, uri, auth.as_deref(), None, body).await;
    let v = if a.content_type.starts_with("application/json") {
        a.json()
    } else {
        Value::Null
    };
    (a.status, v, a.text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_verdicts_incidents_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(200).await;
    let server = start(dir.path(), &receiver).await;

    // Writes need the token.
    let (s, v, _) = call(&server, "POST", "/api/v1/metrics", None, "[]").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _, _) = call(&server, "POST", "/api/v1/metrics", Some("nope"), "[]").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Baseline with one bad line among good ones: the bad one is reported, the rest kept.
    let mut baseline = metrics_ndjson("checkout", "production", T0, 180, 10, 0.01);
    baseline.push_str("{\"timestamp\":\"2026-03-30T18:10:00Z\",\"service\":\"checkout\",\"error_rate\":\"NaN\"}\n");
    let (s, v, _) = call(&server, "POST", "/api/v1/metrics", Some(TOKEN), baseline).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 180);
    assert_eq!(v["rejected"][0]["line"], 181);
    assert_eq!(v["rejected"][0]["index"], 180);
    assert_eq!(v["rejected"][0]["field"], "error_rate");

    // Not JSON, nothing valid, too large.
    let (s, v, _) = call(
        &server,
        "POST",
        "/api/v1/metrics",
        Some(TOKEN),
        "hello\nworld",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("JSON"));
    let (s, v, _) = call(
        &server,
        "POST",
        "/api/v1/metrics",
        Some(TOKEN),
        "[{\"error_rate\": 0.1}]",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["rejected"][0]["field"], "timestamp");
    assert!(v["error"].as_str().unwrap().contains("timestamp"));
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, v, _) = call(&server, "POST", "/api/v1/metrics", Some(TOKEN), big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    // The deploy, twice (a retried notification is not a second deploy).
    let deploy = json!([{"timestamp": "2026-03-30T18:30:00Z", "deploy_id": "v1.4.2", "service": "checkout", "environment": "production"}]).to_string();
    let (s, v, _) = call(
        &server,
        "POST",
        "/api/v1/deploys",
        Some(TOKEN),
        deploy.clone(),
    )
    .await;
    assert_eq!(
        (s, v["accepted"].clone(), v["duplicates"].clone()),
        (StatusCode::OK, json!(1), json!(0)),
        "{v}"
    );
    let (_, v, _) = call(&server, "POST", "/api/v1/deploys", Some(TOKEN), deploy).await;
    assert_eq!(v["duplicates"], 1);

    let (_, v, _) = call(&server, "GET", "/api/v1/deploys", None, Body::empty()).await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["status"], "watching");

    // After the deploy the error rate jumps from 1 % to 9 %.
    let after = metrics_ndjson("checkout", "production", T0 + 1800, 90, 10, 0.09);
    let (s, _, _) = call(&server, "POST", "/api/v1/metrics", Some(TOKEN), after).await;
    assert_eq!(s, StatusCode::OK);
    server.state.engine.barrier().await.unwrap();

    let (_, v, _) = call(
        &server,
        "GET",
        "/api/v1/deploys?verdict=regression",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(v["total"], 1, "{v}");
    let row = &v["items"][0];
    assert_eq!(row["status"], "decided");
    assert_eq!(row["verdict"]["verdict"], "regression");
    let incident_id = row["incident_id"].as_i64().expect("an incident");

    let (_, v, _) = call(
        &server,
        "GET",
        "/api/v1/incidents?status=open&q=CHECKOUT&sort=-severity",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["id"], incident_id);
    let (_, v, _) = call(
        &server,
        "GET",
        "/api/v1/incidents?status=resolved",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(v["total"], 0);
    let (s, _, _) = call(
        &server,
        "GET",
        "/api/v1/incidents?sort=sideways",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let uri = format!("/api/v1/incidents/{incident_id}");
    let (s, v, _) = call(&server, "GET", &uri, None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["verdict"]["deploy_id"], "v1.4.2");
    assert!(v["triage"]["hypothesis"].is_string(), "{v}");
    assert_eq!(v["audit"][0]["action"], "opened");

    // The opened alert reaches the receiver once.
    receiver.wait_for(1).await;

    // Status, notes, explanation, export, series.
    let (s, v, _) = call(
        &server,
        "PATCH",
        &uri,
        Some(TOKEN),
        Body::from(json!({"status": "bogus"}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let patch = |st: &str| {
        Request::builder()
            .method("PATCH")
            .uri(&uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"status": st, "actor": "alice"}).to_string(),
            ))
            .unwrap()
    };
    let resp = watchdog::app::app(server.state.clone())
        .oneshot(patch("acknowledged"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let note = Request::builder()
        .method("POST")
        .uri(format!("{uri}/notes"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"text": "rolling back", "author": "alice"}).to_string(),
        ))
        .unwrap();
    let resp = watchdog::app::app(server.state.clone())
        .oneshot(note)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, v, _) = call(
        &server,
        "GET",
        &format!("{uri}/explanation"),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(v["source"], "local");
    assert!(v["text"].as_str().unwrap().contains("v1.4.2"), "{v}");
    let (_, md_json, md) = call(
        &server,
        "GET",
        &format!("{uri}/export?format=markdown"),
        None,
        Body::empty(),
    )
    .await;
    assert!(md_json.is_null());
    assert!(md.contains("v1.4.2") && md.contains("rolling back"), "{md}");
    let (_, v, _) = call(
        &server,
        "GET",
        &format!("{uri}/export?format=json"),
        None,
        Body::empty(),
    )
    .await;
    assert!(v.is_object());
    let (_, v, _) = call(
        &server,
        "GET",
        &format!("{uri}/series"),
        None,
        Body::empty(),
    )
    .await;
    let er = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "error_rate")
        .unwrap();
    // All 180 baseline points and the watched part of the 90 after the deploy.
    let n_points = er["points"].as_array().unwrap().len();
    assert!((240..=270).contains(&n_points), "{n_points}");

    let resp = watchdog::app::app(server.state.clone())
        .oneshot(patch("resolved"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Opened, acknowledged (above), resolved: every status change is announced.
    receiver.wait_for(3).await;
    let (_, v, _) = call(&server, "GET", &uri, None, Body::empty()).await;
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        // Reading the explanation wrote nothing (no `explanation` entry).
        ["opened", "status", "note", "status"],
        "{v}"
    );
    assert_eq!(v["status"], "resolved");

    // GitHub's webhook, signed and not.
    let body = json!({
        "deployment_status": {"state": "success", "environment": "production", "updated_at": "2026-03-30T19:00:00Z"},
        "deployment": {"sha": "abc123def", "ref": "main"},
        "repository": {"name": "search"}
    })
    .to_string();
    let sig = {
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"It's a Secret to Everybody").unwrap();
        m.update(body.as_bytes());
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
    };
    let hook = |sig: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/v1/hooks/github")
            .header("x-github-event", "deployment_status")
            .header("x-hub-signature-256", sig)
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let resp = watchdog::app::app(server.state.clone())
        .oneshot(hook(&sig))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = watchdog::app::app(server.state.clone())
        .oneshot(hook("sha256=00"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, v, _) = call(
        &server,
        "GET",
        "/api/v1/deploys?service=search",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(v["items"][0]["deploy_id"], "abc123def");
    assert_eq!(v["items"][0]["source"], "github");

    let (_, _, text) = call(&server, "GET", "/metrics", None, Body::empty()).await;
    assert!(
        text.contains("watchdog_samples_ingested_total 270"),
        "{text}"
    );
    assert!(
        text.contains("watchdog_verdicts_total{verdict=\"regression\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("watchdog_alert_deliveries_total{outcome=\"delivered\"} 3"),
        "{text}"
    );
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(gauge("watchdog_series") >= 1);
    assert!(gauge("watchdog_engine_points") >= gauge("watchdog_series"));
    server.shutdown().await;

    // A restart re-feeds the engine; nothing is decided or alerted twice.
    let server = start(dir.path(), &receiver).await;
    server.state.engine.barrier().await.unwrap();
    let (_, v, _) = call(&server, "GET", "/api/v1/incidents", None, Body::empty()).await;
    assert_eq!(v["total"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 3);
    server.shutdown().await;
    let _ = Arc::new(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_can_require_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.read_token = Secret::new("reader");
    let explainer = Explainer::new(ExplainerConfig::from_vars(|_| None).unwrap());
    let server = Server::start(c, vec![], explainer).await.unwrap();
    let (s, _, _) = call(&server, "GET", "/api/v1/incidents", None, Body::empty()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(
        &server,
        "GET",
        "/api/v1/incidents",
        Some("reader"),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(
        &server,
        "GET",
        "/api/v1/incidents",
        Some(TOKEN),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&server, "POST", "/api/v1/metrics", Some("reader"), "[]").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&server, "GET", "/healthz", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&server, "GET", "/readyz", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    server.shutdown().await;
}
