//! OTLP log records → WatchDog log events.
//!
//! - time: `time_unix_nano`, or `observed_time_unix_nano` when the source had no time;
//! - level: `severity_number` by its ranges (1–8 debug and trace, 9–12 info, 13–16 warn,
//!   17–20 error, 21–24 fatal), else `severity_text` read like any log level, else info;
//! - message: the body (a string as it is; other values as JSON);
//! - `trace_id` and `span_id` (hex) are kept in the stored record beside the message, so
//!   that an error signature can be followed to the traces that produced it.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyVal;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::json;
use watchdog_core::{LogEvent, LogLevel, Timestamp};

use super::{nanos_to_ms, ResourceLabels};
use crate::ingest::versions::{note, Sighting};

/// What one request became.
#[derive(Debug, Default)]
pub struct LogsBatch {
    /// Each event with the JSON record stored for it.
    pub events: Vec<(LogEvent, String)>,
    /// The versions seen, for deploys.
    pub sightings: Vec<Sighting>,
    /// Records in the request.
    pub records: usize,
    /// Records rejected as invalid.
    pub rejected: usize,
    /// The first rejection's reason.
    pub first_error: Option<String>,
}

/// The WatchDog level of an OTLP severity.
pub fn level(number: i32, text: &str) -> LogLevel {
    match number {
        1..=8 => LogLevel::Debug,
        9..=12 => LogLevel::Info,
        13..=16 => LogLevel::Warn,
        17..=20 => LogLevel::Error,
        21..=24 => LogLevel::Fatal,
        _ => LogLevel::parse(text).unwrap_or(LogLevel::Info),
    }
}

fn body_text(r: &LogRecord) -> Option<String> {
    let v = r.body.as_ref()?.value.as_ref()?;
    Some(match v {
        AnyVal::StringValue(s) => s.clone(),
        AnyVal::IntValue(i) => i.to_string(),
        AnyVal::DoubleValue(d) => d.to_string(),
        AnyVal::BoolValue(b) => b.to_string(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    })
}

fn hex(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| hex::encode(bytes))
}

/// Converts a request.
pub fn convert(req: &ExportLogsServiceRequest, version_attribute: &str) -> LogsBatch {
    let mut batch = LogsBatch::default();
    for (ri, rl) in req.resource_logs.iter().enumerate() {
        let labels = ResourceLabels::of(rl.resource.as_ref(), version_attribute);
        let mut earliest: Option<i64> = None;
        let mut index = 0usize;
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                batch.records += 1;
                let at = format!("resource {ri}, log record {index}");
                index += 1;
                let Some(ts) = nanos_to_ms(r.time_unix_nano)
                    .or_else(|| nanos_to_ms(r.observed_time_unix_nano))
                else {
                    batch.rejected += 1;
                    batch.first_error.get_or_insert(format!(
                        "{at}: time_unix_nano and observed_time_unix_nano are both 0"
                    ));
                    continue;
                };
                let message = match body_text(r) {
                    Some(m) if !m.trim().is_empty() => m,
                    _ => {
                        batch.rejected += 1;
                        batch
                            .first_error
                            .get_or_insert(format!("{at}: body is empty"));
                        continue;
                    }
                };
                earliest = Some(earliest.map_or(ts, |e| e.min(ts)));
                let event = LogEvent {
                    timestamp: Timestamp(ts),
                    service: labels.service.clone(),
                    environment: labels.environment.clone(),
                    level: level(r.severity_number, &r.severity_text),
                    message,
                };
                let mut raw = json!({
                    "timestamp": event.timestamp.to_rfc3339(),
                    "service": event.service,
                    "environment": event.environment,
                    "level": event.level.as_str(),
                    "message": event.message,
                    "source": "otlp",
                });
                if let Some(obj) = raw.as_object_mut() {
                    if let Some(t) = hex(&r.trace_id) {
                        obj.insert("trace_id".into(), t.into());
                    }
                    if let Some(s) = hex(&r.span_id) {
                        obj.insert("span_id".into(), s.into());
                    }
                    if !labels.version.is_empty() {
                        obj.insert("version".into(), labels.version.clone().into());
                    }
                }
                batch.events.push((event, raw.to_string()));
            }
        }
        if let Some(ts) = earliest {
            note(
                &mut batch.sightings,
                &labels.service,
                &labels.environment,
                &labels.version,
                ts,
            );
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    #[test]
    fn severity_ranges() {
        assert_eq!(level(1, ""), LogLevel::Debug);
        assert_eq!(level(9, ""), LogLevel::Info);
        assert_eq!(level(13, ""), LogLevel::Warn);
        assert_eq!(level(17, ""), LogLevel::Error);
        assert_eq!(level(24, ""), LogLevel::Fatal);
        assert_eq!(level(0, "ERROR"), LogLevel::Error);
        assert_eq!(level(0, ""), LogLevel::Info);
    }

    #[test]
    fn records_keep_trace_ids_and_bad_ones_are_named() {
        let rec = |t: u64, body: &str| LogRecord {
            time_unix_nano: t,
            severity_number: 17,
            body: Some(AnyValue {
                value: Some(AnyVal::StringValue(body.into())),
            }),
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(AnyVal::StringValue("checkout".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        rec(1_780_000_000_000_000_000, "payment gateway timeout"),
                        rec(0, "no time"),
                        rec(1_780_000_001_000_000_000, ""),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let b = convert(&req, "service.version");
        assert_eq!((b.records, b.rejected, b.events.len()), (3, 2, 1));
        assert!(b.first_error.unwrap().contains("log record 1"));
        let (event, raw) = &b.events[0];
        assert_eq!(event.level, LogLevel::Error);
        assert_eq!(event.service, "checkout");
        let raw: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(raw["trace_id"], "ab".repeat(16));
        assert_eq!(raw["span_id"], "cd".repeat(8));
        // The stored record reads back as the same event.
        assert_eq!(&LogEvent::from_json(&raw).unwrap(), event);
    }
}
