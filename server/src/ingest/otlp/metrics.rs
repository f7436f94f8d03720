//! OTLP metrics → WatchDog samples.
//!
//! - `http.server.request.duration` histograms (the HTTP semantic conventions; also the
//!   older `http.server.duration`) become, per service, environment and timestamp:
//!   `requests` and `errors` (the counts that switch the error rate to the count-aware
//!   test), `error_rate`, `request_rate` (requests per second over the point's interval)
//!   and `p50_latency_ms`, `p95_latency_ms`, `p99_latency_ms` (see
//!   [`crate::ingest::histogram`]). A point is an error when its
//!   `http.response.status_code` (or the older `http.status_code`) is 500 or more, or
//!   when it carries `error.type`. All routes, methods and status codes of a service are
//!   added up into one sample.
//! - Gauges keep their name and value (the mean over attribute sets); non-monotonic sums
//!   keep their name and value (the sum over attribute sets); monotonic sums (counters)
//!   become `<name>_per_sec`, their increase per second, summed over attribute sets.
//!   Other histograms and summaries are not used. The duration may also come as an
//!   exponential histogram: bucket `i` then holds `(base^i, base^(i+1)]` with
//!   `base = 2^(2^-scale)`, and the same quantile estimate applies to those bounds.
//!
//! Temporality: a delta point is the interval's value as it is. A cumulative point is
//! differenced against the previous point of the same series (same resource, metric and
//! attributes). A reset (a new `start_time_unix_nano`, or a count that went down) means
//! the process restarted: the point's whole value accrued since its start time. The first
//! point of a series is used whole when it started at most [`FIRST_SPAN_NS`] before it
//! (a process that just started, e.g. the new version of a deploy), and otherwise only
//! remembered as the reference for the next one. The previous points live in memory; after
//! a WatchDog restart the first point of every series is a reference again.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, HistogramDataPoint, NumberDataPoint,
};
use watchdog_core::{Sample, Timestamp};

use super::series::{counter_step, exp_buckets, exp_step, hist_step, Step};
pub use super::series::{MetricState, Undo, FIRST_SPAN_NS};
use super::{attr, attr_int, hash_attrs, nanos_to_ms, ResourceLabels};
use crate::ingest::histogram::Buckets;
use crate::ingest::versions::{note, Sighting};

/// What one request became.
#[derive(Debug, Default)]
pub struct MetricsBatch {
    /// One sample per service, environment and timestamp.
    pub samples: Vec<Sample>,
    /// The versions seen, for deploys.
    pub sightings: Vec<Sighting>,
    /// Data points in the request.
    pub points: usize,
    /// Data points rejected as invalid.
    pub rejected: usize,
    /// The first rejection's reason.
    pub first_error: Option<String>,
    /// Undoes the conversion's changes to the state (see [`MetricState::rollback`]).
    pub undo: Undo,
}

impl MetricsBatch {
    fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    http: bool,
    requests: f64,
    errors: f64,
    /// Requests per second, summed over series with a known interval.
    rate: f64,
    rate_known: bool,
    latency_ms: Buckets,
    gauges: BTreeMap<String, (f64, usize)>,
    sums: BTreeMap<String, f64>,
}

/// Milliseconds per unit of a duration histogram, from its UCUM unit.
fn ms_per_unit(unit: &str, name: &str) -> f64 {
    match unit {
        "s" => 1000.0,
        "ms" => 1.0,
        "us" => 0.001,
        "ns" => 1e-6,
        // The semantic conventions: seconds for the current name, ms for the old one.
        _ if name == "http.server.duration" => 1.0,
        _ => 1000.0,
    }
}

fn is_error(attrs: &[KeyValue]) -> bool {
    let status = attr_int(attrs, "http.response.status_code")
        .or_else(|| attr_int(attrs, "http.status_code"));
    if status.is_some_and(|s| s >= 500) {
        return true;
    }
    match attr(attrs, "error.type") {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
            !s.is_empty()
        }
        Some(_) => true,
        None => false,
    }
}

fn series_key(resource_hash: u64, metric: &str, attrs: &[KeyValue]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    resource_hash.hash(&mut h);
    metric.hash(&mut h);
    hash_attrs(attrs, &mut h);
    h.finish()
}

fn number(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

/// Converts a request, moving the cumulative series of `state` forward.
pub fn convert(
    req: &ExportMetricsServiceRequest,
    state: &mut MetricState,
    version_attribute: &str,
) -> MetricsBatch {
    let mut batch = MetricsBatch::default();
    state.journal.clear();
    let mut groups: BTreeMap<(String, String, i64), Group> = BTreeMap::new();
    for (ri, rm) in req.resource_metrics.iter().enumerate() {
        let labels = ResourceLabels::of(rm.resource.as_ref(), version_attribute);
        let resource_hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if let Some(r) = &rm.resource {
                hash_attrs(&r.attributes, &mut h);
            }
            h.finish()
        };
        let mut earliest_ms: Option<i64> = None;
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let Some(data) = &m.data else { continue };
                let where_ = |i: usize| format!("resource {ri}, metric `{}`, point {i}", m.name);
                match data {
                    Data::Histogram(h) => {
                        let http = m.name == "http.server.request.duration"
                            || m.name == "http.server.duration";
                        batch.points += h.data_points.len();
                        if !http {
                            continue;
                        }
                        let scale = ms_per_unit(&m.unit, &m.name);
                        let cumulative =
                            h.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                        for (i, p) in h.data_points.iter().enumerate() {
                            if let Err(why) = check_hist(p) {
                                batch.reject(format!("{}: {why}", where_(i)));
                                continue;
                            }
                            let Some(ts_ms) = nanos_to_ms(p.time_unix_nano) else {
                                batch.reject(format!("{}: time_unix_nano is 0", where_(i)));
                                continue;
                            };
                            earliest_ms = Some(earliest_ms.map_or(ts_ms, |e| e.min(ts_ms)));
                            state.newest_ns = state.newest_ns.max(p.time_unix_nano);
                            let key = series_key(resource_hash, &m.name, &p.attributes);
                            let step = hist_step(state, key, p, cumulative);
                            let Step::Use {
                                value: (counts, count),
                                interval_ns,
                            } = step
                            else {
                                continue;
                            };
                            let g = groups
                                .entry((labels.service.clone(), labels.environment.clone(), ts_ms))
                                .or_default();
                            g.http = true;
                            let n = count as f64;
                            g.requests += n;
                            if is_error(&p.attributes) {
                                g.errors += n;
                            }
                            if let Some(ns) = interval_ns {
                                g.rate += n / (ns as f64 / 1e9);
                                g.rate_known = true;
                            }
                            let bounds: Vec<f64> =
                                p.explicit_bounds.iter().map(|b| b * scale).collect();
                            let counts: Vec<f64> = counts.iter().map(|c| *c as f64).collect();
                            g.latency_ms.add_explicit(&bounds, &counts);
                        }
                    }
                    Data::Gauge(gauge) => {
                        batch.points += gauge.data_points.len();
                        for (i, p) in gauge.data_points.iter().enumerate() {
                            let (ts_ms, v) = match checked_number(p) {
                                Ok(x) => x,
                                Err(why) => {
                                    batch.reject(format!("{}: {why}", where_(i)));
                                    continue;
                                }
                            };
                            earliest_ms = Some(earliest_ms.map_or(ts_ms, |e| e.min(ts_ms)));
                            let g = groups
                                .entry((labels.service.clone(), labels.environment.clone(), ts_ms))
                                .or_default();
                            let e = g.gauges.entry(m.name.clone()).or_insert((0.0, 0));
                            e.0 += v;
                            e.1 += 1;
                        }
                    }
                    Data::Sum(sum) => {
                        batch.points += sum.data_points.len();
                        let cumulative = sum.aggregation_temporality
                            == AggregationTemporality::Cumulative as i32;
                        for (i, p) in sum.data_points.iter().enumerate() {
                            let (ts_ms, v) = match checked_number(p) {
                                Ok(x) => x,
                                Err(why) => {
                                    batch.reject(format!("{}: {why}", where_(i)));
                                    continue;
                                }
                            };
                            earliest_ms = Some(earliest_ms.map_or(ts_ms, |e| e.min(ts_ms)));
                            state.newest_ns = state.newest_ns.max(p.time_unix_nano);
                            if !sum.is_monotonic {
                                let g = groups
                                    .entry((
                                        labels.service.clone(),
                                        labels.environment.clone(),
                                        ts_ms,
                                    ))
                                    .or_default();
                                *g.sums.entry(m.name.clone()).or_insert(0.0) += v;
                                continue;
                            }
                            let key = series_key(resource_hash, &m.name, &p.attributes);
                            let step = counter_step(state, key, p, v, cumulative);
                            if let Step::Use {
                                value,
                                interval_ns: Some(ns),
                            } = step
                            {
                                let g = groups
                                    .entry((
                                        labels.service.clone(),
                                        labels.environment.clone(),
                                        ts_ms,
                                    ))
                                    .or_default();
                                *g.sums.entry(format!("{}_per_sec", m.name)).or_insert(0.0) +=
                                    value / (ns as f64 / 1e9);
                            }
                        }
                    }
                    Data::ExponentialHistogram(h) => {
                        let http = m.name == "http.server.request.duration"
                            || m.name == "http.server.duration";
                        batch.points += h.data_points.len();
                        if !http {
                            continue;
                        }
                        let scale = ms_per_unit(&m.unit, &m.name);
                        let cumulative =
                            h.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                        for (i, p) in h.data_points.iter().enumerate() {
                            let Some(ts_ms) = nanos_to_ms(p.time_unix_nano) else {
                                batch.reject(format!("{}: time_unix_nano is 0", where_(i)));
                                continue;
                            };
                            let Some(now) = exp_buckets(p) else {
                                batch.reject(format!(
                                    "{}: scale {} is outside -10..=20, or zero_count and the buckets do not add up to count {}",
                                    where_(i),
                                    p.scale,
                                    p.count
                                ));
                                continue;
                            };
                            earliest_ms = Some(earliest_ms.map_or(ts_ms, |e| e.min(ts_ms)));
                            state.newest_ns = state.newest_ns.max(p.time_unix_nano);
                            let key = series_key(resource_hash, &m.name, &p.attributes);
                            let step = exp_step(state, key, p, now, cumulative);
                            let Step::Use {
                                value: (zero, buckets, count),
                                interval_ns,
                            } = step
                            else {
                                continue;
                            };
                            let g = groups
                                .entry((labels.service.clone(), labels.environment.clone(), ts_ms))
                                .or_default();
                            g.http = true;
                            let n = count as f64;
                            g.requests += n;
                            if is_error(&p.attributes) {
                                g.errors += n;
                            }
                            if let Some(ns) = interval_ns {
                                g.rate += n / (ns as f64 / 1e9);
                                g.rate_known = true;
                            }
                            g.latency_ms.add(p.zero_threshold * scale, zero as f64);
                            let base = 2f64.powf(2f64.powi(-p.scale));
                            for (index, c) in buckets {
                                g.latency_ms.add(base.powi(index + 1) * scale, c as f64);
                            }
                        }
                    }
                    Data::Summary(s) => batch.points += s.data_points.len(),
                }
            }
        }
        if let Some(ts) = earliest_ms {
            note(
                &mut batch.sightings,
                &labels.service,
                &labels.environment,
                &labels.version,
                ts,
            );
        }
    }
    batch.undo = Undo(std::mem::take(&mut state.journal));
    state.forget_old();
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
                if g.rate_known {
                    metrics.push(("request_rate".to_string(), g.rate));
                }
                for (name, q) in [
                    ("p50_latency_ms", 0.50),
                    ("p95_latency_ms", 0.95),
                    ("p99_latency_ms", 0.99),
                ] {
                    if let Some(v) = g.latency_ms.quantile(q) {
                        metrics.push((name.to_string(), v));
                    }
                }
            }
            for (name, (sum, n)) in g.gauges {
                metrics.push((name, sum / n as f64));
            }
            metrics.extend(g.sums);
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

fn check_hist(p: &HistogramDataPoint) -> Result<(), String> {
    if p.bucket_counts.is_empty() {
        // A point without buckets still has a count; it has no latency.
        return Ok(());
    }
    if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return Err(format!(
            "bucket_counts has {} entries for {} explicit_bounds (needs one more than the bounds)",
            p.bucket_counts.len(),
            p.explicit_bounds.len()
        ));
    }
    if p.explicit_bounds.iter().any(|b| !b.is_finite())
        || p.explicit_bounds.windows(2).any(|w| w[0] >= w[1])
    {
        return Err("explicit_bounds must be finite and increasing".into());
    }
    let total: u64 = p.bucket_counts.iter().sum();
    if total != p.count {
        return Err(format!("count is {} but the buckets hold {total}", p.count));
    }
    Ok(())
}

fn checked_number(p: &NumberDataPoint) -> Result<(i64, f64), String> {
    let ts = nanos_to_ms(p.time_unix_nano).ok_or("time_unix_nano is 0")?;
    match number(p) {
        None => Err("the point has no value".into()),
        Some(v) if !v.is_finite() => Err(format!("not a finite number: {v}")),
        Some(v) => Ok((ts, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_780_000_000 * S;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn text(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.into())
    }

    fn resource(version: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![
                kv("service.name", text("checkout")),
                kv("deployment.environment.name", text("production")),
                kv("service.version", text(version)),
            ],
            ..Default::default()
        })
    }

    /// One cumulative duration histogram point per status code: (code, buckets).
    fn request(
        version: &str,
        start: u64,
        time: u64,
        points: &[(i64, [u64; 3])],
    ) -> ExportMetricsServiceRequest {
        let data_points = points
            .iter()
            .map(|(code, b)| HistogramDataPoint {
                attributes: vec![kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(*code),
                )],
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: b.iter().sum(),
                bucket_counts: b.to_vec(),
                explicit_bounds: vec![0.1, 0.2],
                ..Default::default()
            })
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(version),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        unit: "s".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points,
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn metric(s: &Sample, name: &str) -> f64 {
        s.metric(name)
            .unwrap_or_else(|| panic!("{name} missing in {s:?}"))
    }

    #[test]
    fn cumulative_histograms_are_differenced_with_resets() {
        let mut state = MetricState::default();
        let start = T0 - 3600 * S; // started an hour ago: the first point is a reference
        let b = convert(
            &request("v1", start, T0, &[(200, [100, 0, 0]), (500, [0, 0, 0])]),
            &mut state,
            "service.version",
        );
        assert!(b.samples.is_empty(), "{:?}", b.samples);
        // 10 s later: 90 more OK requests, 10 errors.
        let b = convert(
            &request(
                "v1",
                start,
                T0 + 10 * S,
                &[(200, [150, 40, 0]), (500, [0, 0, 10])],
            ),
            &mut state,
            "service.version",
        );
        assert_eq!(b.samples.len(), 1);
        let s = &b.samples[0];
        assert_eq!(
            (s.service.as_str(), s.environment.as_str()),
            ("checkout", "production")
        );
        assert_eq!(metric(s, "requests"), 100.0);
        assert_eq!(metric(s, "errors"), 10.0);
        assert!((metric(s, "error_rate") - 0.1).abs() < 1e-12);
        assert!((metric(s, "request_rate") - 10.0).abs() < 1e-9);
        // 50 in (0,100ms], 40 in (100,200ms], 10 above: p95 is the highest finite bound.
        assert!((metric(s, "p50_latency_ms") - 100.0).abs() < 1e-9);
        assert_eq!(metric(s, "p95_latency_ms"), 200.0);
        // The process restarts (new start time, smaller counts): the whole value counts.
        let restart = T0 + 15 * S;
        let b = convert(
            &request(
                "v2",
                restart,
                T0 + 20 * S,
                &[(200, [5, 0, 0]), (500, [0, 5, 0])],
            ),
            &mut state,
            "service.version",
        );
        let s = &b.samples[0];
        assert_eq!(metric(s, "requests"), 10.0);
        assert_eq!(metric(s, "errors"), 5.0);
        assert!((metric(s, "request_rate") - 2.0).abs() < 1e-9, "{s:?}");
        assert_eq!(b.sightings[0].version, "v2");
        assert_eq!(b.sightings[0].ts_ms, ((T0 + 20 * S) / 1_000_000) as i64);
        // A repeated export changes nothing.
        let b = convert(
            &request(
                "v2",
                restart,
                T0 + 20 * S,
                &[(200, [5, 0, 0]), (500, [0, 5, 0])],
            ),
            &mut state,
            "service.version",
        );
        assert!(b.samples.is_empty());
    }

    #[test]
    fn a_rolled_back_conversion_is_differenced_again() {
        let mut state = MetricState::default();
        let start = T0 - 3600 * S;
        convert(
            &request("v1", start, T0, &[(200, [100, 0, 0])]),
            &mut state,
            "service.version",
        );
        let next = request("v1", start, T0 + 10 * S, &[(200, [150, 0, 0])]);
        let b = convert(&next, &mut state, "service.version");
        assert_eq!(metric(&b.samples[0], "requests"), 50.0);
        // The store failed: the retry must count the same 50 requests, not nothing.
        state.rollback(b.undo);
        let b = convert(&next, &mut state, "service.version");
        assert_eq!(metric(&b.samples[0], "requests"), 50.0);
    }

    #[test]
    fn exponential_histograms_are_differenced_across_a_scale_change() {
        use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets as ExpSide;
        use opentelemetry_proto::tonic::metrics::v1::{
            ExponentialHistogram, ExponentialHistogramDataPoint,
        };
        let point = |t: u64, scale: i32, offset: i32, counts: Vec<u64>| {
            let count = counts.iter().sum();
            ExponentialHistogramDataPoint {
                start_time_unix_nano: T0 - 3600 * S,
                time_unix_nano: t,
                scale,
                count,
                positive: Some(ExpSide {
                    offset,
                    bucket_counts: counts,
                }),
                ..Default::default()
            }
        };
        let req = |p: ExponentialHistogramDataPoint| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource("v1"),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        unit: "ms".into(),
                        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![p],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut state = MetricState::default();
        // Scale 1: base sqrt(2); index 12 is (64, 90.5] ms, 13 is (90.5, 128] ms.
        assert!(convert(
            &req(point(T0, 1, 12, vec![10, 10])),
            &mut state,
            "service.version"
        )
        .samples
        .is_empty());
        // The SDK lowered the scale to 0 (base 2): index 6 is (64, 128] ms and holds the
        // 20 earlier ones plus 30 new; index 7 (128, 256] ms got 50.
        let b = convert(
            &req(point(T0 + 10 * S, 0, 6, vec![50, 50])),
            &mut state,
            "service.version",
        );
        let s = &b.samples[0];
        assert_eq!(metric(s, "requests"), 80.0, "{s:?}");
        assert!((metric(s, "request_rate") - 8.0).abs() < 1e-9);
        let p50 = metric(s, "p50_latency_ms");
        assert!(p50 > 128.0 && p50 < 256.0, "{p50}");
        // Counts that do not add up are rejected by name.
        let mut bad = point(T0 + 20 * S, 0, 6, vec![50, 60]);
        bad.count = 7;
        let b = convert(&req(bad), &mut state, "service.version");
        assert_eq!(b.rejected, 1);
        assert!(b.first_error.unwrap().contains("do not add up"));
    }

    #[test]
    fn a_fresh_process_counts_from_its_start() {
        let mut state = MetricState::default();
        let b = convert(
            &request("v1", T0 - 5 * S, T0, &[(200, [10, 0, 0])]),
            &mut state,
            "service.version",
        );
        assert_eq!(metric(&b.samples[0], "request_rate"), 2.0);
    }

    #[test]
    fn bad_points_are_rejected_by_name_and_the_rest_kept() {
        let mut state = MetricState::default();
        let mut req = request("v1", T0 - 5 * S, T0, &[(200, [10, 0, 0]), (500, [1, 1, 1])]);
        if let Some(Data::Histogram(h)) =
            &mut req.resource_metrics[0].scope_metrics[0].metrics[0].data
        {
            h.data_points[1].bucket_counts.pop();
        }
        let b = convert(&req, &mut state, "service.version");
        assert_eq!(b.rejected, 1);
        let why = b.first_error.unwrap();
        assert!(
            why.contains("http.server.request.duration")
                && why.contains("point 1")
                && why.contains("bucket_counts"),
            "{why}"
        );
        assert_eq!(metric(&b.samples[0], "requests"), 10.0);
    }

    #[test]
    fn counters_become_rates_and_gauges_stay() {
        let mut state = MetricState::default();
        let sum = |v: f64, t: u64| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource("v1"),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "jobs.done".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                start_time_unix_nano: T0 - 3600 * S,
                                time_unix_nano: t,
                                value: Some(number_data_point::Value::AsDouble(v)),
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert!(convert(&sum(100.0, T0), &mut state, "service.version")
            .samples
            .is_empty());
        let b = convert(&sum(130.0, T0 + 10 * S), &mut state, "service.version");
        assert!((metric(&b.samples[0], "jobs.done_per_sec") - 3.0).abs() < 1e-9);
        // A counter that went down was reset: the new value is the increase.
        let b = convert(&sum(20.0, T0 + 20 * S), &mut state, "service.version");
        assert!((metric(&b.samples[0], "jobs.done_per_sec") - 2.0).abs() < 1e-9);
    }
}
