//! `GET /api/v1/openapi.json`: the OpenAPI 3 document of the whole HTTP API
//! (`server/openapi.json`). `tests/openapi.rs` reads every `.route(…)` under
//! `server/src/routes/` and fails when a route and the document disagree, so a route
//! added without its entry (or an entry left after its route went) does not merge.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `/openapi.json`, nested under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_json() {
        let v: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(
            v["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            v["openapi"]
        );
        assert!(v["paths"]["/api/v1/openapi.json"]["get"].is_object());
    }
}
