//! OTLP/HTTP receiver: `POST /v1/metrics` and `POST /v1/logs` (the paths an exporter
//! appends to `OTEL_EXPORTER_OTLP_ENDPOINT`), with the status codes of the OTLP/HTTP
//! specification:
//! - 200 with an `Export*ServiceResponse` in the request's encoding; when some items were
//!   invalid, its `partial_success` counts them and names the first problem;
//! - 400 (`google.rpc.Status`, code 3) when the body cannot be decoded or nothing in it
//!   is valid, 413 when it is too large, 415 for another content type or encoding;
//! - 503 with `Retry-After` when too many requests are in flight or the store failed
//!   (retryable: nothing of the request was acknowledged).
//!
//! Acknowledged means stored: the response is sent after the samples, logs and deploys
//! are in the store and handed to the engine.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use std::sync::atomic::Ordering;

use crate::error::AppError;
use crate::ingest::otlp::{decode, decompress, logs, metrics, BodyError, Encoding};
use crate::ingest::receivers::{store_logs, store_samples, Receivers, Refused, RETRY_AFTER_SECS};
use crate::state::AppState;

/// `google.rpc.Status`, the body of OTLP error responses (declared after
/// `google/rpc/status.proto`; its `details` are never sent).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// Field 1: the gRPC status code (3 invalid argument, 8 resource exhausted,
    /// 14 unavailable).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Field 2: the message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The routes, sharing `receivers`.
pub fn router(state: &AppState, receivers: Arc<Receivers>) -> Router<AppState> {
    Router::new()
        .route("/v1/metrics", post(export_metrics))
        .route("/v1/logs", post(export_logs))
        .route("/v1/traces", post(no_traces))
        .layer(Extension(receivers))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
}

fn encoded<M: prost::Message + serde::Serialize>(
    encoding: Encoding,
    status: StatusCode,
    msg: &M,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => msg.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_default(),
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        body,
    )
        .into_response()
}

/// An error response: a `google.rpc.Status` in the request's encoding (JSON when the
/// request's own content type was the problem).
pub fn failure(encoding: Encoding, status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => 14,
        StatusCode::INTERNAL_SERVER_ERROR => 13,
        _ => 3,
    };
    let mut resp = encoded(encoding, status, &RpcStatus { code, message });
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    resp
}

fn body_failure(encoding: Encoding, e: BodyError) -> Response {
    match e {
        BodyError::TooLarge(m) => failure(encoding, StatusCode::PAYLOAD_TOO_LARGE, m),
        BodyError::Invalid(m) => failure(encoding, StatusCode::BAD_REQUEST, m),
        BodyError::Unsupported(m) => failure(encoding, StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
    }
}

/// A failure after decoding: the store or the engine. Retryable, logged once here.
pub fn stored_failure(encoding: Encoding, e: AppError) -> Response {
    tracing::error!(error = %e, "storing received data failed; the client is asked to retry");
    failure(
        encoding,
        StatusCode::SERVICE_UNAVAILABLE,
        "the data could not be stored; retry later".into(),
    )
}

/// "3 of 10 samples ... refused (the others were stored); first: ...", or without the
/// total when it is 0.
pub fn refused_text(refused: &Refused, of: usize, what: &str) -> String {
    let count = if of > 0 {
        format!("{} of {of}", refused.count)
    } else {
        refused.count.to_string()
    };
    format!(
        "{count} {what} refused (the others were stored); first: {}",
        refused.first.as_deref().unwrap_or_default()
    )
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Everything before conversion: content type, overload, body size, decompression.
/// Returns the encoding and the decompressed body.
fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Encoding, Vec<u8>), Box<Response>> {
    let encoding = Encoding::from_content_type(header_text(headers, header::CONTENT_TYPE))
        .map_err(|m| {
            Box::new(failure(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                m,
            ))
        })?;
    let body = body.map_err(|r| {
        Box::new(if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            failure(
                encoding,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than max_body_bytes ({} bytes); send smaller batches",
                    state.config.max_body_bytes
                ),
            )
        } else {
            failure(
                encoding,
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {r}"),
            )
        })
    })?;
    let raw = decompress(
        &body,
        header_text(headers, header::CONTENT_ENCODING),
        state.config.max_body_bytes,
    )
    .map_err(|e| Box::new(body_failure(encoding, e)))?;
    Ok((encoding, raw))
}

fn overloaded() -> Response {
    failure(
        Encoding::Json,
        StatusCode::SERVICE_UNAVAILABLE,
        "too many export requests in flight; retry after the Retry-After delay".into(),
    )
}

/// Traces are not used: say so, rather than let a misconfigured pipeline's spans vanish
/// behind a 200.
async fn no_traces() -> Response {
    failure(
        Encoding::Json,
        StatusCode::NOT_FOUND,
        "WatchDog takes OTLP metrics and logs, not traces: remove it from the traces pipeline"
            .into(),
    )
}

async fn export_metrics(
    State(state): State<AppState>,
    Extension(rx): Extension<Arc<Receivers>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(_permit) = rx.in_flight.try_acquire() else {
        return overloaded();
    };
    let (encoding, raw) = match prepare(&state, &headers, body) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    let rx2 = rx.clone();
    let converted = tokio::task::spawn_blocking(move || {
        let req: ExportMetricsServiceRequest =
            decode(&raw, encoding, "ExportMetricsServiceRequest")?;
        let mut st = rx2.otlp_metrics.lock().unwrap_or_else(|p| p.into_inner());
        Ok::<_, BodyError>(metrics::convert(&req, &mut st, &rx2.otlp.version_attribute))
    })
    .await;
    let batch = match converted {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return body_failure(encoding, e),
        Err(e) => {
            return stored_failure(encoding, AppError::Internal(format!("decoder task: {e}")))
        }
    };
    state
        .metrics
        .rejected
        .fetch_add(batch.rejected as u64, Ordering::Relaxed);
    if batch.rejected > 0 && batch.rejected == batch.points {
        return failure(
            encoding,
            StatusCode::BAD_REQUEST,
            format!(
                "no valid data point: all {} were rejected; first: {}",
                batch.rejected,
                batch.first_error.unwrap_or_default()
            ),
        );
    }
    let undo = batch.undo;
    let samples = batch.samples.len();
    let stored = async {
        let deploys = if rx.otlp.version_deploys {
            rx.deploys(&state, batch.sightings, "otlp").await?
        } else {
            Refused::default()
        };
        Ok::<_, AppError>((deploys, store_samples(&state, batch.samples).await?))
    }
    .await;
    let (deploys_refused, refused) = match stored {
        Ok(r) => r,
        Err(e) => {
            // The exporter retries: difference its retry against the same references.
            rx.otlp_metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rollback(undo);
            return stored_failure(encoding, e);
        }
    };
    if samples > 0 && refused.count == samples {
        // Not retryable: the same data would be refused again.
        return failure(
            encoding,
            StatusCode::BAD_REQUEST,
            format!(
                "no sample stored: all {samples} made from the data points were refused; first: {}",
                refused.first.unwrap_or_default()
            ),
        );
    }
    let mut problems = Vec::new();
    if batch.rejected > 0 {
        problems.push(format!(
            "{} of {} data points rejected; first: {}",
            batch.rejected,
            batch.points,
            batch.first_error.unwrap_or_default()
        ));
    }
    if refused.count > 0 {
        problems.push(refused_text(
            &refused,
            samples,
            "samples made from the data points",
        ));
    }
    if deploys_refused.count > 0 {
        problems.push(refused_text(&deploys_refused, 0, "version deploys"));
    }
    let partial_success = (!problems.is_empty()).then(|| ExportMetricsPartialSuccess {
        // A refused sample stands for at least one data point.
        rejected_data_points: (batch.rejected + refused.count) as i64,
        error_message: problems.join("; "),
    });
    encoded(
        encoding,
        StatusCode::OK,
        &ExportMetricsServiceResponse { partial_success },
    )
}

async fn export_logs(
    State(state): State<AppState>,
    Extension(rx): Extension<Arc<Receivers>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(_permit) = rx.in_flight.try_acquire() else {
        return overloaded();
    };
    let (encoding, raw) = match prepare(&state, &headers, body) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    let version_attribute = rx.otlp.version_attribute.clone();
    let converted = tokio::task::spawn_blocking(move || {
        let req: ExportLogsServiceRequest = decode(&raw, encoding, "ExportLogsServiceRequest")?;
        Ok::<_, BodyError>(logs::convert(&req, &version_attribute))
    })
    .await;
    let batch = match converted {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return body_failure(encoding, e),
        Err(e) => {
            return stored_failure(encoding, AppError::Internal(format!("decoder task: {e}")))
        }
    };
    state
        .metrics
        .rejected
        .fetch_add(batch.rejected as u64, Ordering::Relaxed);
    if batch.rejected > 0 && batch.events.is_empty() {
        return failure(
            encoding,
            StatusCode::BAD_REQUEST,
            format!(
                "no valid log record: all {} were rejected; first: {}",
                batch.rejected,
                batch.first_error.unwrap_or_default()
            ),
        );
    }
    let deploys_refused = if rx.otlp.version_deploys {
        match rx.deploys(&state, batch.sightings, "otlp").await {
            Ok(r) => r,
            Err(e) => return stored_failure(encoding, e),
        }
    } else {
        Refused::default()
    };
    let events = batch.events.len();
    let refused = match store_logs(&state, batch.events).await {
        Ok(r) => r,
        Err(e) => return stored_failure(encoding, e),
    };
    if events > 0 && refused.count == events {
        return failure(
            encoding,
            StatusCode::BAD_REQUEST,
            format!(
                "no log record stored: all {events} valid ones were refused; first: {}",
                refused.first.unwrap_or_default()
            ),
        );
    }
    let mut problems = Vec::new();
    if batch.rejected > 0 {
        problems.push(format!(
            "{} of {} log records rejected; first: {}",
            batch.rejected,
            batch.records,
            batch.first_error.unwrap_or_default()
        ));
    }
    if refused.count > 0 {
        problems.push(refused_text(&refused, events, "valid log records"));
    }
    if deploys_refused.count > 0 {
        problems.push(refused_text(&deploys_refused, 0, "version deploys"));
    }
    let partial_success = (!problems.is_empty()).then(|| ExportLogsPartialSuccess {
        rejected_log_records: (batch.rejected + refused.count) as i64,
        error_message: problems.join("; "),
    });
    encoded(
        encoding,
        StatusCode::OK,
        &ExportLogsServiceResponse { partial_success },
    )
}
