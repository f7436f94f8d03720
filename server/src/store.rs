//! Persistence behind one trait, so that SQLite (embedded default) and Postgres (at scale)
//! are interchangeable. Everything the server decides goes through here before it is
//! acknowledged or announced.
//!
//! Times are epoch milliseconds in storage and [`Timestamp`]s at the edges; verdicts are
//! stored as watchdog-core's `DeployVerdict` JSON.

use async_trait::async_trait;
use serde::Serialize;
use watchdog_core::{DeployVerdict, Timestamp};

mod exec;
pub mod postgres;
mod rows;
mod series_ids;
mod shared;
mod sql;
pub mod sqlite;

/// A storage failure. Shown to clients only as a 500; logged once where it is handled.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Stored data that cannot be read back (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Opening the state directory failed.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A validated metric record, ready to store: the series labels, its event time and the
/// record as received.
#[derive(Clone, Debug)]
pub struct NewRecord {
    /// Event time.
    pub ts_ms: i64,
    /// Service label.
    pub service: String,
    /// Environment label.
    pub environment: String,
    /// The JSON record, re-parsed on restart.
    pub body: String,
}

/// A deploy to store.
#[derive(Clone, Debug)]
pub struct NewDeploy {
    /// The deploy record (event time, id, labels).
    pub deploy: watchdog_core::Deploy,
    /// Where it came from: `api`, `github`, `gitlab`, `argocd`, `file`, `notify`.
    pub source: String,
}

/// A stored record read back for re-feeding the engine.
#[derive(Clone, Debug)]
pub struct StoredRecord {
    /// Row id (insertion order).
    pub id: i64,
    /// The JSON record as received.
    pub body: String,
}

/// A stored deploy read back.
#[derive(Clone, Debug)]
pub struct StoredDeploy {
    /// Row id.
    pub id: i64,
    /// The deploy.
    pub deploy: watchdog_core::Deploy,
}

/// Held by the one process of a group of replicas that does a job which must run only
/// once (pulling Prometheus): see [`Store::try_lead`]. Dropping it gives the job up.
#[derive(Debug)]
pub struct Lease(pub Box<dyn LeaseGuard>);

/// What keeps a [`Lease`]: for PostgreSQL, the connection holding an advisory lock.
#[async_trait]
pub trait LeaseGuard: Send + Sync + std::fmt::Debug {
    /// Whether the lease still holds (the connection that holds it is alive).
    async fn alive(&mut self) -> bool;
}

/// The lease of a store only one process uses (SQLite): always held.
#[derive(Debug)]
pub struct SoleLease;

#[async_trait]
impl LeaseGuard for SoleLease {
    async fn alive(&mut self) -> bool {
        true
    }
}

impl Lease {
    /// Whether the lease still holds.
    pub async fn alive(&mut self) -> bool {
        self.0.alive().await
    }
}

/// Jobs that run once across replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseRole {
    /// Pulling metrics from Prometheus.
    PrometheusPuller,
}

/// What [`Store::prune`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Metric samples.
    pub samples: u64,
    /// Log events.
    pub logs: u64,
    /// Series left without samples (their label pairs; a pair that comes back is
    /// stored again).
    pub series: u64,
}

/// Status of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Just opened, nobody has looked.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Fixed or rolled back.
    Resolved,
    /// Not a real regression.
    FalsePositive,
}

impl IncidentStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::FalsePositive => "false_positive",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => IncidentStatus::Open,
            "acknowledged" => IncidentStatus::Acknowledged,
            "resolved" => IncidentStatus::Resolved,
            "false_positive" => IncidentStatus::FalsePositive,
            _ => return None,
        })
    }
}

/// A deploy with its verdict, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DeployRow {
    /// Row id.
    pub id: i64,
    /// Release id.
    pub deploy_id: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Deploy time.
    pub deployed_at: Timestamp,
    /// Where the deploy event came from.
    pub source: String,
    /// `watching` until a verdict exists, then `decided`.
    pub status: &'static str,
    /// The verdict, once decided.
    pub verdict: Option<DeployVerdict>,
    /// The incident the verdict opened, if any.
    pub incident_id: Option<i64>,
}

/// One incident in a list.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentSummary {
    /// Incident id.
    pub id: i64,
    /// Short title.
    pub title: String,
    /// Current status.
    pub status: IncidentStatus,
    /// Severity name (`critical`, `high`, `medium`, `low`).
    pub severity: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Release id.
    pub deploy_id: String,
    /// Deploy row id.
    pub deploy_row_id: i64,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// One-line summary of what regressed.
    pub headline: String,
}

/// A note on an incident.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    /// Note id.
    pub id: i64,
    /// Incident it belongs to.
    pub incident_id: i64,
    /// Who wrote it.
    pub author: String,
    /// The text.
    pub text: String,
    /// When.
    pub created_at: Timestamp,
}

/// One change to an incident.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// Entry id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who (`watchdog` for automatic changes).
    pub actor: String,
    /// What: `opened`, `status`, `note`, `explanation_refreshed`.
    pub action: String,
    /// Details in words.
    pub detail: String,
}

/// An incident with its verdict, notes and audit trail.
#[derive(Clone, Debug)]
pub struct IncidentRecord {
    /// The summary fields.
    pub summary: IncidentSummary,
    /// The verdict that opened it.
    pub verdict: DeployVerdict,
    /// Notes, oldest first.
    pub notes: Vec<Note>,
    /// Audit trail, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// A cached explanation of an incident.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct StoredExplanation {
    /// The text.
    pub text: String,
    /// `local` or `llm`.
    pub source: String,
    /// The language model, when one was used.
    pub model: Option<String>,
    /// When it was generated.
    pub generated_at: Timestamp,
    /// Why the local text was used although a model was configured.
    pub fallback_reason: Option<String>,
}

/// What to do when a verdict is recorded as a new incident.
#[derive(Clone, Debug)]
pub struct NewIncident {
    /// Short title.
    pub title: String,
    /// Severity name.
    pub severity: String,
    /// Sort rank of the severity (0 = most severe).
    pub severity_rank: i64,
    /// One-line summary.
    pub headline: String,
    /// Alert channels to notify (one outbox row each).
    pub channels: Vec<String>,
}

/// The start of the warning [`with_late_after_verdict`] keeps on a verdict.
pub const LATE_AFTER_VERDICT_WARNING: &str =
    "samples of this deploy's baseline or window arrived after its verdict was given";

/// A stored verdict's body with `samples` more late samples counted: one warning says how
/// many arrived after the verdict, replaced as more come, and the count is kept in the
/// body's `late_after_verdict` field. Both stores write what this returns.
///
/// # Errors
/// A body that is not JSON.
pub fn with_late_after_verdict(body: &str, samples: u64) -> StoreResult<String> {
    let mut v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("stored verdict is not JSON: {e}")))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(StoreError::Corrupt(
            "stored verdict is not an object".into(),
        ));
    };
    let total = obj
        .get("late_after_verdict")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
        + samples;
    obj.insert("late_after_verdict".into(), total.into());
    let warnings = obj
        .entry("warnings")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = warnings.as_array_mut() {
        list.retain(|w| {
            !w.as_str()
                .is_some_and(|w| w.contains(LATE_AFTER_VERDICT_WARNING))
        });
        list.push(
            format!(
                "{total} {LATE_AFTER_VERDICT_WARNING}; it was not revised, and they are kept for later deploys' baselines (a replay of the stored data would judge with them)"
            )
            .into(),
        );
    }
    serde_json::to_string(&v).map_err(|e| StoreError::Corrupt(format!("verdict to JSON: {e}")))
}

/// What recording a verdict did.
#[derive(Clone, Debug)]
pub struct RecordedVerdict {
    /// The deploy row with its new verdict.
    pub deploy: DeployRow,
    /// The incident opened, if the verdict was a regression.
    pub incident: Option<IncidentSummary>,
}

/// Filters and paging of the deploy list.
#[derive(Clone, Debug, Default)]
pub struct DeployQuery {
    /// Exact service.
    pub service: Option<String>,
    /// Exact environment.
    pub environment: Option<String>,
    /// `regression`, `healthy`, `inconclusive` or `watching`.
    pub verdict: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// Filters, sort and paging of the incident list.
#[derive(Clone, Debug, Default)]
pub struct IncidentQuery {
    /// Exact status.
    pub status: Option<IncidentStatus>,
    /// Exact severity.
    pub severity: Option<String>,
    /// Exact service.
    pub service: Option<String>,
    /// Exact environment.
    pub environment: Option<String>,
    /// Case-insensitive text in title, headline, deploy id or service.
    pub text: Option<String>,
    /// Sort column and direction.
    pub sort: IncidentSort,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// Sort orders of the incident list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncidentSort {
    /// Oldest first.
    OpenedAt,
    /// Newest first (default).
    #[default]
    OpenedAtDesc,
    /// Least severe first.
    Severity,
    /// Most severe first.
    SeverityDesc,
    /// Least recently changed first.
    UpdatedAt,
    /// Most recently changed first.
    UpdatedAtDesc,
}

impl IncidentSort {
    /// Parses `opened_at`, `-opened_at`, `severity`, `-severity`, `updated_at`, `-updated_at`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "opened_at" => IncidentSort::OpenedAt,
            "-opened_at" => IncidentSort::OpenedAtDesc,
            "severity" => IncidentSort::Severity,
            "-severity" => IncidentSort::SeverityDesc,
            "updated_at" => IncidentSort::UpdatedAt,
            "-updated_at" => IncidentSort::UpdatedAtDesc,
            _ => return None,
        })
    }
}

/// An alert waiting in the outbox.
#[derive(Clone, Debug)]
pub struct OutboxItem {
    /// Row id; also the idempotency key sent to receivers.
    pub id: i64,
    /// The incident.
    pub incident_id: i64,
    /// Channel name.
    pub channel: String,
    /// `opened` or `resolved`.
    pub kind: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// Counts of outbox rows by status.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct OutboxCounts {
    /// Waiting for (re)delivery.
    pub pending: i64,
    /// Delivered.
    pub delivered: i64,
    /// Given up (permanent failure).
    pub failed: i64,
}

/// A log template the engine has seen, per service and environment: persisted so that a
/// signature keeps its id, and "new" keeps meaning never seen, across restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTemplate {
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The template, its id, level and first sighting.
    pub record: watchdog_core::signatures::TemplateRecord,
}

/// Reads a stored level name back (`None` for templates mined without a level).
///
/// # Errors
/// A name that is no level.
pub fn parse_template_level(level: Option<&str>) -> StoreResult<Option<watchdog_core::LogLevel>> {
    match level {
        None => Ok(None),
        Some(l) => watchdog_core::LogLevel::parse(l)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("log template level {l:?}"))),
    }
}

/// Everything the server persists.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Whether other servers may write to this store too (PostgreSQL). The engine then
    /// follows the store ([`follow`]) instead of being fed by this server's requests.
    fn shared(&self) -> bool {
        false
    }

    /// The database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Takes the lease of the job `role` if no other process holds it: `None` when one
    /// does. Servers sharing a store (replicas on one PostgreSQL) each call this and only
    /// the holder does the job; when it dies its lease ends with its connection and
    /// another takes over. A store only one process uses always grants it.
    async fn try_lead(&self, role: LeaseRole) -> StoreResult<Option<Lease>> {
        let _ = role;
        Ok(Some(Lease(Box::new(SoleLease))))
    }

    /// Stores metric samples in one transaction; returns when they are durable.
    async fn insert_samples(&self, rows: &[NewRecord], now_ms: i64) -> StoreResult<()>;
    /// Stores log events in one transaction.
    async fn insert_logs(&self, rows: &[NewRecord]) -> StoreResult<()>;
    /// Stores deploys in one transaction; for each, the new row id, or `None` when the same
    /// deploy (id, service, environment, time) was already stored.
    async fn insert_deploys(
        &self,
        rows: &[NewDeploy],
        now_ms: i64,
    ) -> StoreResult<Vec<Option<i64>>>;

    /// Samples with event time at or after `from_ms`, in insertion order, after row `after_id`.
    async fn samples_since(
        &self,
        from_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// Log events with event time at or after `from_ms`, in insertion order, after `after_id`.
    async fn logs_since(
        &self,
        from_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// Deploys at or after `from_ms`, in insertion order.
    async fn deploys_since(&self, from_ms: i64) -> StoreResult<Vec<StoredDeploy>>;
    /// Deletes the samples and log events with event time before `before_ms` (retention),
    /// in chunks so that writers are not held up; deploys, verdicts, incidents, notes,
    /// audit and alerts are kept. A sample is deleted once every sample stored in the same
    /// batch is old enough, so a few may outlive the cutoff by a batch. A series left
    /// without samples is deleted too, so that churning label pairs do not pile up.
    async fn prune(&self, before_ms: i64) -> StoreResult<Pruned>;
    /// Event time of the oldest deploy before `before_ms` that has no verdict (a server
    /// down for longer than a watch left it undecided).
    async fn oldest_unjudged_deploy_ms(&self, before_ms: i64) -> StoreResult<Option<i64>>;
    /// Samples of one series in a time range, in event-time order.
    async fn series(
        &self,
        service: &str,
        environment: &str,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// Latest event time of any stored sample or deploy.
    async fn latest_event_ms(&self) -> StoreResult<Option<i64>>;

    /// Records a deploy's verdict, and for a regression opens its incident with an audit
    /// entry and one outbox row per channel, all in one transaction. `None` when the deploy
    /// already had a verdict (re-fed after a restart).
    async fn record_verdict(
        &self,
        verdict: &DeployVerdict,
        incident: Option<&NewIncident>,
        now_ms: i64,
    ) -> StoreResult<Option<RecordedVerdict>>;

    /// Notes on a stored verdict that `samples` more samples of its baseline or window
    /// arrived after it was given (see [`with_late_after_verdict`]). `false` when the
    /// deploy has no stored verdict.
    async fn add_late_after_verdict(
        &self,
        deploy: &watchdog_core::Deploy,
        samples: u64,
    ) -> StoreResult<bool>;

    /// Deploys, newest first.
    async fn list_deploys(&self, q: &DeployQuery) -> StoreResult<(Vec<DeployRow>, i64)>;
    /// One deploy.
    async fn get_deploy(&self, id: i64) -> StoreResult<Option<DeployRow>>;

    /// Incidents.
    async fn list_incidents(&self, q: &IncidentQuery) -> StoreResult<(Vec<IncidentSummary>, i64)>;
    /// One incident with notes and audit trail.
    async fn get_incident(&self, id: i64) -> StoreResult<Option<IncidentRecord>>;
    /// Changes an incident's status, with an audit entry and an outbox row per channel
    /// (kind: the new status), so that every status change is announced. `None` when
    /// there is no such incident.
    async fn set_status(
        &self,
        id: i64,
        status: IncidentStatus,
        actor: &str,
        channels: &[String],
        now_ms: i64,
    ) -> StoreResult<Option<IncidentSummary>>;
    /// Adds a note, with an audit entry.
    async fn add_note(
        &self,
        id: i64,
        author: &str,
        text: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Note>>;
    /// The cached explanation.
    async fn get_explanation(&self, id: i64) -> StoreResult<Option<StoredExplanation>>;
    /// Replaces the cached explanation, with an audit entry naming `actor`.
    async fn put_explanation(
        &self,
        id: i64,
        explanation: &StoredExplanation,
        actor: &str,
    ) -> StoreResult<()>;

    /// A stable id of this installation (of its database, so replicas sharing one agree):
    /// it keeps alert keys such as PagerDuty's `dedup_key` from colliding with another
    /// installation's incident of the same number.
    async fn installation_id(&self) -> StoreResult<String>;

    /// Outbox rows due for delivery: per incident and channel only the oldest pending row,
    /// so that alerts of one incident arrive in the order its changes happened.
    async fn due_alerts(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OutboxItem>>;
    /// Earliest next attempt among pending rows.
    async fn next_alert_due_ms(&self) -> StoreResult<Option<i64>>;
    /// Marks a row delivered (only if still pending; returns whether it was).
    async fn mark_alert_delivered(&self, id: i64, now_ms: i64) -> StoreResult<bool>;
    /// Records a failed attempt: retry at `next_ms`, or give up when `next_ms` is `None`.
    async fn mark_alert_failed(
        &self,
        id: i64,
        error: &str,
        next_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// Counts by status.
    async fn alert_counts(&self) -> StoreResult<OutboxCounts>;

    /// Inserts or updates log templates (keyed by service, environment and signature):
    /// the template text is replaced, the first sighting kept at the earliest.
    async fn upsert_templates(&self, rows: &[StoredTemplate], now_ms: i64) -> StoreResult<()>;
    /// Every stored log template.
    async fn templates(&self) -> StoreResult<Vec<StoredTemplate>>;
}
