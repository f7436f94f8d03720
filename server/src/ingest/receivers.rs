//! What the OTLP and remote-write receivers share: their conversion state, the version
//! tracker, an overload guard, and the last step of both: deploys first, then samples
//! and logs, through the one ingest path of `POST /api/v1/*` ([`accept`]: event times
//! checked against the clock, limits and admission, stored then fed in a task that a
//! dropped request cannot split).

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio::sync::Semaphore;
use watchdog_core::{Deploy, LogEvent, Sample};

use crate::error::AppError;
use crate::ingest::accept;
use crate::ingest::body::{Item, Rejection};
use crate::ingest::otlp::metrics::MetricState;
use crate::ingest::otlp::OtlpConfig;
use crate::ingest::remote_write::{RemoteWriteConfig, RemoteWriteState};
use crate::ingest::versions::{Sighting, VersionTracker};
use crate::state::AppState;

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
    pub fn new(
        otlp: OtlpConfig,
        remote_write: RemoteWriteConfig,
        limits: &crate::ingest::limits::Limits,
    ) -> Receivers {
        Receivers {
            otlp,
            remote_write,
            otlp_metrics: Mutex::default(),
            remote_write_state: Mutex::default(),
            versions: tokio::sync::Mutex::new(VersionTracker::new(
                limits.max_series,
                limits.max_label_bytes,
            )),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Announces the deploys the sightings imply (when turned on), through the same path
    /// as `POST /api/v1/deploys`: a deploy stamped too far ahead of the clock or over a
    /// limit is refused (and counted in what is returned), the rest stored and fed.
    ///
    /// # Errors
    /// Store failures or the engine gone.
    pub async fn deploys(
        &self,
        state: &AppState,
        sightings: Vec<Sighting>,
        source: &str,
    ) -> Result<Refused, AppError> {
        let mut refused = Refused::default();
        if sightings.is_empty() {
            return Ok(refused);
        }
        let mut tracker = self.versions.lock().await;
        let deploys = tracker.deploys(state.store.as_ref(), sightings).await?;
        if deploys.is_empty() {
            return Ok(refused);
        }
        let (items, late) = accept::check_event_times(
            unstored_items(deploys),
            |d| d.timestamp,
            AppState::now_ms(),
            state.config.max_future_skew_secs,
        );
        let (items, over) = state.admission.deploys(items);
        refused.add(state, &late);
        refused.add(state, &over);
        let deploys: Vec<Deploy> = items.into_iter().map(|i| i.record).collect();
        if !deploys.is_empty() {
            accept::deploys(state, deploys, source).await?;
        }
        Ok(refused)
    }
}

/// What the ingest path refused of a receiver's converted records (an event time too far
/// ahead of the clock, a limit, a series past the cap), each counted in
/// `watchdog_rejected_total`. The rest were stored.
#[derive(Debug, Default)]
pub struct Refused {
    /// How many records.
    pub count: usize,
    /// What was wrong with the first.
    pub first: Option<String>,
}

impl Refused {
    fn add(&mut self, state: &AppState, rejected: &[Rejection]) {
        if rejected.is_empty() {
            return;
        }
        state
            .metrics
            .rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        self.count += rejected.len();
        if self.first.is_none() {
            self.first = rejected
                .first()
                .map(|r| format!("field `{}`: {}", r.field, r.error));
        }
    }

    /// Adds another step's refusals.
    pub fn merge(&mut self, other: Refused) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// Items for records whose JSON text is not stored with them (deploys).
fn unstored_items<T>(records: Vec<T>) -> Vec<Item<T>> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| Item {
            raw: String::new(),
            record,
            index,
            line: 0,
        })
        .collect()
}

/// Checks, stores and feeds samples: the path of `POST /api/v1/metrics`. Returns what
/// was refused; when storing fails nothing is fed.
///
/// # Errors
/// Store failures or the engine gone.
pub async fn store_samples(state: &AppState, samples: Vec<Sample>) -> Result<Refused, AppError> {
    let mut refused = Refused::default();
    if samples.is_empty() {
        return Ok(refused);
    }
    let done = accept::samples(state, accept::sample_items(samples)).await?;
    refused.add(state, &done.rejected);
    Ok(refused)
}

/// Checks, stores (with the JSON record kept for each) and feeds log events: the path
/// of `POST /api/v1/logs`. Returns what was refused.
///
/// # Errors
/// Store failures or the engine gone.
pub async fn store_logs(
    state: &AppState,
    events: Vec<(LogEvent, String)>,
) -> Result<Refused, AppError> {
    let mut refused = Refused::default();
    if events.is_empty() {
        return Ok(refused);
    }
    let items = events
        .into_iter()
        .enumerate()
        .map(|(index, (record, raw))| Item {
            record,
            raw,
            index,
            line: 0,
        })
        .collect();
    let done = accept::logs(state, items).await?;
    refused.add(state, &done.rejected);
    Ok(refused)
}
