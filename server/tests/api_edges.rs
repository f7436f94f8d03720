//! The smaller findings of issue 12 (finding 11) through `app(state)` on a real SQLite
//! file: JSON errors with a code for unknown paths, wrong methods and bad path
//! parameters; the bearer scheme in any case; the event stream's query token; a read of
//! an explanation that writes nothing; a bad byte or a byte-order mark in NDJSON.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use watchdog::config::{Clock, Secret};
use watchdog::server::Server;

use common::{metrics_ndjson, T0};

use common::app::{bearer, TOKEN};

const READ: &str = "read-token";

async fn start(dir: &std::path::Path) -> Server {
    let mut c = common::app::config(dir, Clock::Data);
    c.read_token = Secret::new(READ);
    // A web app is present, as in production: its index.html must not answer API paths.
    let web = dir.join("dist");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<html>dashboard</html>").unwrap();
    c.web_dir = web;
    common::app::start(c, Vec::new()).await
}

/// A JSON request with this `Authorization` header if any: status, content type, JSON.
async fn send(
    server: &Server,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, String, Value) {
    let a = common::app::request(server, method, uri, auth, Some("application/json"), body).await;
    let v = a.json();
    (a.status, a.content_type, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_a_code_and_api_paths_never_get_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let read = bearer(READ);
    let (s, ctype, v) = send(&server, "GET", "/api/v1/nope", Some(&read), Body::empty()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_eq!(v["code"], "not_found", "{v}");
    assert!(v["error"].as_str().unwrap().contains("/api/v1/nope"), "{v}");
    // The dashboard still answers its own paths.
    let (s, ctype, _) = send(&server, "GET", "/incidents/3", None, Body::empty()).await;
    assert_eq!((s, ctype.starts_with("text/html")), (StatusCode::OK, true));

    let (s, _, v) = send(
        &server,
        "DELETE",
        "/api/v1/metrics",
        Some(&bearer(TOKEN)),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["code"], "method_not_allowed", "{v}");
    let (s, _, v) = send(
        &server,
        "GET",
        "/api/v1/incidents/abc",
        Some(&read),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "bad_request", "{v}");
    assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    let (s, _, v) = send(&server, "POST", "/api/v1/metrics", None, "[]").await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthorized"))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_the_event_stream_takes_a_query_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let line = metrics_ndjson("checkout", "production", T0, 1, 10, 0.01);
    for auth in [format!("bearer {TOKEN}"), format!("BEARER  {TOKEN} ")] {
        let (s, _, v) = send(
            &server,
            "POST",
            "/api/v1/metrics",
            Some(&auth),
            line.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{auth:?}: {v}");
    }
    let (s, _, _) = send(
        &server,
        "POST",
        "/api/v1/metrics",
        Some(&format!("Basic {TOKEN}")),
        line,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // EventSource cannot send headers: the read token in the query opens the stream …
    let app = watchdog::app::app(server.state.clone());
    let req = Request::builder()
        .uri(format!("/api/v1/events?token={READ}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    // … and nothing else.
    let (s, _, _) = send(
        &server,
        "GET",
        "/api/v1/events?token=wrong",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(
        &server,
        "GET",
        &format!("/api/v1/deploys?token={READ}"),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_an_explanation_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let w = bearer(TOKEN);
    let before = metrics_ndjson("checkout", "production", T0, 180, 10, 0.01);
    send(&server, "POST", "/api/v1/metrics", Some(&w), before).await;
    let deploy = json!([{"timestamp": "2026-03-30T18:30:00Z", "deploy_id": "v1", "service": "checkout", "environment": "production"}]);
    send(
        &server,
        "POST",
        "/api/v1/deploys",
        Some(&w),
        deploy.to_string(),
    )
    .await;
    let after = metrics_ndjson("checkout", "production", T0 + 1800, 90, 10, 0.09);
    send(&server, "POST", "/api/v1/metrics", Some(&w), after).await;
    server.state.engine.barrier().await.unwrap();
    let read = bearer(READ);
    let (_, _, v) = send(
        &server,
        "GET",
        "/api/v1/incidents",
        Some(&read),
        Body::empty(),
    )
    .await;
    let id = v["items"][0]["id"].as_i64().expect("an incident");
    let uri = format!("/api/v1/incidents/{id}");
    let (s, _, v) = send(
        &server,
        "GET",
        &format!("{uri}/explanation"),
        Some(&read),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["source"], "local");
    assert!(v["text"].as_str().unwrap().contains("v1"), "{v}");
    let (_, _, v) = send(&server, "GET", &uri, Some(&read), Body::empty()).await;
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["opened"], "{v}");
    assert!(v["explanation"].is_null(), "{v}");

    // The audit says which credential made a change; a name sent along is marked a claim.
    let patch = json!({"status": "acknowledged", "actor": "the-ceo"}).to_string();
    let (s, _, _) = send(&server, "PATCH", &uri, Some(&w), patch).await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, v) = send(&server, "GET", &uri, Some(&read), Body::empty()).await;
    assert_eq!(
        v["audit"][1]["actor"], "the-ceo (as claimed, API token)",
        "{v}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_byte_costs_its_line_and_a_bom_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(metrics_ndjson("checkout", "production", T0, 2, 10, 0.01).as_bytes());
    body.extend(
        b"{\"timestamp\":\"2026-03-30T18:10:00Z\",\"service\":\"caf\xE9\",\"error_rate\":0.1}\n",
    );
    body.extend(metrics_ndjson("checkout", "production", T0 + 60, 2, 10, 0.01).as_bytes());
    let (s, _, v) = send(
        &server,
        "POST",
        "/api/v1/metrics",
        Some(&bearer(TOKEN)),
        body,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 4, "{v}");
    assert_eq!(v["rejected"][0]["line"], 3, "{v}");
    assert_eq!(v["rejected"][0]["field"], "(encoding)", "{v}");
    server.shutdown().await;
}
