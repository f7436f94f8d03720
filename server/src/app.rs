//! The HTTP application: `app(state)` builds the router that tests drive with `oneshot`
//! and `watchdog serve` binds to a socket.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use crate::routes;
use crate::state::AppState;

/// The whole application.
pub fn app(state: AppState) -> Router {
    let receivers = state.receivers.clone();
    let api = Router::new()
        .merge(routes::ingest::router(&state))
        .merge(routes::remote_write::router(&state, receivers.clone()))
        .merge(routes::hooks::router(&state))
        .merge(routes::deploys::router())
        .merge(routes::rollouts::router())
        .merge(routes::traces::router())
        .merge(routes::incidents::router())
        .merge(routes::events::router())
        .merge(routes::openapi::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        // Unknown API paths are a JSON 404, not the dashboard's index.html.
        .fallback(api_not_found);
    // OTLP lives at the root, where exporters append /v1/metrics and /v1/logs.
    let otlp = routes::otlp::router(&state, receivers)
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let mut router = Router::new()
        .nest("/api/v1", api)
        .merge(otlp)
        .merge(routes::ops::router());
    let web_dir = &state.config.web_dir;
    let index = web_dir.join("index.html");
    if index.is_file() {
        // Unknown paths get the app's index.html with status 200 (client-side routing).
        router = router.fallback_service(ServeDir::new(web_dir).fallback(ServeFile::new(index)));
    } else {
        router = router.fallback(not_found);
    }
    router
        // Every error answer is JSON with a code, the API's and the root's alike.
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Request latency for `/metrics` (event streams excluded: they last as long as the client).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let streaming = req.uri().path() == "/api/v1/events";
    let start = Instant::now();
    let resp = next.run(req).await;
    if !streaming {
        state.metrics.observe_request(start.elapsed());
    }
    resp
}

async fn api_not_found(
    method: Method,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> AppError {
    AppError::NotFound(format!(
        "no API route {method} {}; see docs/api.md",
        uri.path()
    ))
}

/// Unknown paths outside the API when no web app is served.
async fn not_found(
    method: Method,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> AppError {
    AppError::NotFound(format!(
        "no route {method} {}; the API is under /api/v1 (see /api/v1/openapi.json)",
        uri.path()
    ))
}

/// Error answers that axum makes itself (405 with an empty body, a path parameter that
/// does not parse, a JSON body that does not deserialize) become the API's JSON error
/// shape, with the text they had as the message. Answers that already have a body of
/// their own type (JSON, or the OTLP receivers' protobuf `Status`) are left alone.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = axum::response::IntoResponse::into_response((
        status,
        axum::Json(serde_json::json!({ "error": message, "code": crate::error::code(status) })),
    ));
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched without
/// regard to case (RFC 7235), and so is surrounding whitespace.
fn bearer(req: &Request) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let value = value.trim_ascii();
    let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The `token` query parameter, accepted for the event stream only: a browser's
/// `EventSource` cannot send an `Authorization` header, so with a read token the
/// dashboard's live updates would otherwise be refused.
fn query_token(req: &Request) -> Option<&[u8]> {
    if !req.uri().path().ends_with("/events") {
        return None;
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::as_bytes)
}

/// Writes need the API token; reads need the read token (or the API token) when one is
/// configured. The GitHub and GitLab hooks authenticate with their own secrets.
async fn authorize(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let path = req.uri().path();
    // Flagger's webhooks carry the token in their payload (see `routes::rollouts`).
    if path.ends_with("/hooks/github")
        || path.ends_with("/hooks/gitlab")
        || path.contains("/rollouts/flagger/")
    {
        return Ok(next.run(req).await);
    }
    let cfg = &state.config;
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let token = bearer(&req).or_else(|| if read { query_token(&req) } else { None });
    let api_ok = |t: &[u8]| cfg.api_token.as_ref().is_some_and(|s| s.matches(t));
    let allowed = if read {
        match &cfg.read_token {
            None => true,
            Some(rt) => token.is_some_and(|t| rt.matches(t) || api_ok(t)),
        }
    } else if cfg.api_token.is_none() {
        cfg.allow_unauthenticated
    } else {
        token.is_some_and(api_ok)
    };
    if allowed {
        Ok(next.run(req).await)
    } else if !read && cfg.api_token.is_none() {
        Err(AppError::Unauthorized(
            "this server is read-only: it was started without an API token (set WATCHDOG_API_TOKEN where it runs)".into(),
        ))
    } else if token.is_none() {
        Err(AppError::Unauthorized(
            "missing bearer token: send Authorization: Bearer <token>".into(),
        ))
    } else {
        Err(AppError::Unauthorized("invalid token".into()))
    }
}
