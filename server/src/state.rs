//! The state every handler and background task shares.

use std::sync::Arc;

use tokio::sync::{broadcast, Notify};

use crate::alerts::Channel;
use crate::config::ServerConfig;
use crate::events::ServerEvent;
use crate::metrics::Metrics;
use crate::runner::EngineHandle;
use crate::store::Store;

/// Cloned into every handler; everything inside is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// The detection engine.
    pub engine: EngineHandle,
    /// Live updates for `GET /api/v1/events`.
    pub events: broadcast::Sender<ServerEvent>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Where alerts go.
    pub alerts: Arc<Vec<Channel>>,
    /// HTTP client for alert delivery.
    pub http: reqwest::Client,
    /// Wakes the outbox worker when new alerts are queued.
    pub outbox_wake: Arc<Notify>,
    /// Explanations (local, optionally rephrased by a language model).
    pub explainer: crate::explainer::Explainer,
    /// Turns true when the server is shutting down (ends event streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Configuration.
    pub config: Arc<ServerConfig>,
    /// Series and metric names admitted under the limits.
    pub admission: Arc<crate::ingest::limits::Admission>,
    /// This installation's id ([`Store::installation_id`]), in alert keys.
    pub installation: Arc<str>,
    /// State of the OTLP and remote-write receivers (series references, versions).
    pub receivers: Arc<crate::ingest::receivers::Receivers>,
}

impl AppState {
    /// Milliseconds since the epoch, from the wall clock.
    pub fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Publishes a live update (nobody listening is fine).
    pub fn publish(&self, kind: &'static str, data: serde_json::Value) {
        let _ = self.events.send(ServerEvent { kind, data });
    }
}
