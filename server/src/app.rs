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
        .merge(routes::traces::router())
        .merge(routes::incidents::router())
        .merge(routes::events::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
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
    }
    router
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

fn bearer(req: &Request) -> Option<&[u8]> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .as_bytes()
        .strip_prefix(b"Bearer ")
}

/// Writes need the API token; reads need the read token (or the API token) when one is
/// configured. The GitHub and GitLab hooks authenticate with their own secrets.
async fn authorize(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let path = req.uri().path();
    if path.ends_with("/hooks/github") || path.ends_with("/hooks/gitlab") {
        return Ok(next.run(req).await);
    }
    let cfg = &state.config;
    let token = bearer(&req);
    let api_ok = |t: &[u8]| cfg.api_token.as_ref().is_some_and(|s| s.matches(t));
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
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
