//! Request bodies of `watchdog loadgen --protocol otlp-protobuf|otlp-json|remote-write`:
//! the same load as the NDJSON mode, expressed as each protocol carries it.
//!
//! One "sample" is what WatchDog stores per service and timestamp. A request of
//! `batch` samples covers `services` services (named per connection, so that
//! connections never share a series) with `batch / services` timestamps each, one
//! millisecond apart and later with every request, so that every series only moves
//! forward:
//! - OTLP: per service a resource with one `http.server.request.duration` histogram in
//!   delta temporality, two points (status 200 and 500) per timestamp; each becomes a
//!   sample of `requests`, `errors`, `error_rate`, `request_rate` and three latency
//!   quantiles;
//! - remote write: per service the counters `http_requests_total{code="200"|"500"}` and
//!   five `http_request_duration_seconds_bucket` series, one sample per timestamp; after
//!   the first request each timestamp becomes a sample of the same metrics.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics,
    ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};

/// What `loadgen` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// NDJSON to `/api/v1/metrics`.
    Ndjson,
    /// OTLP protobuf to `/v1/metrics`.
    OtlpProtobuf,
    /// OTLP JSON to `/v1/metrics`.
    OtlpJson,
    /// Snappy remote write to `/api/v1/write`.
    RemoteWrite,
}

impl Protocol {
    /// Path of the endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Protocol::Ndjson => "/api/v1/metrics",
            Protocol::OtlpProtobuf | Protocol::OtlpJson => "/v1/metrics",
            Protocol::RemoteWrite => "/api/v1/write",
        }
    }

    /// `Content-Type` and `Content-Encoding` of the body.
    pub fn headers(self) -> (&'static str, Option<&'static str>) {
        match self {
            Protocol::Ndjson => ("application/x-ndjson", None),
            Protocol::OtlpProtobuf => ("application/x-protobuf", None),
            Protocol::OtlpJson => ("application/json", None),
            Protocol::RemoteWrite => ("application/x-protobuf", Some("snappy")),
        }
    }
}

const BOUNDS: [f64; 4] = [0.05, 0.1, 0.25, 0.5];

fn text(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

/// Timestamps of request `seq` of a connection: `per` milliseconds after the previous
/// request's.
fn times_ms(start_ms: i64, seq: u64, per: usize) -> impl Iterator<Item = i64> {
    let first = start_ms + (seq as i64) * per as i64;
    (0..per as i64).map(move |k| first + k)
}

/// An OTLP metrics body of about `batch` samples.
pub fn otlp(
    batch: usize,
    services: usize,
    conn: usize,
    seq: u64,
    start_ms: i64,
    json: bool,
) -> Vec<u8> {
    let services = services.clamp(1, batch.max(1));
    let per = (batch / services).max(1);
    let resource_metrics = (0..services)
        .map(|s| {
            let data_points = times_ms(start_ms, seq, per)
                .flat_map(|t| {
                    let ns = t as u64 * 1_000_000;
                    let n = (seq + t as u64) % 7;
                    [(200, [80 + n, 15, 4, 1, 0]), (500, [1, 0, 0, 0, 0])].map(|(code, b)| {
                        HistogramDataPoint {
                            attributes: vec![KeyValue {
                                key: "http.response.status_code".into(),
                                value: Some(AnyValue {
                                    value: Some(any_value::Value::IntValue(code)),
                                }),
                                ..Default::default()
                            }],
                            start_time_unix_nano: ns - 10_000_000_000,
                            time_unix_nano: ns,
                            count: b.iter().sum(),
                            bucket_counts: b.to_vec(),
                            explicit_bounds: BOUNDS.to_vec(),
                            ..Default::default()
                        }
                    })
                })
                .collect();
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", format!("svc-{conn}-{s}")),
                        text("deployment.environment.name", "load".into()),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        unit: "s".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points,
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    let req = ExportMetricsServiceRequest { resource_metrics };
    if json {
        serde_json::to_vec(&req).unwrap_or_default()
    } else {
        req.encode_to_vec()
    }
}

/// A snappy remote-write body of about `batch` samples.
pub fn remote_write(
    batch: usize,
    services: usize,
    conn: usize,
    seq: u64,
    start_ms: i64,
) -> Vec<u8> {
    let services = services.clamp(1, batch.max(1));
    let per = (batch / services).max(1);
    let mut timeseries = Vec::with_capacity(services * 7);
    for s in 0..services {
        let service = format!("svc-{conn}-{s}");
        let series = |name: &str, extra: (&str, &str), per_ms: f64| {
            let mut labels = vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "job".into(),
                    value: service.clone(),
                },
                Label {
                    name: "env".into(),
                    value: "load".into(),
                },
            ];
            labels.push(Label {
                name: extra.0.into(),
                value: extra.1.into(),
            });
            let samples = times_ms(start_ms, seq, per)
                .map(|t| Sample {
                    value: (t - start_ms) as f64 * per_ms,
                    timestamp: t,
                })
                .collect();
            TimeSeries { labels, samples }
        };
        timeseries.push(series("http_requests_total", ("code", "200"), 10.0));
        timeseries.push(series("http_requests_total", ("code", "500"), 0.1));
        for (le, share) in [
            ("0.05", 0.8),
            ("0.1", 0.95),
            ("0.25", 0.99),
            ("0.5", 1.0),
            ("+Inf", 1.0),
        ] {
            timeseries.push(series(
                "http_request_duration_seconds_bucket",
                ("le", le),
                10.1 * share,
            ));
        }
    }
    let raw = WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
    .encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::otlp::metrics::{convert, MetricState};
    use crate::ingest::remote_write::{self, RemoteWriteConfig, RemoteWriteState};

    #[test]
    fn each_body_carries_the_samples_it_claims() {
        let body = otlp(1000, 10, 0, 3, 1_780_000_000_000, false);
        let req = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
        let b = convert(&req, &mut MetricState::default(), "service.version");
        assert_eq!((b.samples.len(), b.rejected), (1000, 0));
        let mut state = RemoteWriteState::default();
        let cfg = RemoteWriteConfig::default();
        for seq in 0..2 {
            let body = remote_write(1000, 10, 0, seq, 1_780_000_000_000);
            let raw = remote_write::decompress(&body, 1 << 24).unwrap();
            let req = WriteRequest::decode(raw.as_slice()).unwrap();
            let b = remote_write::convert(&req, &mut state, &cfg);
            // The very first timestamp of each series is only a reference.
            assert_eq!(b.samples.len(), if seq == 0 { 990 } else { 1000 });
            assert!(b
                .samples
                .iter()
                .all(|s| s.metric("p95_latency_ms").is_some()));
        }
    }
}
