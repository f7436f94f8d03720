//! Prometheus pull: for each configured service, PromQL queries for error rate, latency and
//! throughput are evaluated with `query_range` and the points become ordinary samples,
//! stored and fed to the engine exactly like `POST /api/v1/metrics` (docs/prometheus.md).
//!
//! The engine goes by event time and drops samples older than its watermark, so a
//! baseline pulled only once a deploy is announced would arrive too late to count. The
//! puller therefore starts with a `query_range` over the baseline window and then keeps
//! polling the newest points, so that every deploy finds its baseline already in place
//! and its watch window is fed as it happens.
//!
//! A failing, slow or empty query is logged with the service and the query and retried
//! at the next poll, from where its own last good pull ended (each query keeps its own
//! position, so one failing query neither loses its gap nor makes the others pull twice);
//! points that never come show up in the verdict as gaps, never as a pass. At start each
//! query resumes after the latest point the store holds for it, so a restart does not
//! store the same points twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use watchdog_core::{Sample, Timestamp};

use crate::state::AppState;
use crate::store::LeaseRole;

/// `[prometheus]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// Seconds between polls (default 15).
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// Resolution of `query_range`, in seconds (default 15).
    #[serde(default = "default_poll")]
    pub step_secs: u64,
    /// Per-request timeout in seconds (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Services to pull.
    #[serde(default)]
    pub services: Vec<ServiceQueries>,
}

fn default_poll() -> u64 {
    15
}
fn default_timeout() -> u64 {
    10
}

/// One service's queries.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceQueries {
    /// Service label of the samples (and of its deploys).
    pub service: String,
    /// Environment label (default `production`).
    #[serde(default = "default_env")]
    pub environment: String,
    /// A ready set of queries: `http` (`http_requests_total` and
    /// `http_request_duration_seconds_bucket`); none by default.
    #[serde(default)]
    pub template: Option<String>,
    /// Label matchers put into every template query, e.g. `job="checkout"`.
    #[serde(default)]
    pub selector: String,
    /// Range of `rate()` in template queries (default `1m`).
    #[serde(default = "default_window")]
    pub rate_window: String,
    /// Counter of the `http` template (default `http_requests_total`).
    #[serde(default = "default_counter")]
    pub requests_metric: String,
    /// Histogram of the `http` template, without `_bucket` (default
    /// `http_request_duration_seconds`).
    #[serde(default = "default_histogram")]
    pub duration_metric: String,
    /// Status label of the counter (default `code`); values 5xx count as errors.
    #[serde(default = "default_status_label")]
    pub status_label: String,
    /// Metric name to PromQL, added to (or replacing) the template's queries.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}

fn default_env() -> String {
    "production".into()
}
fn default_window() -> String {
    "1m".into()
}
fn default_counter() -> String {
    "http_requests_total".into()
}
fn default_histogram() -> String {
    "http_request_duration_seconds".into()
}
fn default_status_label() -> String {
    "code".into()
}

impl ServiceQueries {
    /// The metric name to PromQL map: the template's queries, then the explicit ones.
    ///
    /// # Errors
    /// An unknown template, or no query at all.
    pub fn resolved(&self) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        match self.template.as_deref() {
            None => {}
            Some("http") => {
                let sel = self.selector.trim();
                let comma = if sel.is_empty() { "" } else { "," };
                let (c, h, w, code) = (
                    &self.requests_metric,
                    &self.duration_metric,
                    &self.rate_window,
                    &self.status_label,
                );
                out.insert(
                    "error_rate".into(),
                    format!(
                        "(sum(rate({c}{{{sel}{comma}{code}=~\"5..\"}}[{w}])) or vector(0)) / sum(rate({c}{{{sel}}}[{w}]))"
                    ),
                );
                out.insert(
                    "p95_latency_ms".into(),
                    format!(
                        "1000 * histogram_quantile(0.95, sum by (le) (rate({h}_bucket{{{sel}}}[{w}])))"
                    ),
                );
                out.insert(
                    "request_rate".into(),
                    format!("sum(rate({c}{{{sel}}}[{w}]))"),
                );
            }
            Some(other) => {
                return Err(format!(
                    "prometheus service {:?}: unknown template {other:?}; known: http",
                    self.service
                ))
            }
        }
        out.extend(self.queries.clone());
        if out.is_empty() {
            return Err(format!(
                "prometheus service {:?} has no queries: set template = \"http\" or [queries]",
                self.service
            ));
        }
        Ok(out)
    }
}

/// What went wrong with one query.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Network failure, timeout or a non-JSON answer.
    #[error("request failed: {0}")]
    Http(String),
    /// Prometheus answered with an error.
    #[error("prometheus error ({kind}): {message}")]
    Api {
        /// `errorType`.
        kind: String,
        /// `error`.
        message: String,
    },
    /// The query gave several series; it must be aggregated to one.
    #[error("the query returned {0} series; aggregate it to one, e.g. with sum(...)")]
    ManySeries(usize),
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<MatrixData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct MatrixData {
    #[serde(default)]
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A client of one Prometheus server.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client with a per-request timeout.
    pub fn new(base: &str, timeout: Duration) -> Client {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// `GET /api/v1/query_range`: the points of a one-series query, as (ms, value), finite
    /// values only. An empty result is an empty vector.
    ///
    /// # Errors
    /// See [`PullError`].
    pub async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_secs: u64,
    ) -> Result<Vec<(i64, f64)>, PullError> {
        let resp = self
            .http
            .get(format!("{}/api/v1/query_range", self.base))
            .query(&[
                ("query", query.to_string()),
                ("start", format!("{:.3}", start_ms as f64 / 1000.0)),
                ("end", format!("{:.3}", end_ms as f64 / 1000.0)),
                ("step", format!("{step_secs}s")),
            ])
            .send()
            .await
            .map_err(|e| PullError::Http(e.to_string()))?;
        let status = resp.status();
        let body: ApiResponse = resp
            .json()
            .await
            .map_err(|e| PullError::Http(format!("HTTP {status}, unreadable answer: {e}")))?;
        if body.status != "success" {
            return Err(PullError::Api {
                kind: body.error_type.unwrap_or_else(|| "unknown".into()),
                message: body.error.unwrap_or_else(|| format!("HTTP {status}")),
            });
        }
        let result = body.data.map(|d| d.result).unwrap_or_default();
        if result.len() > 1 {
            return Err(PullError::ManySeries(result.len()));
        }
        Ok(result
            .into_iter()
            .flat_map(|s| s.values)
            .filter_map(|(t, v)| {
                let v: f64 = v.parse().ok()?;
                v.is_finite().then_some(((t * 1000.0).round() as i64, v))
            })
            .collect())
    }
}

/// Pulls one service's queries, each from its own start in `starts` (a metric missing
/// there starts at `end_ms`, i.e. is not pulled) to `end_ms`, and joins them into samples
/// by timestamp. Returns the samples and, per query, `Ok(())` or the problem (an error or
/// an empty answer), so that each query's position moves on its own.
pub async fn pull(
    client: &Client,
    svc: &ServiceQueries,
    queries: &BTreeMap<String, String>,
    starts: &BTreeMap<String, i64>,
    end_ms: i64,
    step_secs: u64,
) -> (Vec<Sample>, BTreeMap<String, Result<(), String>>) {
    let mut points: BTreeMap<i64, Vec<(String, f64)>> = BTreeMap::new();
    let mut outcome = BTreeMap::new();
    for (metric, q) in queries {
        let start_ms = starts.get(metric).copied().unwrap_or(end_ms + 1);
        if start_ms > end_ms {
            continue;
        }
        let result = match client.query_range(q, start_ms, end_ms, step_secs).await {
            Ok(values) if values.is_empty() => Err(format!(
                "{metric}: no data from Prometheus between {} and {} for {q}",
                Timestamp(start_ms),
                Timestamp(end_ms)
            )),
            Ok(values) => {
                for (t, v) in values {
                    points.entry(t).or_default().push((metric.clone(), v));
                }
                Ok(())
            }
            Err(e) => Err(format!("{metric}: {e} (query {q})")),
        };
        outcome.insert(metric.clone(), result);
    }
    let samples = points
        .into_iter()
        .map(|(t, metrics)| Sample {
            version: None,
            timestamp: Timestamp(t),
            service: svc.service.clone(),
            environment: svc.environment.clone(),
            metrics,
        })
        .collect();
    (samples, outcome)
}

/// Where each query's next pull starts, resumed from what the store already holds of the
/// service (a restart does not pull and store the same points again): the point after
/// each metric's latest stored sample, or `oldest` for a metric with none.
pub fn resume_positions(
    stored: &[Sample],
    queries: &BTreeMap<String, String>,
    oldest: i64,
    step_ms: i64,
) -> BTreeMap<String, i64> {
    queries
        .keys()
        .map(|metric| {
            let latest = stored
                .iter()
                .filter(|s| s.metrics.iter().any(|(m, _)| m == metric))
                .map(|s| s.timestamp.millis())
                .max();
            let next = latest.map_or(oldest, |t| (t + step_ms).max(oldest));
            (metric.clone(), next)
        })
        .collect()
}

/// Stores samples and feeds them to the engine: the path of `POST /api/v1/metrics`.
///
/// # Errors
/// A store failure, or the engine gone.
pub async fn ingest(state: &AppState, samples: Vec<Sample>) -> anyhow::Result<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let items = crate::ingest::accept::sample_items(samples);
    let done = crate::ingest::accept::samples(state, items)
        .await
        .map_err(|e| anyhow::anyhow!("storing pulled samples: {e}"))?;
    for r in &done.rejected {
        tracing::warn!(error = %r.error, "pulled sample refused");
    }
    Ok(())
}

/// Checks every service's queries (at start, so that a typo fails fast).
///
/// # Errors
/// The first service whose queries cannot be resolved.
pub fn validate(config: &PrometheusConfig) -> Result<(), String> {
    if config.step_secs == 0 || config.poll_secs == 0 {
        return Err("prometheus poll_secs and step_secs must be at least 1".into());
    }
    for s in &config.services {
        s.resolved()?;
    }
    Ok(())
}

/// The pulling state: each service's queries and where its next pull starts.
#[derive(Debug)]
pub struct Puller {
    config: PrometheusConfig,
    client: Client,
    services: Vec<(ServiceQueries, BTreeMap<String, String>)>,
    /// Per service, per metric: where the next pull starts (empty until the first poll,
    /// which resumes from the store).
    next_ms: Vec<BTreeMap<String, i64>>,
    backfill_ms: i64,
    /// Held while this process is the one that pulls.
    lease: Option<crate::store::Lease>,
}

impl Puller {
    /// Checks the queries; the first pull will reach back over the baseline window.
    ///
    /// # Errors
    /// Invalid settings or queries (see [`validate`]).
    pub fn new(
        config: PrometheusConfig,
        detector: &watchdog_core::Config,
    ) -> Result<Puller, String> {
        validate(&config)?;
        let services = config
            .services
            .iter()
            .map(|s| s.resolved().map(|q| (s.clone(), q)))
            .collect::<Result<Vec<_>, _>>()?;
        let backfill_ms =
            (detector.baseline_window_secs + detector.allowed_lateness_secs) as i64 * 1000;
        Ok(Puller {
            client: Client::new(&config.url, Duration::from_secs(config.timeout_secs)),
            next_ms: vec![BTreeMap::new(); services.len()],
            lease: None,
            services,
            backfill_ms,
            config,
        })
    }

    /// Pulls every service's queries, each from where it stopped (at first: after what
    /// the store holds, at most the baseline window back) to now.
    pub async fn poll_once(&mut self, state: &AppState) {
        let step_ms = self.config.step_secs as i64 * 1000;
        let now = AppState::now_ms();
        // Aligned to the step, so that every poll evaluates the same grid of instants;
        // never further back than the baseline window (a long outage is a gap).
        let end = now.div_euclid(step_ms) * step_ms;
        let oldest = (now - self.backfill_ms).div_euclid(step_ms) * step_ms;
        for (i, (svc, queries)) in self.services.iter().enumerate() {
            if self.next_ms[i].is_empty() {
                let stored = state
                    .store
                    .series(&svc.service, &svc.environment, oldest, end, 1_000_000)
                    .await;
                match stored {
                    Ok(rows) => {
                        let samples: Vec<Sample> = rows
                            .iter()
                            .filter_map(|r| Sample::from_json_line(&r.body).ok())
                            .collect();
                        self.next_ms[i] = resume_positions(&samples, queries, oldest, step_ms);
                    }
                    Err(e) => {
                        tracing::error!(service = %svc.service, error = %e, "reading stored samples to resume the pull failed; retrying");
                        continue;
                    }
                }
            }
            let starts: BTreeMap<String, i64> = self.next_ms[i]
                .iter()
                .map(|(m, &t)| (m.clone(), t.max(oldest)))
                .collect();
            let (samples, outcome) = pull(
                &self.client,
                svc,
                queries,
                &starts,
                end,
                self.config.step_secs,
            )
            .await;
            for p in outcome.values().filter_map(|r| r.as_ref().err()) {
                tracing::warn!(service = %svc.service, environment = %svc.environment, problem = %p, "prometheus pull");
            }
            match ingest(state, samples).await {
                // Each query moves on only when it answered: a failed one is asked again
                // for its whole range next time, the others are not pulled twice.
                Ok(()) => {
                    for (metric, result) in &outcome {
                        if result.is_ok() {
                            self.next_ms[i].insert(metric.clone(), end + step_ms);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(service = %svc.service, error = %e, "storing pulled samples failed; retrying");
                }
            }
        }
    }

    /// Polls once if this process holds (or can take) the puller's lease: of servers
    /// sharing a store only one pulls, so points are not stored once per replica. A new
    /// holder resumes after what the store holds. Returns whether it polled.
    pub async fn poll_if_leader(&mut self, state: &AppState) -> bool {
        if let Some(lease) = self.lease.as_mut() {
            if !lease.alive().await {
                tracing::warn!("lost the Prometheus puller lease; another replica may take over");
                self.lease = None;
            }
        }
        if self.lease.is_none() {
            match state.store.try_lead(LeaseRole::PrometheusPuller).await {
                Ok(Some(lease)) => {
                    tracing::info!("this server pulls Prometheus");
                    self.lease = Some(lease);
                    // Positions are resumed from the store: another replica may have
                    // pulled since.
                    for next in &mut self.next_ms {
                        next.clear();
                    }
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::error!(error = %e, "taking the Prometheus puller lease failed");
                    return false;
                }
            }
        }
        self.poll_once(state).await;
        true
    }

    /// Polls every `poll_secs` until `shutdown` (when this process holds the lease).
    pub async fn run(mut self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.config.poll_secs)) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            self.poll_if_leader(&state).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(toml_text: &str) -> ServiceQueries {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn http_template_puts_the_selector_in_every_query() {
        let q = svc("service = \"checkout\"\ntemplate = \"http\"\nselector = 'job=\"api\"'\nrate_window = \"30s\"")
            .resolved()
            .unwrap();
        assert_eq!(
            q["error_rate"],
            "(sum(rate(http_requests_total{job=\"api\",code=~\"5..\"}[30s])) or vector(0)) / sum(rate(http_requests_total{job=\"api\"}[30s]))"
        );
        assert!(
            q["p95_latency_ms"].contains("http_request_duration_seconds_bucket{job=\"api\"}[30s]")
        );
        assert_eq!(
            q["request_rate"],
            "sum(rate(http_requests_total{job=\"api\"}[30s]))"
        );
    }

    #[test]
    fn positions_resume_after_what_is_stored_per_metric() {
        let queries: BTreeMap<String, String> = [("error_rate", "q1"), ("p95_latency_ms", "q2")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let s = |t: i64, metrics: &[&str]| Sample {
            version: None,
            timestamp: Timestamp(t),
            service: "checkout".into(),
            environment: String::new(),
            metrics: metrics.iter().map(|m| (m.to_string(), 1.0)).collect(),
        };
        // error_rate was stored up to 40 s; p95 failed after 20 s.
        let stored = vec![
            s(10_000, &["error_rate", "p95_latency_ms"]),
            s(20_000, &["error_rate", "p95_latency_ms"]),
            s(30_000, &["error_rate"]),
            s(40_000, &["error_rate"]),
        ];
        let next = resume_positions(&stored, &queries, 0, 10_000);
        assert_eq!(next["error_rate"], 50_000);
        assert_eq!(next["p95_latency_ms"], 30_000);
        // Nothing stored: the whole backfill window.
        let next = resume_positions(&[], &queries, 5_000, 10_000);
        assert_eq!(next["error_rate"], 5_000);
    }

    #[test]
    fn explicit_queries_override_and_unknown_templates_fail() {
        let q = svc("service = \"s\"\ntemplate = \"http\"\n[queries]\nerror_rate = \"my_errors\"")
            .resolved()
            .unwrap();
        assert_eq!(q["error_rate"], "my_errors");
        assert_eq!(q.len(), 3);
        let err = svc("service = \"s\"\ntemplate = \"grpc\"")
            .resolved()
            .unwrap_err();
        assert!(err.contains("unknown template \"grpc\""), "{err}");
        let err = svc("service = \"s\"").resolved().unwrap_err();
        assert!(err.contains("no queries"), "{err}");
    }
}
