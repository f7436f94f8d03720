//! Calling a server's router in process, the way most API tests talk to it: no socket,
//! the real app with its real state.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use watchdog::alerts::Channel;
use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::explainer::{Explainer, ExplainerConfig};
use watchdog::server::Server;

/// The API token of the servers these helpers configure.
pub const TOKEN: &str = "test-token";

/// The configuration the API tests start from: state in `dir`, the given clock, the
/// test token, a 10-minute monitoring window.
pub fn config(dir: &Path, clock: Clock) -> ServerConfig {
    let mut c = ServerConfig::for_state_dir(dir);
    c.clock = clock;
    c.api_token = Secret::new(TOKEN);
    c.detector.monitoring_window_secs = 600;
    c
}

/// Starts a server with these alert channels and no language model.
pub async fn start(config: ServerConfig, channels: Vec<Channel>) -> Server {
    Server::start(config, channels, no_llm()).await.unwrap()
}

/// An explainer without a language model (the template explanations).
pub fn no_llm() -> Explainer {
    Explainer::new(ExplainerConfig::from_vars(|_| None).unwrap())
}

/// What the router answered to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Answer {
    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// Sends one request through the router. `auth` is the whole `Authorization` header,
/// `content_type` the request's, when given.
pub async fn request(
    server: &Server,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(c) = content_type {
        req = req.header("content-type", c);
    }
    let resp = watchdog::app::app(server.state.clone())
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        text: String::from_utf8_lossy(&bytes).to_string(),
    }
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request with the test token: its status, its JSON (`Null` if none) and its text.
pub async fn call_text(
    server: &Server,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value, String) {
    let a = request(server, method, uri, Some(&bearer(TOKEN)), None, body).await;
    let v = a.json();
    (a.status, v, a.text)
}

/// A request with the test token that must succeed; its JSON answer.
pub async fn call(server: &Server, method: &str, uri: &str, body: impl Into<Body>) -> Value {
    let (status, v, text) = call_text(server, method, uri, body).await;
    assert_eq!(status, StatusCode::OK, "{method} {uri}: {text}");
    v
}

/// Starts a server and serves its app on a free loopback port, for clients that speak
/// real HTTP: the server and its base URL (`http://127.0.0.1:PORT`).
pub async fn listen(config: ServerConfig, channels: Vec<Channel>) -> (Server, String) {
    let server = start(config, channels).await;
    let base = super::loopback::serve_url(watchdog::app::app(server.state.clone())).await;
    (server, base)
}
