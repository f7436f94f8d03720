//! The OpenAPI document (`server/openapi.json`, served at `/api/v1/openapi.json`) and
//! the router agree: every `.route(…)` in `server/src/routes/` is in the document with
//! its methods, every operation of the document is routed (a request reaches a handler,
//! not the fallback or a 405), and every error the document lists is the JSON `Error`.
//!
//! The routes are read from the source, so a route added on another branch fails here
//! until its entry is added: the check does not rely on anyone registering it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::explainer::{Explainer, ExplainerConfig};
use watchdog::server::Server;

const TOKEN: &str = "test-token";
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// (method, full path) pairs.
type Ops = BTreeSet<(String, String)>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `.route("PATH", get(…).post(…))` calls of one file: the path and the methods
/// named at the top level of the method router.
fn routes_in(file: &Path, text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(".route(") {
        let start = from + at + ".route(".len();
        from = start;
        let rest = text[start..].trim_start();
        let Some(lit) = rest.strip_prefix('"') else {
            panic!(
                "{}: a .route( whose path is not a string literal; write the path inline so \
                 tests/openapi.rs can check it against the document",
                file.display()
            );
        };
        let path = lit[..lit.find('"').unwrap()].to_string();
        // Walk the method router to the `)` closing `.route(`.
        let mut i = start + (text[start..].len() - rest.len()) + path.len() + 2;
        let mut depth = 1;
        let mut methods = Vec::new();
        while depth > 0 {
            match b[i] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'"' => {
                    i += 1;
                    while b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                c if depth == 1 && c.is_ascii_alphabetic() => {
                    let end = i + b[i..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    let word = &text[i..end];
                    if b.get(end) == Some(&b'(') {
                        assert!(
                            !matches!(word, "any" | "on" | "any_service" | "on_service"),
                            "{}: route {path} uses {word}(…); name its methods (get, post, …) so \
                             the document can list them",
                            file.display()
                        );
                        if METHODS.contains(&word) {
                            methods.push(word.to_string());
                        }
                    }
                    i = end;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        assert!(
            !methods.is_empty(),
            "{}: no method found for route {path}",
            file.display()
        );
        out.push((path, methods));
    }
    out
}

/// Every route in the source, with its full path: routers merged into the `api` router
/// of `app.rs` are nested under `/api/v1`, the others are at the root.
fn routes_in_source() -> Ops {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let app = std::fs::read_to_string(root.join("app.rs")).unwrap();
    assert!(
        app.contains(".nest(\"/api/v1\", api)"),
        "app.rs nests `api`"
    );
    let api_part = &app[app
        .find("let api = Router::new()")
        .expect("app.rs builds `api`")..];
    // The `api` router's statement, to its `;`.
    let api_part = &api_part[..api_part.find(';').unwrap()];
    let mut files = Vec::new();
    sources(&root.join("routes"), &mut files);
    files.sort();
    let mut ops = Ops::new();
    for f in files {
        let module = f.file_stem().unwrap().to_str().unwrap().to_string();
        // Comments are not routes (line comments only: the house style has no others).
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let prefix = if api_part.contains(&format!("routes::{module}::")) {
            "/api/v1"
        } else {
            ""
        };
        for (path, methods) in routes_in(&f, &text) {
            for m in methods {
                ops.insert((m, format!("{prefix}{path}")));
            }
        }
    }
    ops
}

fn document() -> Value {
    serde_json::from_str(watchdog::routes::openapi::DOCUMENT).expect("openapi.json is JSON")
}

fn routes_in_document(doc: &Value) -> Ops {
    let mut ops = Ops::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            assert!(METHODS.contains(&m.as_str()), "{path}: {m} is not a method");
            ops.insert((m.clone(), path.clone()));
        }
    }
    ops
}

#[test]
fn every_route_is_in_the_document_and_every_operation_is_a_route() {
    let source = routes_in_source();
    let doc = routes_in_document(&document());
    assert!(source.len() >= 25, "the scan found only {source:?}");
    let missing: Vec<_> = source.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&source).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "server/openapi.json and the router disagree.\n  routes the document lacks: {missing:?}\n  \
         operations with no route: {stale:?}\nAdd or remove the entries in server/openapi.json."
    );
}

#[test]
fn every_error_response_of_the_document_is_the_json_error_with_a_code() {
    let doc = document();
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "code"]));
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1") {
            continue;
        }
        for (m, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{m} {path}: no operationId");
            for (status, r) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let name = r["$ref"].as_str().unwrap_or_default();
                    let resolved =
                        &doc["components"]["responses"][name.rsplit('/').next().unwrap()];
                    assert_eq!(
                        resolved["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{m} {path} {status}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_a_handler_and_the_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ServerConfig::for_state_dir(dir.path());
    c.clock = Clock::Data;
    c.api_token = Secret::new(TOKEN);
    let explainer = Explainer::new(ExplainerConfig::from_vars(|_| None).unwrap());
    let server = Server::start(c, Vec::new(), explainer).await.unwrap();
    let app = || watchdog::app::app(server.state.clone());

    let resp = app()
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served, document());

    let mut outcomes = BTreeMap::new();
    for (method, path) in routes_in_document(&document()) {
        let uri = path.replace("{id}", "999999");
        let req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let streaming = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = if streaming {
            Value::Null
        } else {
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
                .await
                .unwrap();
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let message = body["error"].as_str().unwrap_or_default().to_string();
        let fallback = message.starts_with("no API route") || message.starts_with("no route");
        if status == StatusCode::METHOD_NOT_ALLOWED || fallback {
            outcomes.insert(format!("{method} {path}"), format!("{status} {message}"));
        }
        if path.starts_with("/api/v1") && (status.is_client_error() || status.is_server_error()) {
            assert!(
                body["code"].is_string() && body["error"].is_string(),
                "{method} {path}: {status} without a JSON error and code: {body}"
            );
        }
    }
    assert!(
        outcomes.is_empty(),
        "documented operations that no handler answers: {outcomes:?}"
    );

    // The root is JSON too: an unknown path and a wrong method.
    for (method, uri, want) in [
        ("GET", "/nope", StatusCode::NOT_FOUND),
        ("POST", "/healthz", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let resp = app()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{method} {uri}");
        let v: Value = serde_json::from_slice(
            &axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap(),
        )
        .unwrap_or(Value::Null);
        assert_eq!(
            v["code"],
            watchdog::error::code(want),
            "{method} {uri}: {v}"
        );
    }
}
