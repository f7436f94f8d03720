//! Prometheus remote write 1.0: a snappy-compressed (block format) protobuf
//! `prometheus.WriteRequest`, the body Prometheus' `remote_write` sends
//! (docs/remote-write.md).
//!
//! How series become samples, per service, environment and timestamp (Prometheus stamps
//! every series of one scrape with the same time):
//! - labels `service` or `job` → service and `environment` or `env` → environment (the
//!   first present of each configured list), `version` → the version that
//!   [`crate::ingest::versions`] turns into deploys;
//! - counters (`*_total`, `*_count`, `*_sum`, or typed counter by the metadata Prometheus
//!   sends) are differenced against the series' previous sample: a smaller value is a
//!   reset, and the new value is then the increase since it. The requests counter
//!   (`http_requests_total`) gives `requests`, `errors` (status label `code` 5xx),
//!   `error_rate` and `request_rate`; any other counter `<name>_total` gives
//!   `<name>_per_sec`;
//! - classic histogram buckets (`*_bucket` with `le`) are differenced the same way and
//!   summed over the other labels, like `sum by (le) (rate(...))`; the duration histogram
//!   (`http_request_duration_seconds`) gives `p50_latency_ms`, `p95_latency_ms`,
//!   `p99_latency_ms` ([`crate::ingest::histogram`]); its `_sum` and `_count` are not used;
//! - other series are gauges, averaged over label sets; `up` and `scrape_*` (Prometheus'
//!   own series about the scrape) and `*_info` (labels, not measurements; they still give
//!   the version) are dropped, and so is anything in `drop_metrics`.
//!
//! The first sample of a counter only sets its reference, so rates start with the second
//! scrape (the version label is not part of a series' identity, so a deploy continues the
//! old series as a reset); the references live in memory, so after a WatchDog restart rates start again
//! with the second sample of each series. Prometheus' stale markers (a special NaN) end
//! nothing and are skipped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::Deserialize;
use watchdog_core::{Sample, Timestamp};

use crate::ingest::histogram::Buckets;
use crate::ingest::versions::{note, Sighting};

/// The remote-write messages, declared by hand after Prometheus' `prompb/remote.proto`
/// and `prompb/types.proto` (remote write 1.0). Only the fields WatchDog reads are
/// declared; prost skips the others (exemplars, native histograms) as unknown fields,
/// exactly as the protobuf rules say.
pub mod proto {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// Field 1: the series with their samples.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Field 3: metric types and help, sent now and then.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Field 1: labels, `__name__` among them.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Field 2: samples, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Field 2.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Field 1.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Field 2: milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// `prometheus.MetricMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// Field 1: `MetricType` (0 unknown, 1 counter, 2 gauge, 3 histogram,
        /// 4 gauge histogram, 5 summary, 6 info, 7 stateset).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Field 2.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
    }
}

/// `[remote_write]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// Labels naming the service, the first present wins (default `service`, `job`).
    pub service_labels: Vec<String>,
    /// Labels naming the environment (default `environment`, `env`).
    pub environment_labels: Vec<String>,
    /// Label holding the version (default `version`).
    pub version_label: String,
    /// A change of the version label is a deploy (default true).
    pub version_deploys: bool,
    /// The request counter (default `http_requests_total`).
    pub requests_metric: String,
    /// Its status label; 5xx counts as an error (default `code`).
    pub status_label: String,
    /// The latency histogram without `_bucket` (default `http_request_duration_seconds`).
    pub duration_metric: String,
    /// Metric names not to watch; a trailing `*` matches a prefix.
    pub drop_metrics: Vec<String>,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            service_labels: vec!["service".into(), "job".into()],
            environment_labels: vec!["environment".into(), "env".into()],
            version_label: "version".into(),
            version_deploys: true,
            requests_metric: "http_requests_total".into(),
            status_label: "code".into(),
            duration_metric: "http_request_duration_seconds".into(),
            drop_metrics: Vec::new(),
        }
    }
}

/// Prometheus' stale marker: a NaN with this bit pattern.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Most series remembered; past it the references are dropped and rebuilt.
const MAX_SERIES: usize = 500_000;

/// Per-series references for differencing, and what the metadata said.
#[derive(Debug, Default)]
pub struct RemoteWriteState {
    prev: HashMap<u64, (i64, f64)>,
    histograms: HashSet<String>,
    counters: HashSet<String>,
}

/// A series' reference: its last sample's (timestamp, value).
type Reference = (i64, f64);

/// How to undo one conversion's changes: (series, before, the timestamp it set).
#[derive(Debug, Default)]
pub struct Undo(Vec<(u64, Option<Reference>, i64)>);

impl RemoteWriteState {
    fn set(&mut self, undo: &mut Undo, key: u64, ts: i64, v: f64) {
        let before = self.prev.insert(key, (ts, v));
        undo.0.push((key, before, ts));
    }

    /// Puts back what a conversion changed when its samples could not be stored, so that
    /// Prometheus' retry is differenced against the same references; a series moved on
    /// by another request since is left alone.
    pub fn rollback(&mut self, undo: Undo) {
        for (key, before, ts) in undo.0.into_iter().rev() {
            if self.prev.get(&key).is_some_and(|p| p.0 == ts) {
                match before {
                    Some(b) => self.prev.insert(key, b),
                    None => self.prev.remove(&key),
                };
            }
        }
    }
}

/// Undoes snappy's block format, refusing bodies that would inflate past `limit`.
///
/// # Errors
/// A message naming the problem; `Err((true, _))` when too large.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, (bool, String)> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        (
            false,
            format!("body is not snappy-compressed (block format): {e}"),
        )
    })?;
    if len > limit {
        return Err((
            true,
            format!("snappy body inflates to {len} bytes, past max_body_bytes ({limit}); lower max_samples_per_send"),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| (false, format!("snappy body could not be decompressed: {e}")))
}

/// What one request became.
#[derive(Debug, Default)]
pub struct RemoteWriteBatch {
    /// One sample per service, environment and timestamp.
    pub samples: Vec<Sample>,
    /// Versions seen.
    pub sightings: Vec<Sighting>,
    /// Samples in the request.
    pub received: usize,
    /// Samples rejected as invalid.
    pub rejected: usize,
    /// The first rejection's reason.
    pub first_error: Option<String>,
    /// Undoes the conversion's changes to the state.
    pub undo: Undo,
}

#[derive(Debug, Default)]
struct Group {
    http: bool,
    requests: f64,
    errors: f64,
    rate: f64,
    /// Cumulative-by-`le` increases of the duration histogram.
    le: BTreeMap<u64, (f64, f64)>,
    gauges: BTreeMap<String, (f64, usize)>,
    rates: BTreeMap<String, f64>,
}

enum Kind {
    Counter,
    Bucket { le: f64 },
    Gauge,
    Skip,
}

fn matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

fn parse_le(v: &str) -> Option<f64> {
    match v.trim() {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        t => t.parse::<f64>().ok().filter(|x| !x.is_nan()),
    }
}

/// Milliseconds per unit of a duration histogram, from its name's unit suffix.
fn ms_per_unit(family: &str) -> f64 {
    if family.ends_with("_milliseconds") || family.ends_with("_ms") {
        1.0
    } else if family.ends_with("_microseconds") {
        0.001
    } else {
        1000.0
    }
}

/// Converts a request, moving the counters of `state` forward.
pub fn convert(
    req: &proto::WriteRequest,
    state: &mut RemoteWriteState,
    cfg: &RemoteWriteConfig,
) -> RemoteWriteBatch {
    for m in &req.metadata {
        match m.r#type {
            1 => {
                state.counters.insert(m.metric_family_name.clone());
            }
            3..=5 => {
                state.histograms.insert(m.metric_family_name.clone());
            }
            _ => {}
        }
    }
    let mut batch = RemoteWriteBatch::default();
    let mut groups: BTreeMap<(String, String, i64), Group> = BTreeMap::new();
    if state.prev.len() > MAX_SERIES {
        state.prev.clear();
    }
    for (si, ts) in req.timeseries.iter().enumerate() {
        batch.received += ts.samples.len();
        let get = |k: &str| {
            ts.labels
                .iter()
                .find(|l| l.name == k)
                .map(|l| l.value.as_str())
        };
        let first = |keys: &[String]| keys.iter().find_map(|k| get(k).filter(|v| !v.is_empty()));
        let Some(name) = get("__name__").filter(|n| !n.is_empty()) else {
            batch.rejected += ts.samples.len().max(1);
            batch
                .first_error
                .get_or_insert(format!("timeseries {si} has no __name__ label"));
            continue;
        };
        let service = first(&cfg.service_labels).unwrap_or("").to_string();
        let environment = first(&cfg.environment_labels).unwrap_or("").to_string();
        // Any series may carry the version (`*_build_info` usually does).
        if let Some(version) = get(&cfg.version_label) {
            if let Some(t) = ts.samples.iter().map(|s| s.timestamp).min() {
                note(&mut batch.sightings, &service, &environment, version, t);
            }
        }
        // `*_info` series (OpenMetrics info, e.g. build_info) are labels, not measurements.
        if name == "up"
            || name.starts_with("scrape_")
            || name.ends_with("_info")
            || matches(&cfg.drop_metrics, name)
        {
            continue;
        }
        let kind =
            if let Some(family) = name.strip_suffix("_bucket").filter(|_| get("le").is_some()) {
                state.histograms.insert(family.to_string());
                match get("le").and_then(parse_le) {
                    Some(le) if family == cfg.duration_metric => Kind::Bucket { le },
                    Some(_) => Kind::Skip,
                    None => {
                        batch.rejected += ts.samples.len();
                        batch.first_error.get_or_insert(format!(
                            "timeseries {si} ({name}): le {:?} is not a number",
                            get("le").unwrap_or("")
                        ));
                        continue;
                    }
                }
            } else if name
                .strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .or_else(|| name.strip_suffix("_created"))
                .is_some_and(|f| state.histograms.contains(f))
            {
                Kind::Skip
            } else if name.ends_with("_total")
                || name.ends_with("_count")
                || name.ends_with("_sum")
                || state.counters.contains(name)
            {
                Kind::Counter
            } else {
                Kind::Gauge
            };
        if matches!(kind, Kind::Skip) {
            continue;
        }
        // The version label is left out of the series' identity: a new version's
        // counters then continue the old series as a reset, so the new process's first
        // scrape already counts (its counters started at zero).
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for l in ts.labels.iter().filter(|l| l.name != cfg.version_label) {
                (&l.name, &l.value).hash(&mut h);
            }
            h.finish()
        };
        let mut samples: Vec<&proto::Sample> = ts.samples.iter().collect();
        samples.sort_by_key(|s| s.timestamp);
        for s in samples {
            if s.value.to_bits() == STALE_NAN {
                continue;
            }
            if !s.value.is_finite() || s.timestamp <= 0 {
                batch.rejected += 1;
                batch.first_error.get_or_insert(format!(
                    "timeseries {si} ({name}): sample at {} is not a finite value with a positive timestamp: {}",
                    s.timestamp, s.value
                ));
                continue;
            }
            let group_key = (service.clone(), environment.clone(), s.timestamp);
            match kind {
                Kind::Gauge => {
                    let g = groups.entry(group_key).or_default();
                    let e = g.gauges.entry(name.to_string()).or_insert((0.0, 0));
                    e.0 += s.value;
                    e.1 += 1;
                }
                Kind::Counter | Kind::Bucket { .. } => {
                    let Some((t0, v0)) = state.prev.get(&key).copied() else {
                        state.set(&mut batch.undo, key, s.timestamp, s.value);
                        continue;
                    };
                    if s.timestamp <= t0 {
                        continue;
                    }
                    state.set(&mut batch.undo, key, s.timestamp, s.value);
                    let increase = if s.value >= v0 { s.value - v0 } else { s.value };
                    let secs = (s.timestamp - t0) as f64 / 1000.0;
                    let g = groups.entry(group_key).or_default();
                    if let Kind::Bucket { le } = kind {
                        let e = g.le.entry(le.max(0.0).to_bits()).or_insert((le, 0.0));
                        e.1 += increase;
                    } else if name == cfg.requests_metric {
                        g.http = true;
                        g.requests += increase;
                        g.rate += increase / secs;
                        if get(&cfg.status_label).is_some_and(|c| c.starts_with('5')) {
                            g.errors += increase;
                        }
                    } else {
                        let base = name.strip_suffix("_total").unwrap_or(name);
                        *g.rates.entry(format!("{base}_per_sec")).or_insert(0.0) += increase / secs;
                    }
                }
                Kind::Skip => {}
            }
        }
    }
    let scale = ms_per_unit(&cfg.duration_metric);
    batch.samples = groups
        .into_iter()
        .filter_map(|((service, environment, ts), g)| {
            let mut metrics = Vec::new();
            if g.http {
                metrics.push(("requests".to_string(), g.requests));
                metrics.push(("errors".to_string(), g.errors));
                if g.requests > 0.0 {
                    metrics.push(("error_rate".to_string(), g.errors / g.requests));
                }
                metrics.push(("request_rate".to_string(), g.rate));
            }
            if !g.le.is_empty() {
                // Cumulative-by-le counts to counts per bucket.
                let mut buckets = Buckets::default();
                let mut below = 0.0;
                for (le, cum) in g.le.values() {
                    buckets.add(le * scale, (cum - below).max(0.0));
                    below = below.max(*cum);
                }
                for (n, q) in [
                    ("p50_latency_ms", 0.5),
                    ("p95_latency_ms", 0.95),
                    ("p99_latency_ms", 0.99),
                ] {
                    if let Some(v) = buckets.quantile(q) {
                        metrics.push((n.to_string(), v));
                    }
                }
            }
            for (name, (sum, n)) in g.gauges {
                metrics.push((name, sum / n as f64));
            }
            metrics.extend(g.rates);
            metrics.retain(|(_, v)| v.is_finite());
            (!metrics.is_empty()).then_some(Sample {
                version: None,
                timestamp: Timestamp(ts),
                service,
                environment,
                metrics,
            })
        })
        .collect();
    batch
}

#[cfg(test)]
mod tests {
    use super::proto::{Label, TimeSeries, WriteRequest};
    use super::*;
    use prost::Message;

    fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: points
                .iter()
                .map(|(t, v)| proto::Sample {
                    value: *v,
                    timestamp: *t,
                })
                .collect(),
        }
    }

    fn scrape(t: i64, ok: f64, err: f64, le: [f64; 3]) -> WriteRequest {
        let base = [
            ("job", "checkout"),
            ("env", "production"),
            ("version", "v1"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut l: Vec<(&str, &str)> = base.to_vec();
            l.extend_from_slice(extra);
            l
        };
        WriteRequest {
            timeseries: vec![
                series(
                    &with(&[("__name__", "http_requests_total"), ("code", "200")]),
                    &[(t, ok)],
                ),
                series(
                    &with(&[("__name__", "http_requests_total"), ("code", "500")]),
                    &[(t, err)],
                ),
                series(
                    &with(&[
                        ("__name__", "http_request_duration_seconds_bucket"),
                        ("le", "0.1"),
                    ]),
                    &[(t, le[0])],
                ),
                series(
                    &with(&[
                        ("__name__", "http_request_duration_seconds_bucket"),
                        ("le", "0.2"),
                    ]),
                    &[(t, le[1])],
                ),
                series(
                    &with(&[
                        ("__name__", "http_request_duration_seconds_bucket"),
                        ("le", "+Inf"),
                    ]),
                    &[(t, le[2])],
                ),
                series(
                    &with(&[("__name__", "http_request_duration_seconds_count")]),
                    &[(t, le[2])],
                ),
                series(&with(&[("__name__", "up")]), &[(t, 1.0)]),
                series(&with(&[("__name__", "app_build_info")]), &[(t, 1.0)]),
                series(&with(&[("__name__", "queue_depth")]), &[(t, 7.0)]),
            ],
            metadata: vec![],
        }
    }

    #[test]
    fn counters_become_rates_and_buckets_quantiles() {
        let cfg = RemoteWriteConfig::default();
        let mut state = RemoteWriteState::default();
        let b = convert(
            &scrape(1_000_000, 1000.0, 10.0, [500.0, 900.0, 1010.0]),
            &mut state,
            &cfg,
        );
        // The first scrape sets the references; only the gauge is a sample.
        assert_eq!(b.samples.len(), 1);
        assert_eq!(b.samples[0].metrics, vec![("queue_depth".to_string(), 7.0)]);
        assert_eq!(b.sightings.len(), 1);
        // 10 s later: 90 OK and 10 errors; 50 ≤ 100 ms, 90 ≤ 200 ms, 100 in all.
        let b = convert(
            &scrape(1_010_000, 1090.0, 20.0, [550.0, 990.0, 1110.0]),
            &mut state,
            &cfg,
        );
        let s = &b.samples[0];
        assert_eq!(
            (s.service.as_str(), s.environment.as_str()),
            ("checkout", "production")
        );
        assert_eq!(s.metric("requests"), Some(100.0));
        assert_eq!(s.metric("errors"), Some(10.0));
        assert_eq!(s.metric("error_rate"), Some(0.1));
        assert_eq!(s.metric("request_rate"), Some(10.0));
        assert!((s.metric("p50_latency_ms").unwrap() - 100.0).abs() < 1e-9);
        assert!((s.metric("p95_latency_ms").unwrap() - 200.0).abs() < 1e-9);
        assert_eq!(s.metric("up"), None);
        assert_eq!(s.metric("app_build_info"), None);
        assert_eq!(
            s.metric("http_request_duration_seconds_count_per_sec"),
            None
        );
        // A reset (the process restarted): the new values are the increase.
        let b = convert(
            &scrape(1_020_000, 40.0, 10.0, [25.0, 45.0, 50.0]),
            &mut state,
            &cfg,
        );
        let s = &b.samples[0];
        assert_eq!(s.metric("requests"), Some(50.0));
        assert_eq!(s.metric("error_rate"), Some(0.2));
    }

    #[test]
    fn a_rolled_back_request_is_differenced_again() {
        let cfg = RemoteWriteConfig::default();
        let mut state = RemoteWriteState::default();
        convert(
            &scrape(1_000_000, 1000.0, 10.0, [500.0, 900.0, 1010.0]),
            &mut state,
            &cfg,
        );
        let next = scrape(1_010_000, 1090.0, 20.0, [550.0, 990.0, 1110.0]);
        let b = convert(&next, &mut state, &cfg);
        assert_eq!(b.samples[0].metric("requests"), Some(100.0));
        state.rollback(b.undo);
        let b = convert(&next, &mut state, &cfg);
        assert_eq!(b.samples[0].metric("requests"), Some(100.0));
    }

    #[test]
    fn a_series_without_a_name_is_rejected_and_the_rest_kept() {
        let cfg = RemoteWriteConfig::default();
        let mut state = RemoteWriteState::default();
        let mut req = scrape(1_000_000, 1.0, 0.0, [1.0, 1.0, 1.0]);
        req.timeseries
            .push(series(&[("job", "x")], &[(1_000_000, 1.0)]));
        let b = convert(&req, &mut state, &cfg);
        assert_eq!(b.rejected, 1);
        assert!(b
            .first_error
            .unwrap()
            .contains("timeseries 9 has no __name__"));
        assert_eq!(b.samples.len(), 1);
    }

    #[test]
    fn snappy_bodies_round_trip_and_bombs_are_refused() {
        let req = scrape(1_000_000, 1.0, 0.0, [1.0, 1.0, 1.0]);
        let raw = req.encode_to_vec();
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let back = decompress(&body, 1 << 20).unwrap();
        assert_eq!(WriteRequest::decode(back.as_slice()).unwrap(), req);
        assert!(decompress(&body, 10).unwrap_err().0);
        assert!(decompress(b"not snappy at all", 1 << 20).is_err());
        assert!(decompress(&body[..body.len() / 2], 1 << 20).is_err());
    }
}
