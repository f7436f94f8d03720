//! The engine: keeps every series' recent history, starts a watch for each deploy when
//! event time passes it, feeds watches, and hands out verdicts.
//!
//! Correlation rules:
//! - **Event time.** Everything is ordered by the timestamps in the data, never by arrival.
//!   The watermark is the latest event time seen minus `allowed_lateness_secs`; a deploy
//!   is acted on once the watermark passes it. Samples out of order within the lateness
//!   are inserted in place, and a watch they land in is recomputed.
//! - **Late samples** (older than the watermark) are counted, and still put in place in
//!   the history as long as it reaches back that far: a deploy that arrives late, or a
//!   watch still running, is judged with them, the same as after a restart that re-feeds
//!   the store in event-time order. Only verdicts already given are not revised; a watch
//!   that took late samples says so in a warning.
//! - **Per-series watermarks** ([`Engine::set_series_watermarks`], for a server whose
//!   clock is the data): a watch ends when its own series' event time, minus the
//!   lateness, passes its end, and a sample is late only against its own series, so that
//!   one client sending far ahead of another cannot end the other's watches before its
//!   data arrives. Verdicts then do not depend on how the series interleave on arrival.
//!   A series that lags everybody else by more than the bound set there has its watch
//!   ended by the common event time all the same, so a series that went silent is judged.
//! - **Bounded event time.** A live server sets a ceiling ([`Engine::set_event_time_ceiling`],
//!   the wall clock): a sample stamped ahead of it (a client with a wrong clock) is kept
//!   but does not move event time, so it cannot make every other series late.
//! - **Series.** Each (service, environment) is its own series; overlapping deploys of
//!   different services never share evidence. Samples without a service or environment
//!   label match any deploy (the single-service format); a deploy resolves to the most
//!   specific series that exists.
//! - **One watch per series.** A new deploy of the same series closes the previous watch
//!   at its own timestamp: what happens after it is the new release's doing.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Direction, SignaturePolicy};
use crate::error::Error;
use crate::samples::{Deploy, LogEvent, Sample};
use crate::signatures::{LogHistory, TemplateMiner, TemplateRecord};
use crate::signatures_link;
use crate::time::Timestamp;
use crate::verdict::{DeployVerdict, VerdictKind, WatchEnd};
use crate::watch::{lower_bound, Added, History, Watch, WatchSetup};

/// A hash map with the core's deterministic hash: the engine's keys are short names looked
/// up on every sample, where SipHash's protection against adversarial keys costs more than
/// it buys.
type FastMap<K, V> = HashMap<K, V, crate::hash::FnvBuild>;

/// Late samples that fell in the baseline or window of a deploy already judged (see
/// [`Engine::take_late_after_verdict`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LateAfterVerdict {
    /// The judged deploy.
    pub deploy: Deploy,
    /// How many samples.
    pub samples: u64,
}

/// A series (service and environment) resolved by [`Engine::series_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey(usize);

/// A metric name resolved by [`Engine::metric_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetricKey(usize);

/// Counters of what the engine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Metric samples accepted.
    pub samples: u64,
    /// Samples older than the watermark (still used where the history reaches back to
    /// them; see the module docs).
    pub late_samples: u64,
    /// Late samples older than any history kept, dropped.
    #[serde(default)]
    pub dropped_samples: u64,
    /// Idle series forgotten by [`Engine::evict_idle_series`].
    #[serde(default)]
    pub evicted_series: u64,
    /// Late samples that fell in the baseline or window of a deploy already judged: too
    /// late to count for that verdict (kept for later deploys' baselines).
    #[serde(default)]
    pub late_after_verdict: u64,
    /// Deploy events accepted.
    pub deploys: u64,
    /// Log events accepted.
    pub logs: u64,
    /// Verdicts produced.
    pub verdicts: u64,
    /// Watches running now.
    pub active_watches: u64,
    /// Series held now.
    #[serde(default)]
    pub series: u64,
    /// Metric points held now over every series (each at most `2 × max_history` per
    /// metric): what the engine's memory grows with, apart from log templates.
    #[serde(default)]
    pub points: u64,
}

/// A deploy being watched now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchStatus {
    /// The deploy.
    pub deploy_id: String,
    /// Its service.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// When it was deployed.
    pub deployed_at: Timestamp,
    /// When the monitoring window ends.
    pub window_ends_at: Timestamp,
}

/// One point of a metric around a deploy, for charts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Event time.
    pub t: Timestamp,
    /// The metric's value.
    pub value: f64,
    /// The baseline's expected value at this time.
    pub expected: f64,
    /// The detector statistic after this sample, when the test was running.
    pub statistic: Option<f64>,
}

/// A metric of a watched deploy with the detector's view of it, for charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricTrace {
    /// The deploy.
    pub deploy_id: String,
    /// Its service.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// The metric (`error_rate` for the count test, whose values are per-sample rates).
    pub metric: String,
    /// Direction tested.
    pub direction: Direction,
    /// When it was deployed.
    pub deployed_at: Timestamp,
    /// Baseline level at the deploy.
    pub baseline_level: f64,
    /// Baseline standard deviation.
    pub baseline_spread: f64,
    /// Detector threshold.
    pub threshold: f64,
    /// Detection time, when the test fired.
    pub detected_at: Option<Timestamp>,
    /// Estimated change start, when the test fired.
    pub change_started_at: Option<Timestamp>,
    /// The points, baseline and watch.
    pub points: Vec<TracePoint>,
}

#[derive(Debug, Default)]
struct SeriesState {
    service: String,
    environment: String,
    /// Per metric id; grown on demand.
    histories: Vec<History>,
    watch: Option<Watch>,
    logs: Option<LogHistory>,
    /// Late samples that landed in the running watch's baseline or window.
    late_in_watch: u64,
    /// Latest event time of a sample or log event of this series.
    last_seen_ms: i64,
    /// The stretch (baseline start to end) of the last watch closed on this series.
    judged: Option<(i64, i64)>,
    /// That watch's deploy.
    judged_deploy: Option<Deploy>,
    /// Last raw reading of each counter metric (see [`is_counter`]), per metric id.
    counter_last: Vec<Option<(i64, f64)>>,
    /// This series' own template miner: one chatty service cannot evict another's
    /// templates, so a template keeps its id (and "new" keeps meaning never seen for
    /// this service) whatever other services log. Ids still agree across services, as
    /// an id is the hash of the template's first masked line.
    miner: TemplateMiner,
    /// Samples that carried a version, per version group (see [`crate::canary`]).
    canary: crate::canary::Track,
}

#[derive(Clone, Debug)]
struct PendingDeploy {
    deploy: Deploy,
}

/// The detection engine for any number of services and environments.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    metric_names: Vec<String>,
    /// Per metric id: whether it is a counter ([`is_counter`]), tested as a rate.
    counters: Vec<bool>,
    metric_ids: FastMap<String, usize>,
    requests_id: Option<usize>,
    /// Per metric id: whether samples pooled into one bin are summed (the `errors` and
    /// `requests` counts) rather than averaged (see [`History`]).
    summed: Vec<bool>,
    /// What one sample feeds the running watch: (metric, time, value, requests).
    feed_scratch: Vec<(usize, i64, f64, Option<f64>)>,
    /// `config.sample_bin_ms()`, once (the config does not change).
    bin_ms: i64,
    scratch: Vec<(MetricKey, f64)>,
    /// The metric id last seen at each position of a sample's metric list. Exporters send
    /// the same metrics in the same order sample after sample, so one string comparison
    /// usually resolves a name without hashing it.
    metric_order: Vec<usize>,
    series: Vec<SeriesState>,
    /// Service → environment → series index.
    series_ids: FastMap<String, FastMap<String, usize>>,
    pending: Vec<PendingDeploy>,
    /// Whether new series' miners record their template changes.
    track_templates: bool,
    max_ts: Option<i64>,
    /// Samples move event time at most this far (the wall clock of a live server).
    ceiling_ms: Option<i64>,
    /// Per-series watermarks, with the most a series may lag the common event time
    /// (see [`Engine::set_series_watermarks`]).
    series_lag_ms: Option<i64>,
    /// Late samples that fell in the stretch of a verdict already given, per verdict,
    /// until [`Engine::take_late_after_verdict`].
    late_after: Vec<LateAfterVerdict>,
    verdicts: Vec<DeployVerdict>,
    traces: Vec<MetricTrace>,
    tracing: bool,
    stats: EngineStats,
    /// Earliest pending deploy (started once event time reaches it) and earliest window
    /// end (acted on once the watermark passes it): lets the per-sample path skip scans.
    next_deploy_ms: i64,
    next_end_ms: i64,
}

impl Engine {
    /// A new engine.
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is out of range.
    pub fn new(config: Config) -> Result<Engine, Error> {
        config.validate()?;
        let bin_ms = config.sample_bin_ms();
        Ok(Engine {
            config,
            metric_names: Vec::new(),
            counters: Vec::new(),
            metric_ids: FastMap::default(),
            requests_id: None,
            summed: Vec::new(),
            feed_scratch: Vec::new(),
            bin_ms,
            scratch: Vec::new(),
            metric_order: Vec::new(),
            series: Vec::new(),
            series_ids: FastMap::default(),
            pending: Vec::new(),
            track_templates: false,
            max_ts: None,
            ceiling_ms: None,
            series_lag_ms: None,
            late_after: Vec::new(),
            verdicts: Vec::new(),
            traces: Vec::new(),
            tracing: false,
            stats: EngineStats::default(),
            next_deploy_ms: i64::MAX,
            next_end_ms: i64::MAX,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Keep per-metric traces of every watch for charts (costs memory; off by default).
    pub fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            active_watches: self.series.iter().filter(|s| s.watch.is_some()).count() as u64,
            series: self.series.len() as u64,
            points: self
                .series
                .iter()
                .flat_map(|s| s.histories.iter())
                .map(|h| h.len() as u64)
                .sum(),
            ..self.stats
        }
    }

    /// Bounds how far samples move event time: a sample stamped after `ceiling` is kept,
    /// but event time stops at `ceiling`. A live server passes its wall clock (and moves
    /// it with [`Engine::advance_to`]), so one client with a clock an hour ahead cannot
    /// push the watermark past everybody else's data. `None` (the default, for replays of
    /// recorded data) leaves event time to the data alone.
    pub fn set_event_time_ceiling(&mut self, ceiling: Option<Timestamp>) {
        self.ceiling_ms = ceiling.map(Timestamp::millis);
    }

    /// Turns per-series watermarks on (`Some(max_lag_secs)`) or off (`None`, the default):
    /// see the module docs. With them, a watch ends when its series' own latest event time
    /// minus `allowed_lateness_secs` passes its end, or when the common watermark passes
    /// it by `max_lag_secs` (a series silent or that far behind); a sample is late when it
    /// is older than its own series' watermark. For a server whose clock is the data,
    /// where clients send at their own pace; a replay of sorted files needs none.
    pub fn set_series_watermarks(&mut self, max_lag_secs: Option<u64>) {
        self.series_lag_ms = max_lag_secs.map(|s| s.min(i64::MAX as u64 / 1000) as i64 * 1000);
    }

    /// Late samples that fell in the baseline or window of a verdict already given, per
    /// verdict, since the last call: what a store appends to the stored verdict as a
    /// warning. Counted in [`EngineStats::late_after_verdict`] too.
    pub fn take_late_after_verdict(&mut self) -> Vec<LateAfterVerdict> {
        std::mem::take(&mut self.late_after)
    }

    /// The watermark a watch of series `sid` ends by, and its samples are late against.
    fn series_watermark_ms(&self, sid: usize) -> i64 {
        match self.series_lag_ms {
            None => self.watermark_ms(),
            Some(_) => self.series[sid]
                .last_seen_ms
                .saturating_sub(self.config.allowed_lateness_secs as i64 * 1000),
        }
    }

    /// Whether a watch of series `sid` due at `due_ms` is due under the common watermark
    /// `wm`.
    fn end_is_due(&self, sid: usize, due_ms: i64, wm: i64) -> bool {
        match self.series_lag_ms {
            None => due_ms <= wm,
            Some(lag) => {
                due_ms <= self.series_watermark_ms(sid) || due_ms.saturating_add(lag) <= wm
            }
        }
    }

    /// Samples that arrived older than the watermark so far (a cheap read of
    /// [`EngineStats::late_samples`]).
    pub fn late_samples(&self) -> u64 {
        self.stats.late_samples
    }

    /// The latest event time seen (bounded by the ceiling, see
    /// [`Engine::set_event_time_ceiling`]).
    pub fn event_time(&self) -> Option<Timestamp> {
        self.max_ts.map(Timestamp)
    }

    /// The current watermark: latest event time minus the allowed lateness.
    pub fn watermark(&self) -> Option<Timestamp> {
        self.max_ts
            .map(|t| Timestamp(t - self.config.allowed_lateness_secs as i64 * 1000))
    }

    fn watermark_ms(&self) -> i64 {
        self.max_ts
            .map(|t| t - self.config.allowed_lateness_secs as i64 * 1000)
            .unwrap_or(i64::MIN)
    }

    fn metric_id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.metric_ids.get(name) {
            return id;
        }
        let id = self.metric_names.len();
        self.metric_names.push(name.to_string());
        self.counters.push(is_counter(name));
        self.summed.push(name == "errors" || name == "requests");
        self.metric_ids.insert(name.to_string(), id);
        if name == "requests" {
            self.requests_id = Some(id);
        }
        id
    }

    fn find_series(&self, service: &str, environment: &str) -> Option<usize> {
        self.series_ids.get(service)?.get(environment).copied()
    }

    fn series_id(&mut self, service: &str, environment: &str) -> usize {
        if let Some(id) = self.find_series(service, environment) {
            return id;
        }
        let id = self.series.len();
        self.series.push(SeriesState {
            service: service.to_string(),
            environment: environment.to_string(),
            last_seen_ms: i64::MIN,
            ..SeriesState::default()
        });
        if self.track_templates {
            self.series[id].miner.track_changes();
        }
        self.series_ids
            .entry(service.to_string())
            .or_default()
            .insert(environment.to_string(), id);
        id
    }

    /// Adds a metric sample.
    ///
    /// # Errors
    /// [`Error::Record`] naming the metric when a value is NaN or infinite; nothing of the
    /// sample is kept then.
    pub fn ingest_sample(&mut self, sample: &Sample) -> Result<(), Error> {
        for (name, v) in &sample.metrics {
            if !v.is_finite() {
                return Err(Error::record(
                    name.as_str(),
                    format!("not a finite number: {v}"),
                ));
            }
        }
        let series = self.series_key(&sample.service, &sample.environment);
        let mut own = None;
        if let (Some(version), true) = (sample.version.as_deref(), self.config.canary.enabled) {
            match self.ingest_versioned(series.0, sample, version)? {
                Some(for_tests) => own = Some(for_tests),
                None => return Ok(()),
            }
        }
        let metrics = own.as_ref().unwrap_or(&sample.metrics);
        let mut values = std::mem::take(&mut self.scratch);
        values.clear();
        for (j, (name, v)) in metrics.iter().enumerate() {
            let id = match self.metric_order.get(j) {
                Some(&id) if self.metric_names[id] == *name => id,
                _ => {
                    let id = self.metric_id(name);
                    if j < self.metric_order.len() {
                        self.metric_order[j] = id;
                    } else if j == self.metric_order.len() && j < 256 {
                        self.metric_order.push(id);
                    }
                    id
                }
            };
            values.push((MetricKey(id), *v));
        }
        let result = self.ingest_values(series, sample.timestamp, &values);
        self.scratch = values;
        result
    }

    /// Files a versioned sample with its version group and looks at the canary
    /// comparison of the running watch; returns the metrics the before/after tests see
    /// of it, if any (see [`crate::canary`]).
    fn ingest_versioned(
        &mut self,
        sid: usize,
        sample: &Sample,
        version: &str,
    ) -> Result<Option<Vec<(String, f64)>>, Error> {
        let t = sample.timestamp.millis();
        let tolerance = self.config.deploy_tolerance_secs as i64 * 1000;
        let (service, environment) = (&self.series[sid].service, &self.series[sid].environment);
        let started = self.series[sid]
            .watch
            .as_ref()
            .map_or(i64::MIN, |w| w.deploy_ms);
        let pending = self
            .pending
            .iter()
            .rev()
            .find(|p| {
                let ts = p.deploy.timestamp.millis();
                ts <= t + tolerance
                    && ts > started
                    && p.deploy.service == *service
                    && (p.deploy.environment.is_empty() || p.deploy.environment == *environment)
            })
            .map(|p| p.deploy.deploy_id.clone());
        let values: Vec<(usize, f64)> = sample
            .metrics
            .iter()
            .map(|(name, v)| (self.metric_id(name), *v))
            .collect();
        let max_history = self.config.max_history.max(16) * 2;
        let series = &mut self.series[sid];
        let (role, deploy) = series
            .canary
            .role(&self.config, version, pending.as_deref());
        let to_tests = series
            .canary
            .record(role, &deploy, version, t, &values, max_history);
        if let Some(w) = series.watch.as_mut() {
            let from_ms = w.test_from_ms;
            if t >= from_ms && t < w.end_ms && series.canary.concurrent(from_ms) {
                if !series.canary.active {
                    // Both versions run: a before/after detection waits for the window's
                    // end (or the canary's own detection), so the control can speak.
                    series.canary.active = true;
                    w.grace_ms = w.grace_ms.max(w.end_ms - w.deploy_ms);
                }
                let ctx = crate::canary::Context {
                    cfg: &self.config,
                    metric_names: &self.metric_names,
                    from_ms,
                    until_ms: t,
                    end_ms: w.end_ms,
                    cadence_ms: w.cadence_ms,
                };
                if let Some(at) = series.canary.look(&ctx) {
                    let w = series.watch.take().expect("watch present");
                    self.close(sid, w, at.max(t), WatchEnd::Detection);
                }
            }
        }
        // The canary serves a share of the traffic: its throughput and error counts are
        // the before/after tests' as the two versions' total (the service's), so that the
        // traffic split is not a drop; rates and latencies are the canary's own. Whichever
        // of the two versions' samples of an instant comes second completes the total;
        // without a stable sample at that time (a version that replaced the old one at
        // once), the new version's own values are the service's.
        let config = &self.config;
        let summed = |name: &str| {
            name == "errors" || config.direction(name) == crate::config::Direction::Down
        };
        let series = &mut self.series[sid];
        let metrics: Vec<(String, f64)> = match (role, to_tests) {
            (crate::canary::Role::Old, true) => sample.metrics.clone(),
            (crate::canary::Role::Old, false) => values
                .iter()
                .zip(&sample.metrics)
                .filter(|(_, (name, _))| summed(name))
                .filter_map(|(&(id, v), (name, _))| {
                    series.canary.new_at(id, t).map(|n| (name.clone(), n + v))
                })
                .collect(),
            (crate::canary::Role::New, _) => values
                .iter()
                .zip(&sample.metrics)
                .map(|(&(id, v), (name, _))| match series.canary.old_at(id, t) {
                    Some(old) if summed(name) => (name.clone(), v + old),
                    _ => (name.clone(), v),
                })
                .collect(),
        };
        // A value the before/after tests already saw at this instant is replaced: the
        // watch is recomputed with it (a test that fired on the stable version's share
        // alone, at the instant the canary started, must not stay fired).
        let replaces = values.iter().any(|&(id, _)| {
            series
                .histories
                .get(id)
                .is_some_and(|h| h.back().is_some_and(|p| p.0 == t))
        });
        if let Some(w) = series.watch.as_mut() {
            if replaces && !metrics.is_empty() && t < w.end_ms && t >= w.deploy_ms {
                w.dirty = true;
            }
        }
        if metrics.is_empty() {
            self.stats.samples += 1;
            let t = self.ceiling_ms.map_or(t, |c| t.min(c));
            self.advance_event_time(t);
            return Ok(None);
        }
        Ok(Some(metrics))
    }

    /// The key of a series, for [`Engine::ingest_values`].
    pub fn series_key(&mut self, service: &str, environment: &str) -> SeriesKey {
        SeriesKey(self.series_id(service, environment))
    }

    /// The key of a metric name, for [`Engine::ingest_values`].
    pub fn metric_key(&mut self, name: &str) -> MetricKey {
        MetricKey(self.metric_id(name))
    }

    /// Adds one sample given by pre-resolved keys: the allocation-free path for callers
    /// that ingest many samples of the same series and metrics.
    ///
    /// # Errors
    /// [`Error::Record`] naming the metric when a value is NaN or infinite; nothing of the
    /// sample is kept then.
    pub fn ingest_values(
        &mut self,
        series: SeriesKey,
        timestamp: Timestamp,
        values: &[(MetricKey, f64)],
    ) -> Result<(), Error> {
        if let Some((m, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
            let name = self
                .metric_names
                .get(m.0)
                .map_or("(metric)", String::as_str);
            return Err(Error::record(name, format!("not a finite number: {v}")));
        }
        let sid = series.0;
        let t = timestamp.millis();
        let late = t < self.series_watermark_ms(sid);
        if late {
            self.stats.late_samples += 1;
        }
        let requests_value = self
            .requests_id
            .and_then(|r| values.iter().find(|(m, _)| m.0 == r).map(|(_, v)| *v));
        // History is kept for as long as a deploy not yet started, or the series' own
        // watch, may still need it as baseline (a sparse series can go quiet for hours
        // between a deploy and the sample that moves event time past it).
        let lookback = (self
            .config
            .max_baseline_window_secs
            .max(self.config.seasonal_period_secs)
            .max(self.config.baseline_window_secs)
            + self.config.baseline_window_secs
            + self.config.monitoring_window_secs
            + 2 * self.config.allowed_lateness_secs) as i64
            * 1000;
        let anchor = self
            .pending
            .first()
            .map_or(t, |p| p.deploy.timestamp.millis().min(t));
        let anchor = self.series[sid]
            .watch
            .as_ref()
            .map_or(anchor, |w| w.deploy_ms.min(anchor));
        let keep_from = anchor.saturating_sub(lookback);
        let max_history = self.config.max_history.max(16) * 2;
        // The horizon the next on-time sample will trim this series' history to.
        let newest = match self.series_lag_ms {
            None => self.max_ts.unwrap_or(t),
            Some(_) => self.series[sid].last_seen_ms,
        }
        .max(t);
        let horizon = self
            .pending
            .first()
            .map_or(newest, |p| p.deploy.timestamp.millis().min(newest));
        let horizon = self.series[sid]
            .watch
            .as_ref()
            .map_or(horizon, |w| w.deploy_ms.min(horizon))
            .saturating_sub(lookback);
        if late && t < horizon {
            // Older than any baseline still to be fitted: no history keeps it.
            self.stats.dropped_samples += 1;
            return Ok(());
        }
        self.stats.samples += 1;
        let config = &self.config;
        let metric_names = &self.metric_names;
        let counters = &self.counters;
        let series = &mut self.series[sid];
        series.last_seen_ms = series.last_seen_ms.max(t);
        let as_rates;
        let values = if values.iter().any(|(k, _)| counters.get(k.0) == Some(&true)) {
            as_rates = counter_rates(series, counters, t, values);
            as_rates.as_slice()
        } else {
            values
        };
        if late {
            let in_watch = series
                .watch
                .as_ref()
                .is_some_and(|w| t >= w.baseline_from.unwrap_or(w.deploy_ms) && t < w.end_ms);
            if in_watch {
                series.late_in_watch += 1;
            } else if series
                .judged
                .is_some_and(|(from, until)| t >= from && t <= until)
            {
                self.stats.late_after_verdict += 1;
                if let Some(d) = &series.judged_deploy {
                    match self.late_after.iter_mut().find(|l| &l.deploy == d) {
                        Some(l) => l.samples += 1,
                        None => self.late_after.push(LateAfterVerdict {
                            deploy: d.clone(),
                            samples: 1,
                        }),
                    }
                }
            }
        }
        if series.histories.len() < metric_names.len() {
            series
                .histories
                .resize_with(metric_names.len(), History::new);
        }
        // Pool the sample into its bin (see `History`) and gather what the running watch
        // is to be fed: completed dense bins, and the sample itself when its series is
        // sparse.
        let bin_ms = self.bin_ms;
        let feeds = &mut self.feed_scratch;
        feeds.clear();
        let mut rewritten = false;
        // Only a running watch is fed; without one the bins are kept and nothing else.
        let watching = series.watch.is_some();
        for &(MetricKey(id), v) in values {
            let additive = self.summed.get(id) == Some(&true);
            let h = &mut series.histories[id];
            h.make_room(max_history);
            let added = h.add(t, v, bin_ms, additive);
            // Bounded memory: by count, and by age relative to the newest sample.
            while h.len() > max_history || h.front().is_some_and(|p| p.0 < keep_from) {
                h.pop_oldest();
            }
            if !watching {
                continue;
            }
            match added {
                Added::Fresh { closed } | Added::Opened { closed } => {
                    if let Some((ct, cv)) = closed {
                        feeds.push((id, ct, cv, None));
                    }
                    if matches!(added, Added::Fresh { .. }) {
                        feeds.push((id, t, v, requests_value));
                    }
                }
                Added::Replaced => feeds.push((id, t, v, requests_value)),
                Added::Pooled | Added::Repeated => {}
                Added::Rewritten => rewritten = true,
            }
        }
        // A completed bin of `errors` is weighed against the `requests` of the same bin.
        if let Some(r) = self.requests_id {
            for f in feeds.iter_mut().filter(|f| f.3.is_none()) {
                f.3 = series.histories.get(r).and_then(|h| h.value_at(f.1));
            }
        }
        if let Some(w) = series.watch.as_mut() {
            if t < w.end_ms {
                if rewritten {
                    w.dirty = true;
                } else {
                    for &(id, ft, v, requests) in feeds.iter() {
                        w.on_value(id, ft, v, requests, &series.histories, config);
                    }
                }
                if w.dirty && t < w.deploy_ms {
                    // A late baseline sample: fit the baseline again, as if it had come
                    // on time.
                    let (end_ms, end_reason) = (w.end_ms, w.end_reason);
                    let setup = WatchSetup {
                        config,
                        metric_names,
                        histories: &series.histories,
                        tracing: self.tracing,
                    };
                    *w = Watch::start(w.deploy.clone(), &setup);
                    if end_reason == WatchEnd::NextDeploy {
                        w.end_ms = end_ms;
                        w.end_reason = end_reason;
                        w.replay(&series.histories, config);
                    }
                } else if w.dirty {
                    w.replay(&series.histories, config);
                }
                // A detection is final at once when the data up to it has no holes; when
                // it has, a late sample may still fill one and change the picture, so the
                // decision waits until the watermark passes the end of the latest hole
                // (not the detection time: a few seconds missing just after the deploy
                // must not hold the alert back by the whole allowed lateness).
                let now = self.ceiling_ms.map_or(t, |c| t.min(c));
                let newest = match self.series_lag_ms {
                    None => self.max_ts.unwrap_or(i64::MIN),
                    Some(_) => series.last_seen_ms,
                };
                let wm = newest.max(now) - self.config.allowed_lateness_secs as i64 * 1000;
                if let Some(at) = w.fired_at() {
                    if w.grace_ms == 0
                        && w.last_gap_end(&series.histories, at)
                            .is_none_or(|g| g <= wm)
                    {
                        let w = series.watch.take().expect("watch present");
                        self.close(sid, w, at, WatchEnd::Detection);
                    } else {
                        self.next_end_ms = self.next_end_ms.min(w.due_ms());
                    }
                }
            }
        }
        let t = self.ceiling_ms.map_or(t, |c| t.min(c));
        self.advance_event_time(t);
        // With per-series watermarks this series' own time may have made its watch due
        // while the common watermark says nothing new.
        if self.series_lag_ms.is_some()
            && self.series[sid]
                .watch
                .as_ref()
                .is_some_and(|w| w.due_ms() <= self.series_watermark_ms(sid))
        {
            self.process_watermark();
        }
        Ok(())
    }

    /// Adds a deploy. It is acted on once event time passes it.
    ///
    /// # Errors
    /// [`Error::Record`] when the deploy id is empty.
    pub fn ingest_deploy(&mut self, deploy: &Deploy) -> Result<(), Error> {
        if deploy.deploy_id.trim().is_empty() {
            return Err(Error::record("deploy_id", "is empty"));
        }
        self.stats.deploys += 1;
        // The running watch of the same series must not see what follows this deploy,
        // even before event time reaches the deploy and its own watch starts.
        if let Some(sid) = self.resolve(deploy) {
            let t = deploy.timestamp.millis();
            let series = &mut self.series[sid];
            if let Some(w) = series.watch.as_mut() {
                if t > w.deploy_ms && t < w.end_ms {
                    w.end_ms = t;
                    w.end_reason = WatchEnd::NextDeploy;
                    if w.last_seen_ms >= t {
                        w.replay(&series.histories, &self.config);
                    }
                }
            }
        }
        let at = self
            .pending
            .partition_point(|p| p.deploy.timestamp <= deploy.timestamp);
        self.pending.insert(
            at,
            PendingDeploy {
                deploy: deploy.clone(),
            },
        );
        self.next_deploy_ms = self.next_deploy_ms.min(deploy.timestamp.millis());
        self.process_watermark();
        Ok(())
    }

    /// Puts persisted templates of one service and environment back into its miner, so
    /// their messages keep the ids they had and are not "new" (call before feeding
    /// that series' logs).
    pub fn restore_templates(
        &mut self,
        service: &str,
        environment: &str,
        templates: &[TemplateRecord],
    ) {
        let sid = self.series_id(service, environment);
        let miner = &mut self.series[sid].miner;
        for t in templates {
            miner.restore(t);
        }
    }

    /// Starts recording template changes for [`take_template_changes`](Self::take_template_changes).
    pub fn track_template_changes(&mut self) {
        self.track_templates = true;
        for s in &mut self.series {
            s.miner.track_changes();
        }
    }

    /// Templates created or generalised since the last call, with their service and
    /// environment: what a store persists (see [`track_template_changes`](Self::track_template_changes)).
    pub fn take_template_changes(&mut self) -> Vec<(String, String, TemplateRecord)> {
        let mut out = Vec::new();
        for s in &mut self.series {
            for t in s.miner.take_changed() {
                out.push((s.service.clone(), s.environment.clone(), t));
            }
        }
        out
    }

    /// Adds a log event (kept per series for signature evidence).
    ///
    /// # Errors
    /// Never at present; reserved for validation.
    pub fn ingest_log(&mut self, event: &LogEvent) -> Result<(), Error> {
        self.stats.logs += 1;
        let sid = self.series_id(&event.service, &event.environment);
        let max = self.config.max_log_history;
        let series = &mut self.series[sid];
        series.last_seen_ms = series.last_seen_ms.max(event.timestamp.millis());
        series
            .logs
            .get_or_insert_with(|| LogHistory::new(max))
            .push(&mut series.miner, event);
        // Logs land on the series with their own labels; the watch may be on a series
        // those labels resolve to (unlabelled metrics), so look it up as a deploy would.
        let t = event.timestamp.millis();
        if !event.level.is_error() {
            return Ok(());
        }
        let probe = Deploy {
            timestamp: event.timestamp,
            deploy_id: String::new(),
            service: event.service.clone(),
            environment: event.environment.clone(),
        };
        let Some(wsid) = self.resolve(&probe) else {
            return Ok(());
        };
        let due = match self.series[wsid].watch.as_mut() {
            Some(w) if t >= w.deploy_ms && t < w.end_ms => w.count_error_log(),
            _ => false,
        };
        if due {
            self.check_logs(wsid, sid, t);
        }
        Ok(())
    }

    /// Moves event time forward to `now` (live mode: call it with the wall clock so that
    /// watches end even when no data arrives).
    pub fn advance_to(&mut self, now: Timestamp) {
        if let Some(c) = self.ceiling_ms.as_mut() {
            *c = (*c).max(now.millis());
        }
        self.advance_event_time(now.millis());
    }

    fn advance_event_time(&mut self, t: i64) {
        if self.max_ts.is_none_or(|m| t > m) {
            self.max_ts = Some(t);
        }
        let lag = self.series_lag_ms.unwrap_or(0);
        if self.max_ts.unwrap_or(i64::MIN) >= self.next_deploy_ms
            || self.watermark_ms() >= self.next_end_ms.saturating_add(lag)
        {
            self.process_watermark();
        }
    }

    /// Forgets every series that has seen no sample or log event at or after `before`,
    /// has no watch running and no pending deploy of its service, and returns how many.
    /// A long-running server calls it with `now` minus the longest history it keeps, so
    /// that series which came and went (pod names used as services, a client's burst of
    /// new names) do not hold memory for ever.
    ///
    /// Keys from [`Engine::series_key`] are invalid after a call that returns more than
    /// zero: resolve them again.
    pub fn evict_idle_series(&mut self, before: Timestamp) -> usize {
        let before = before.millis();
        let pending = &self.pending;
        let keep: Vec<bool> = self
            .series
            .iter()
            .map(|s| {
                s.watch.is_some()
                    || s.last_seen_ms >= before
                    || pending
                        .iter()
                        .any(|p| p.deploy.service == s.service || s.service.is_empty())
            })
            .collect();
        let evicted = keep.iter().filter(|k| !**k).count();
        if evicted == 0 {
            return 0;
        }
        let old = std::mem::take(&mut self.series);
        self.series_ids.clear();
        for (state, keep) in old.into_iter().zip(keep) {
            if keep {
                let id = self.series.len();
                self.series_ids
                    .entry(state.service.clone())
                    .or_default()
                    .insert(state.environment.clone(), id);
                self.series.push(state);
            }
        }
        self.stats.evicted_series += evicted as u64;
        evicted
    }

    /// Series held now.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Ends every watch now: the data is over.
    pub fn finish(&mut self) {
        let last = self.max_ts.unwrap_or(i64::MIN);
        self.run_until(last, true);
    }

    /// Drains the verdicts produced so far, in the order they were reached.
    pub fn take_verdicts(&mut self) -> Vec<DeployVerdict> {
        std::mem::take(&mut self.verdicts)
    }

    /// Drains the traces of finished watches (with [`Engine::set_tracing`]).
    pub fn take_traces(&mut self) -> Vec<MetricTrace> {
        std::mem::take(&mut self.traces)
    }

    /// Deploys being watched now.
    pub fn active_watches(&self) -> Vec<WatchStatus> {
        self.series
            .iter()
            .filter_map(|s| s.watch.as_ref())
            .map(|w| WatchStatus {
                deploy_id: w.deploy.deploy_id.clone(),
                service: w.deploy.service.clone(),
                environment: w.deploy.environment.clone(),
                deployed_at: w.deploy.timestamp,
                window_ends_at: Timestamp(w.end_ms),
            })
            .collect()
    }

    fn process_watermark(&mut self) {
        let wm = self.watermark_ms();
        self.run_until(wm, false);
    }

    /// Starts pending deploys up to the latest event time and ends watches up to the
    /// watermark `wm`, in event-time order.
    ///
    /// A deploy starts as soon as event time reaches it, not only once the watermark
    /// passes it, so that a live regression is reported without waiting out the allowed
    /// lateness; a baseline sample that arrives late after that still lands in the
    /// history and the watch is recomputed with it. Window ends wait for the watermark, so
    /// that late samples inside a window are still judged.
    fn run_until(&mut self, wm: i64, end_of_data: bool) {
        let event_time = self.max_ts.unwrap_or(i64::MIN).max(wm);
        loop {
            // The next thing due: a pending deploy, or a watch's window end.
            let next_deploy = self.pending.first().map(|p| p.deploy.timestamp.millis());
            let end_due = self
                .series
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.watch.as_ref().map(|w| (w.due_ms(), i)))
                .filter(|&(e, i)| self.end_is_due(i, e, wm))
                .min();
            // At the end of the data every deploy is started, even one after the last sample.
            let deploy_due = next_deploy.filter(|&d| d <= event_time || end_of_data);
            match (deploy_due, end_due) {
                (Some(d), Some((e, sid))) if e <= d => self.end_watch(sid, e),
                (Some(_), _) => {
                    let p = self.pending.remove(0);
                    self.start_watch(p);
                }
                (None, Some((e, sid))) => self.end_watch(sid, e),
                (None, None) => break,
            }
        }
        if end_of_data {
            for sid in 0..self.series.len() {
                if let Some(w) = self.series[sid].watch.take() {
                    let last = self.series[sid]
                        .histories
                        .iter()
                        .filter_map(|h| {
                            let hi = lower_bound(h, w.end_ms);
                            (hi > 0).then(|| h[hi - 1].0)
                        })
                        .max()
                        .unwrap_or(w.deploy_ms)
                        .max(w.deploy_ms);
                    let why = if w.fired() || w.log_fired_at.is_some() {
                        WatchEnd::Detection
                    } else {
                        WatchEnd::EndOfData
                    };
                    self.close(sid, w, last, why);
                }
            }
        }
        let next_deploy = self.pending.first().map(|p| p.deploy.timestamp.millis());
        let next_end = self
            .series
            .iter()
            .filter_map(|s| s.watch.as_ref().map(|w| w.due_ms()))
            .min();
        self.next_deploy_ms = next_deploy.unwrap_or(i64::MAX);
        self.next_end_ms = next_end.unwrap_or(i64::MAX);
    }

    /// Acts on a watch that is due at `at_ms`: a (deferred) detection, or its end.
    fn end_watch(&mut self, sid: usize, at_ms: i64) {
        let Some(mut w) = self.series[sid].watch.take() else {
            return;
        };
        if w.fired() {
            // Recompute with whatever arrived late before confirming.
            w.replay(&self.series[sid].histories, &self.config);
        }
        if let Some(at) = w.fired_at().or(w.log_fired_at) {
            // The verdict covers the grace after the detection (log evidence), never
            // past the window's end.
            let until = at_ms.min(w.end_ms.max(at));
            self.close(sid, w, until, WatchEnd::Detection);
        } else if w.end_ms <= at_ms {
            let why = w.end_reason;
            self.close(sid, w, at_ms, why);
        } else {
            self.series[sid].watch = Some(w);
        }
    }

    /// Which series a deploy is about: the exact one, else the most specific one whose
    /// missing labels act as wildcards, else the only series matching the deploy's
    /// non-empty labels.
    fn resolve(&mut self, d: &Deploy) -> Option<usize> {
        let candidates = [
            (d.service.as_str(), d.environment.as_str()),
            (d.service.as_str(), ""),
            ("", d.environment.as_str()),
            ("", ""),
        ];
        for (s, e) in candidates {
            if let Some(id) = self.find_series(s, e) {
                if self.series[id].histories.iter().any(|h| !h.is_empty()) {
                    return Some(id);
                }
            }
        }
        let matching: Vec<usize> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                (d.service.is_empty() || s.service == d.service)
                    && (d.environment.is_empty() || s.environment == d.environment)
                    && s.histories.iter().any(|h| !h.is_empty())
            })
            .map(|(i, _)| i)
            .collect();
        (matching.len() == 1).then(|| matching[0])
    }

    fn start_watch(&mut self, p: PendingDeploy) {
        let sid = match self.resolve(&p.deploy) {
            Some(sid) => sid,
            None => self.series_id(&p.deploy.service, &p.deploy.environment),
        };
        // The previous watch of this series ends where the new deploy begins.
        if let Some(prev) = self.series[sid].watch.take() {
            let at = p.deploy.timestamp.millis().min(prev.end_ms);
            let why = if at < prev.end_ms {
                WatchEnd::NextDeploy
            } else {
                prev.end_reason
            };
            let mut prev = prev;
            if at < prev.end_ms {
                prev.end_ms = at;
                let series = &self.series[sid];
                prev.replay(&series.histories, &self.config);
            }
            self.close(sid, prev, at, why);
        }
        let series = &mut self.series[sid];
        if series.histories.len() < self.metric_names.len() {
            series
                .histories
                .resize_with(self.metric_names.len(), History::new);
        }
        let setup = WatchSetup {
            config: &self.config,
            metric_names: &self.metric_names,
            histories: &series.histories,
            tracing: self.tracing,
        };
        series.late_in_watch = 0;
        series.canary.started(&p.deploy);
        let versioned = series.canary.versioned();
        let mut watch = Watch::start(p.deploy, &setup);
        if versioned {
            // The instant a canary starts, the stable version's sample may come before
            // the canary's; a detection waits a little for the other half of the instant.
            watch.grace_ms = watch.grace_ms.max(crate::canary::hold_ms(watch.cadence_ms));
        }
        if watch.fired() && watch.grace_ms == 0 {
            let until = watch.fired_at().unwrap_or(watch.last_seen_ms);
            self.close(sid, watch, until, WatchEnd::Detection);
        } else {
            self.series[sid].watch = Some(watch);
        }
    }

    /// Checks the log evidence of the watch on series `wsid` (logs of series `lsid`) and
    /// closes it as a regression when a new error signature is already significant.
    fn check_logs(&mut self, wsid: usize, lsid: usize, now_ms: i64) {
        if self.config.new_error_signature != SignaturePolicy::Regression {
            return;
        }
        let (Some(w), Some(logs)) = (&self.series[wsid].watch, &self.series[lsid].logs) else {
            return;
        };
        // A watch that already fired (or already saw its logs fire) is waiting out its
        // evidence grace; nothing more to decide.
        if w.fired() || w.log_fired_at.is_some() {
            return;
        }
        // The verdict is built over the logs up to now or the end of the grace (the
        // detection time inside it is when the count became significant).
        let miner = &self.series[lsid].miner;
        if signatures_link::new_error_at(
            logs,
            miner,
            w,
            now_ms,
            &self.config,
            w.log_alpha(&self.config),
        )
        .is_some()
        {
            let grace = w.grace_ms;
            if grace == 0 {
                let w = self.series[wsid].watch.take().expect("watch present");
                self.close(wsid, w, now_ms, WatchEnd::Detection);
            } else if let Some(w) = self.series[wsid].watch.as_mut() {
                w.log_fired_at = Some(now_ms);
                self.next_end_ms = self.next_end_ms.min(w.due_ms());
            }
        }
    }

    fn close(&mut self, sid: usize, mut watch: Watch, until_ms: i64, why: WatchEnd) {
        self.series[sid].judged = Some((watch.baseline_from.unwrap_or(watch.deploy_ms), until_ms));
        self.series[sid].judged_deploy = Some(watch.deploy.clone());
        let series = &self.series[sid];
        // A dense bin still filling when the watch ends is taken as it is: the watch has
        // seen everything it will.
        let requests = self.requests_id.and_then(|r| series.histories.get(r));
        for (m, h) in series.histories.iter().enumerate() {
            if let Some((t, v)) = h.open_point().filter(|p| p.0 <= until_ms) {
                let r = requests.and_then(|rh| rh.value_at(t));
                watch.on_value(m, t, v, r, &series.histories, &self.config);
            }
        }
        let mut verdict = watch.verdict(&series.histories, &self.config, until_ms, why);
        if series.late_in_watch > 0 {
            verdict.warnings.push(format!(
                "{} samples of this deploy's baseline or window arrived more than allowed_lateness_secs ({} s) late; they were put in place and the watch recomputed, so an earlier live view of it may have differed",
                series.late_in_watch, self.config.allowed_lateness_secs
            ));
        }
        // The logs of the deployed labels (which may differ from the metric series'
        // labels when metrics are unlabelled).
        let logs = self
            .find_series(&watch.deploy.service, &watch.deploy.environment)
            .and_then(|l| {
                let s = &self.series[l];
                s.logs.as_ref().map(|h| (h, &s.miner))
            })
            .or(series.logs.as_ref().map(|h| (h, &series.miner)));
        if let Some((logs, miner)) = logs {
            signatures_link::attach(&mut verdict, logs, miner, &watch, until_ms, &self.config);
        }
        let ctx = crate::canary::Context {
            cfg: &self.config,
            metric_names: &self.metric_names,
            from_ms: watch.test_from_ms,
            until_ms,
            end_ms: watch.end_ms,
            cadence_ms: watch.cadence_ms,
        };
        series.canary.attach(&mut verdict, &ctx);
        if self.tracing {
            self.traces
                .extend(traces_of(&watch, series, &self.metric_names, &verdict));
        }
        self.stats.verdicts += 1;
        let _ = VerdictKind::Healthy;
        self.verdicts.push(verdict);
    }
}

fn traces_of(
    watch: &Watch,
    series: &SeriesState,
    names: &[String],
    verdict: &DeployVerdict,
) -> Vec<MetricTrace> {
    let mut out: Vec<MetricTrace> = Vec::new();
    for ev in &verdict.evidence {
        let Some(test) = watch.tests.iter().find(|t| {
            t.name == ev.metric
                && (ev.direction == Direction::Both
                    || t.direction == ev.direction
                    || t.requests_metric.is_some())
        }) else {
            continue;
        };
        let stat: HashMap<i64, f64> = test.trace.iter().flatten().copied().collect();
        let from = watch.baseline_from.unwrap_or(watch.deploy_ms);
        let until = verdict.window.watched_until.millis() + 1;
        let points: Vec<TracePoint> = match test.requests_metric {
            Some(r) => crate::watch::joined(
                &series.histories[test.metric],
                &series.histories[r],
                from,
                until,
            )
            .into_iter()
            .filter(|p| p.2 > 0.0)
            .map(|(t, e, n)| TracePoint {
                t: Timestamp(t),
                value: e / n,
                expected: ev.baseline.median,
                statistic: stat.get(&t).copied(),
            })
            .collect(),
            None => {
                let h = &series.histories[test.metric];
                h.range(lower_bound(h, from)..lower_bound(h, until))
                    .map(|&(t, v)| TracePoint {
                        t: Timestamp(t),
                        value: v,
                        expected: ev.baseline.median,
                        statistic: stat.get(&t).copied(),
                    })
                    .collect()
            }
        };
        let _ = names;
        out.push(MetricTrace {
            deploy_id: verdict.deploy_id.clone(),
            service: verdict.service.clone(),
            environment: verdict.environment.clone(),
            metric: ev.metric.clone(),
            direction: ev.direction,
            deployed_at: verdict.deployed_at,
            baseline_level: ev.baseline.median,
            baseline_spread: ev.baseline.spread,
            threshold: ev.threshold,
            detected_at: ev.detected_at,
            change_started_at: ev.change_started_at,
            points,
        });
    }
    out
}

/// Whether `metric` is a monotonic counter: the OpenMetrics/Prometheus naming convention
/// gives every counter the `_total` suffix. A counter's level only ever grows (until the
/// process restarts and it begins again at zero), so it says nothing about a deploy; its
/// rate does, and that is what the engine keeps and tests for it.
pub fn is_counter(metric: &str) -> bool {
    metric.ends_with("_total")
}

/// The sample's values with every counter replaced by its rate per second since the
/// series' previous reading of it. A reading below the previous one is a reset (the
/// process restarted): the counter began again at zero, so the reading itself is the
/// increase. A counter's first reading, or one not newer than the last, has no rate and
/// is left out.
fn counter_rates(
    series: &mut SeriesState,
    counters: &[bool],
    t: i64,
    values: &[(MetricKey, f64)],
) -> Vec<(MetricKey, f64)> {
    if series.counter_last.len() < counters.len() {
        series.counter_last.resize(counters.len(), None);
    }
    let mut out = Vec::with_capacity(values.len());
    for &(key, v) in values {
        if !counters.get(key.0).copied().unwrap_or(false) {
            out.push((key, v));
            continue;
        }
        let last = series.counter_last[key.0];
        match last {
            Some((lt, lv)) if t > lt => {
                series.counter_last[key.0] = Some((t, v));
                let increase = if v >= lv { v - lv } else { v };
                out.push((key, increase / ((t - lt) as f64 / 1000.0)));
            }
            Some(_) => {}
            None => series.counter_last[key.0] = Some((t, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::InconclusiveCause;

    const T0: i64 = 1_790_000_000_000;

    fn sample(t_ms: i64, service: &str, error_rate: f64) -> Sample {
        Sample {
            version: None,
            timestamp: Timestamp(t_ms),
            service: service.into(),
            environment: "production".into(),
            metrics: vec![("error_rate".into(), error_rate)],
        }
    }

    fn deploy(t_ms: i64, id: &str, service: &str) -> Deploy {
        Deploy {
            timestamp: Timestamp(t_ms),
            deploy_id: id.into(),
            service: service.into(),
            environment: "production".into(),
        }
    }

    /// Error rate around 1 % (deterministic wiggle) until `jump_ms`, 20 % after.
    fn error_series(service: &str, from_ms: i64, to_ms: i64, jump_ms: i64) -> Vec<Sample> {
        (0..)
            .map(|i| from_ms + i * 10_000)
            .take_while(|&t| t < to_ms)
            .enumerate()
            .map(|(i, t)| {
                let base = if t >= jump_ms { 0.20 } else { 0.01 };
                sample(t, service, base + 0.001 * ((i % 5) as f64 - 2.0))
            })
            .collect()
    }

    fn live_engine(now_ms: i64) -> Engine {
        let mut e = Engine::new(Config::default()).unwrap();
        e.set_event_time_ceiling(Some(Timestamp(now_ms)));
        e.advance_to(Timestamp(now_ms));
        e
    }

    #[test]
    fn metric_names_resolve_whatever_their_order_in_a_sample() {
        // The same data, once with the metrics always in one order and once shuffled
        // from sample to sample (with an extra metric now and then): the verdicts must be
        // identical, so a name is never taken for the one last seen at its position.
        let run = |shuffle: bool| {
            let mut e = Engine::new(Config::default()).unwrap();
            for (i, s) in error_series("api", T0, T0 + 5_400_000, T0 + 3_600_000)
                .into_iter()
                .enumerate()
            {
                let err = s.metrics[0].clone();
                let lat = ("p95_latency_ms".to_string(), 200.0 + (i % 7) as f64);
                let metrics = match (shuffle, i % 3) {
                    (false, _) => vec![err, lat],
                    (true, 0) => vec![lat, err],
                    (true, 1) => vec![("cpu".to_string(), 0.5), err, lat],
                    (true, _) => vec![err, lat],
                };
                e.ingest_sample(&Sample { metrics, ..s }).unwrap();
            }
            e.ingest_deploy(&deploy(T0 + 3_600_000, "v2", "api"))
                .unwrap();
            e.finish();
            let mut v = e.take_verdicts();
            assert_eq!(v.len(), 1);
            let v = v.remove(0);
            assert_eq!(v.verdict, crate::verdict::VerdictKind::Regression, "{v:?}");
            let rate = v
                .evidence
                .iter()
                .find(|m| m.metric == "error_rate")
                .unwrap();
            let lat = v
                .evidence
                .iter()
                .find(|m| m.metric == "p95_latency_ms")
                .unwrap();
            (
                rate.baseline.median,
                rate.observed.median,
                lat.baseline.median,
            )
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn a_sample_from_a_fast_clock_does_not_make_other_series_late() {
        let now = T0;
        let mut e = live_engine(now);
        // A client of another service an hour ahead.
        e.ingest_sample(&sample(now + 3_600_000, "other", 0.01))
            .unwrap();
        assert_eq!(e.watermark(), Some(Timestamp(now - 120_000)));
        let mut data = error_series("checkout", now - 3_600_000, now + 1_800_000, now + 600_000);
        let (before, after): (Vec<_>, Vec<_>) = data.drain(..).partition(|s| s.timestamp.0 < now);
        for s in &before {
            e.ingest_sample(s).unwrap();
        }
        e.ingest_deploy(&deploy(now, "v2", "checkout")).unwrap();
        // Live: the clock moves with the samples.
        for s in &after {
            e.advance_to(s.timestamp);
            e.ingest_sample(s).unwrap();
        }
        let v = e.take_verdicts();
        let v = v.iter().find(|v| v.deploy_id == "v2").expect("a verdict");
        assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
        // The baseline older than the lateness (120 s, twelve samples) was late, and kept.
        assert_eq!(e.stats().late_samples, before.len() as u64 - 12);
    }

    #[test]
    fn idle_series_are_evicted_and_busy_ones_kept() {
        let mut e = Engine::new(Config::default()).unwrap();
        for i in 0..1000 {
            e.ingest_sample(&sample(T0, &format!("pod-{i}"), 0.01))
                .unwrap();
        }
        for s in error_series("checkout", T0, T0 + 600_000, i64::MAX) {
            e.ingest_sample(&s).unwrap();
        }
        e.ingest_deploy(&deploy(T0 + 600_000, "v2", "checkout"))
            .unwrap();
        e.ingest_sample(&sample(T0 + 610_000, "checkout", 0.01))
            .unwrap();
        assert_eq!(e.series_count(), 1001);
        let held = e.stats().points;
        assert!(held > 1000, "{held}");
        assert_eq!(e.evict_idle_series(Timestamp(T0 + 1)), 1000);
        assert_eq!(e.series_count(), 1);
        assert_eq!(e.stats().evicted_series, 1000);
        // The evicted pods' one point each went with them.
        assert_eq!(e.stats().points, held - 1000);
        // The watch of the series kept goes on, and an evicted name comes back as new.
        for s in error_series("checkout", T0 + 620_000, T0 + 2_400_000, T0 + 620_000) {
            e.ingest_sample(&s).unwrap();
        }
        let v = e.take_verdicts();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].verdict, VerdictKind::Regression, "{}", v[0].reason);
        e.ingest_sample(&sample(T0 + 2_400_000, "pod-7", 0.01))
            .unwrap();
        assert_eq!(e.series_count(), 2);
    }

    #[test]
    fn without_a_ceiling_event_time_follows_the_data() {
        let mut e = Engine::new(Config::default()).unwrap();
        e.ingest_sample(&sample(T0 + 3_600_000, "other", 0.01))
            .unwrap();
        e.ingest_sample(&sample(T0, "checkout", 0.01)).unwrap();
        assert_eq!(e.watermark(), Some(Timestamp(T0 + 3_600_000 - 120_000)));
        assert_eq!(e.stats().late_samples, 1);
    }

    #[test]
    fn a_late_deploy_is_judged_from_its_late_baseline_with_a_warning() {
        // Everything arrives after the lateness: the baseline, then a deploy stamped
        // five minutes ago, then what followed it, up to now.
        let now = T0;
        let deployed = now - 300_000;
        let data = error_series("checkout", deployed - 3_600_000, now, deployed);
        let mut live = live_engine(now);
        let (before, after): (Vec<_>, Vec<_>) =
            data.iter().cloned().partition(|s| s.timestamp.0 < deployed);
        for s in &before {
            live.ingest_sample(s).unwrap();
        }
        live.ingest_deploy(&deploy(deployed, "v2", "checkout"))
            .unwrap();
        for s in &after {
            live.ingest_sample(s).unwrap();
        }
        let live_verdicts = live.take_verdicts();
        assert_eq!(live_verdicts.len(), 1, "{live_verdicts:?}");
        let v = &live_verdicts[0];
        assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
        assert_ne!(v.inconclusive_cause, Some(InconclusiveCause::NoData));
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("allowed_lateness_secs")),
            "{:?}",
            v.warnings
        );

        // The same data in event-time order, as a restart re-feeds it, decides the same.
        let mut replayed = Engine::new(Config::default()).unwrap();
        replayed
            .ingest_deploy(&deploy(deployed, "v2", "checkout"))
            .unwrap();
        for s in &data {
            replayed.ingest_sample(s).unwrap();
        }
        // A sample of the judged stretch arriving now is too late for that verdict. (Of
        // its baseline: the regression is now decided at the deploy itself, so the
        // stretch ends there and a sample after it is outside.)
        let before_count = live.stats().late_after_verdict;
        live.ingest_sample(&sample(deployed - 60_000, "checkout", 0.5))
            .unwrap();
        assert_eq!(live.stats().late_after_verdict, before_count + 1);

        let r = replayed.take_verdicts();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].verdict, v.verdict);
        assert_eq!(r[0].detected_at, v.detected_at);
    }
}
