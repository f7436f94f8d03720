//! What the OTLP and remote-write receivers share: their conversion state, the version
//! tracker, an overload guard, and the last step of both: deploys first, then samples
//! and logs, stored and fed to the engine the way `POST /api/v1/*` does.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio::sync::Semaphore;
use watchdog_core::{LogEvent, Sample};

use crate::error::AppError;
use crate::ingest::otlp::metrics::MetricState;
use crate::ingest::otlp::OtlpConfig;
use crate::ingest::remote_write::{RemoteWriteConfig, RemoteWriteState};
use crate::ingest::versions::{Sighting, VersionTracker};
use crate::state::AppState;
use crate::store::NewRecord;

/// Requests converted and stored at once; more get 503 with `Retry-After`.
pub const MAX_IN_FLIGHT: usize = 32;

/// Seconds a client is asked to wait when the server is overloaded or the store failed.
pub const RETRY_AFTER_SECS: u64 = 2;

/// Shared by the receiver routes (one per application).
#[derive(Debug)]
pub struct Receivers {
    /// `[otlp]`.
    pub otlp: OtlpConfig,
    /// `[remote_write]`.
    pub remote_write: RemoteWriteConfig,
    /// Previous points of cumulative OTLP series.
    pub otlp_metrics: Mutex<MetricState>,
    /// Previous samples of remote-write counters.
    pub remote_write_state: Mutex<RemoteWriteState>,
    /// Versions per service (one lock: concurrent requests must not both announce a
    /// version).
    pub versions: tokio::sync::Mutex<VersionTracker>,
    /// The overload guard.
    pub in_flight: Semaphore,
}

impl Receivers {
    /// Fresh state for the given configuration.
    pub fn new(otlp: OtlpConfig, remote_write: RemoteWriteConfig) -> Receivers {
        Receivers {
            otlp,
            remote_write,
            otlp_metrics: Mutex::default(),
            remote_write_state: Mutex::default(),
            versions: tokio::sync::Mutex::default(),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Announces the deploys the sightings imply (when turned on), through the same path
    /// as `POST /api/v1/deploys`.
    ///
    /// # Errors
    /// Store failures or the engine gone.
    pub async fn deploys(
        &self,
        state: &AppState,
        sightings: Vec<Sighting>,
        source: &str,
    ) -> Result<usize, AppError> {
        if sightings.is_empty() {
            return Ok(0);
        }
        let mut tracker = self.versions.lock().await;
        let deploys = tracker.deploys(state.store.as_ref(), sightings).await?;
        let n = deploys.len();
        if n > 0 {
            crate::ingest::accept::deploys(state, deploys, source).await?;
        }
        Ok(n)
    }
}

/// Stores samples and feeds them to the engine: the path of `POST /api/v1/metrics`.
///
/// # Errors
/// Store failures or the engine gone.
pub async fn store_samples(state: &AppState, samples: Vec<Sample>) -> Result<(), AppError> {
    crate::ingest::prometheus::ingest(state, samples)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Stores log events (with the JSON record kept for each) and feeds them to the engine:
/// the path of `POST /api/v1/logs`.
///
/// # Errors
/// Store failures or the engine gone.
pub async fn store_logs(state: &AppState, events: Vec<(LogEvent, String)>) -> Result<(), AppError> {
    if events.is_empty() {
        return Ok(());
    }
    let (rows, events): (Vec<NewRecord>, Vec<LogEvent>) = events
        .into_iter()
        .map(|(e, raw)| {
            let row = NewRecord {
                ts_ms: e.timestamp.millis(),
                service: e.service.clone(),
                environment: e.environment.clone(),
                body: raw,
            };
            (row, e)
        })
        .collect();
    let n = rows.len();
    state.store.insert_logs(&rows).await?;
    state
        .engine
        .logs(events)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    state.metrics.logs.fetch_add(n as u64, Ordering::Relaxed);
    Ok(())
}
