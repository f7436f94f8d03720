//! What the engine consumes: metric samples, deploy events and log events, and how they
//! are read from the JSON records of `watchdog replay` and the HTTP API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::time::Timestamp;

/// One observation of a service in an environment at an instant: any number of named
/// numeric metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Event time of the observation.
    pub timestamp: Timestamp,
    /// Service name; empty when the record had none (matches any deploy).
    #[serde(default)]
    pub service: String,
    /// Environment name; empty when the record had none (matches any deploy).
    #[serde(default)]
    pub environment: String,
    /// Metric name and value pairs, all finite.
    pub metrics: Vec<(String, f64)>,
    /// The version that produced it (an image tag, a rollout's pod-template hash), or a
    /// group name such as `canary` or `stable`; `None` when the record had none. With
    /// samples of two versions over the same time the deploy is also judged canary
    /// against stable (see [`crate::canary`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A deploy of a service to an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// When the new version started taking traffic.
    pub timestamp: Timestamp,
    /// The release's id, e.g. `v1.4.2` or a commit sha.
    pub deploy_id: String,
    /// Service name; empty when the record had none.
    #[serde(default)]
    pub service: String,
    /// Environment name; empty when the record had none.
    #[serde(default)]
    pub environment: String,
}

/// Severity of a log event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Trace and debug output.
    Debug,
    /// Informational.
    Info,
    /// Warnings.
    Warn,
    /// Errors.
    Error,
    /// Fatal, critical, panic, emergency.
    Fatal,
}

impl LogLevel {
    /// Reads the usual spellings (`ERROR`, `err`, `E`, `warning`, `crit`, …); unknown
    /// text is `None`.
    pub fn parse(text: &str) -> Option<LogLevel> {
        let t = text
            .trim()
            .trim_matches(|c| c == '[' || c == ']' || c == ':');
        Some(match t.to_ascii_lowercase().as_str() {
            "trace" | "debug" | "dbg" | "d" | "t" | "verbose" | "fine" | "finer" | "finest" => {
                LogLevel::Debug
            }
            "info" | "information" | "notice" | "i" | "inf" => LogLevel::Info,
            "warn" | "warning" | "w" | "wrn" => LogLevel::Warn,
            "error" | "err" | "e" | "severe" | "eror" => LogLevel::Error,
            "fatal" | "critical" | "crit" | "panic" | "emerg" | "emergency" | "alert" | "f" => {
                LogLevel::Fatal
            }
            _ => return None,
        })
    }

    /// Error or worse.
    pub fn is_error(self) -> bool {
        self >= LogLevel::Error
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }
}

/// One log line of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Event time.
    pub timestamp: Timestamp,
    /// Service name; empty when unknown.
    #[serde(default)]
    pub service: String,
    /// Environment name; empty when unknown.
    #[serde(default)]
    pub environment: String,
    /// Severity.
    pub level: LogLevel,
    /// The message text.
    pub message: String,
}

fn object(value: &Value) -> Result<&Map<String, Value>, Error> {
    value.as_object().ok_or_else(|| {
        Error::record(
            "(record)",
            format!("expected a JSON object, got {}", kind(value)),
        )
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn timestamp_field(obj: &Map<String, Value>) -> Result<Timestamp, Error> {
    let key = ["timestamp", "time", "ts"]
        .into_iter()
        .find(|k| obj.contains_key(*k))
        .ok_or_else(|| Error::record("timestamp", "missing"))?;
    match &obj[key] {
        Value::String(s) => Timestamp::parse(s).map_err(|m| Error::record(key, m)),
        Value::Number(n) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Timestamp::from_epoch_number)
            .ok_or_else(|| Error::record(key, format!("not a usable number: {n}"))),
        other => Err(Error::record(
            key,
            format!("expected an RFC 3339 string, got {}", kind(other)),
        )),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<String, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(other) => Err(Error::record(
            key,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

/// The `service` and `environment` (or `env`) labels of a record, empty when absent.
fn labels(obj: &Map<String, Value>) -> Result<(String, String), Error> {
    let service = optional_string(obj, "service")?;
    let environment = if obj.contains_key("environment") {
        optional_string(obj, "environment")?
    } else {
        optional_string(obj, "env")?
    };
    Ok((service, environment))
}

/// Fields of a metric record that are labels, not metrics.
const LABEL_FIELDS: &[&str] = &[
    "timestamp",
    "time",
    "ts",
    "service",
    "environment",
    "env",
    "deploy_id",
    "version",
    "host",
    "instance",
];

impl Sample {
    /// Reads a metric record: `timestamp` (RFC 3339 or epoch seconds), optional `service`
    /// and `environment`, and every other numeric field as a metric. Non-numeric fields
    /// other than the labels are ignored; `null` metric values are skipped (a missing
    /// reading), but NaN or infinite values are errors.
    ///
    /// # Errors
    /// [`Error::Record`] naming the field: missing or unparsable timestamp, a label of the
    /// wrong type, a non-finite metric, or a record with no metric at all.
    pub fn from_json(value: &Value) -> Result<Sample, Error> {
        let obj = object(value)?;
        let timestamp = timestamp_field(obj)?;
        let (service, environment) = labels(obj)?;
        let mut metrics = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            if LABEL_FIELDS.contains(&k.as_str()) {
                continue;
            }
            match v {
                Value::Number(n) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    if !x.is_finite() {
                        return Err(Error::record(
                            k.as_str(),
                            format!("not a finite number: {n}"),
                        ));
                    }
                    metrics.push((k.clone(), x));
                }
                // serde_json cannot carry NaN as a number; producers that write it as a
                // string get a clear error rather than a silent drop.
                Value::String(s) if is_non_finite_text(s) => {
                    return Err(Error::record(
                        k.as_str(),
                        format!("not a finite number: {s:?}"),
                    ));
                }
                _ => {}
            }
        }
        if metrics.is_empty() {
            return Err(Error::record(
                "(metrics)",
                "no numeric metric field; expected e.g. \"error_rate\": 0.02",
            ));
        }
        // A numeric version (`"version": 3`) is a version too, not a metric.
        let version = match obj.get("version") {
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => Some(optional_string(obj, "version")?).filter(|v| !v.is_empty()),
        };
        Ok(Sample {
            version,
            timestamp,
            service,
            environment,
            metrics,
        })
    }

    /// Parses one line of METRICS.jsonl.
    ///
    /// # Errors
    /// As [`Sample::from_json`], plus invalid JSON.
    pub fn from_json_line(line: &str) -> Result<Sample, Error> {
        Sample::from_json(&parse_line(line)?)
    }

    /// Value of a metric by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

fn is_non_finite_text(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "nan" | "inf" | "+inf" | "-inf" | "infinity" | "-infinity"
    )
}

/// Parses one line of JSON, mapping syntax errors to a [`Error::Record`] with the column.
///
/// # Errors
/// [`Error::Record`] with field `(json)` when the text is not valid JSON.
pub fn parse_line(line: &str) -> Result<Value, Error> {
    serde_json::from_str(line).map_err(|e| {
        Error::record(
            "(json)",
            format!("invalid JSON at column {}: {e}", e.column()),
        )
    })
}

impl Deploy {
    /// Reads a deploy record: `timestamp`, `deploy_id` (or `version`/`id`), optional
    /// `service` and `environment`.
    ///
    /// # Errors
    /// [`Error::Record`] naming the missing or malformed field.
    pub fn from_json(value: &Value) -> Result<Deploy, Error> {
        let obj = object(value)?;
        let timestamp = timestamp_field(obj)?;
        let id_key = ["deploy_id", "version", "id"]
            .into_iter()
            .find(|k| obj.contains_key(*k))
            .ok_or_else(|| Error::record("deploy_id", "missing"))?;
        let deploy_id = match &obj[id_key] {
            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(_) => return Err(Error::record(id_key, "is empty")),
            other => {
                return Err(Error::record(
                    id_key,
                    format!("expected a string, got {}", kind(other)),
                ))
            }
        };
        let (service, environment) = labels(obj)?;
        Ok(Deploy {
            timestamp,
            deploy_id,
            service,
            environment,
        })
    }

    /// Parses one line of DEPLOYS.jsonl.
    ///
    /// # Errors
    /// As [`Deploy::from_json`], plus invalid JSON.
    pub fn from_json_line(line: &str) -> Result<Deploy, Error> {
        Deploy::from_json(&parse_line(line)?)
    }
}

impl LogEvent {
    /// Reads a log record: `timestamp`, `message` (or `msg`/`log`), optional `level`
    /// (default info), `service`, `environment`.
    ///
    /// # Errors
    /// [`Error::Record`] naming the missing or malformed field.
    pub fn from_json(value: &Value) -> Result<LogEvent, Error> {
        let obj = object(value)?;
        let timestamp = timestamp_field(obj)?;
        let msg_key = ["message", "msg", "log"]
            .into_iter()
            .find(|k| obj.contains_key(*k))
            .ok_or_else(|| Error::record("message", "missing"))?;
        let message = match &obj[msg_key] {
            Value::String(s) => s.clone(),
            other => {
                return Err(Error::record(
                    msg_key,
                    format!("expected a string, got {}", kind(other)),
                ))
            }
        };
        let level = match obj.get("level").or_else(|| obj.get("severity")) {
            None | Some(Value::Null) => LogLevel::Info,
            Some(Value::String(s)) => LogLevel::parse(s).ok_or_else(|| {
                Error::record(
                    "level",
                    format!("unknown level {s:?}; expected debug, info, warn, error or fatal"),
                )
            })?,
            Some(other) => {
                return Err(Error::record(
                    "level",
                    format!("expected a string, got {}", kind(other)),
                ))
            }
        };
        let (service, environment) = labels(obj)?;
        Ok(LogEvent {
            timestamp,
            service,
            environment,
            level,
            message,
        })
    }

    /// Parses one line of LOGS.jsonl.
    ///
    /// # Errors
    /// As [`LogEvent::from_json`], plus invalid JSON.
    pub fn from_json_line(line: &str) -> Result<LogEvent, Error> {
        LogEvent::from_json(&parse_line(line)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_single_service_format() {
        let s = Sample::from_json_line(
            r#"{"timestamp":"2026-03-30T19:30:00Z","error_rate":0.02,"p95_latency_ms":190.0,"request_rate":1200.0}"#,
        )
        .unwrap();
        assert_eq!(s.service, "");
        assert_eq!(s.metric("p95_latency_ms"), Some(190.0));
        assert_eq!(s.metrics.len(), 3);
    }

    #[test]
    fn reads_labels_and_unknown_metrics() {
        let s = Sample::from_json_line(
            r#"{"timestamp":"2026-03-30T19:30:00Z","service":"checkout","environment":"production","queue_depth":7,"note":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            (s.service.as_str(), s.environment.as_str()),
            ("checkout", "production")
        );
        assert_eq!(s.metrics, vec![("queue_depth".to_string(), 7.0)]);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Sample::from_json_line(r#"{"error_rate":0.1}"#).unwrap_err();
        assert_eq!(e.field(), Some("timestamp"));
        let e = Sample::from_json_line(r#"{"timestamp":"nope","error_rate":0.1}"#).unwrap_err();
        assert_eq!(e.field(), Some("timestamp"));
        let e =
            Sample::from_json_line(r#"{"timestamp":"2026-03-30T19:30:00Z","error_rate":"NaN"}"#)
                .unwrap_err();
        assert_eq!(e.field(), Some("error_rate"));
        let e = Sample::from_json_line(r#"{"timestamp":"2026-03-30T19:30:00Z""#).unwrap_err();
        assert_eq!(e.field(), Some("(json)"));
        let e = Deploy::from_json_line(r#"{"timestamp":"2026-03-30T19:30:00Z"}"#).unwrap_err();
        assert_eq!(e.field(), Some("deploy_id"));
    }

    #[test]
    fn reads_log_events() {
        let l = LogEvent::from_json_line(
            r#"{"timestamp":"2026-03-30T19:30:00Z","level":"ERROR","msg":"db timeout after 30 ms"}"#,
        )
        .unwrap();
        assert_eq!(l.level, LogLevel::Error);
        assert_eq!(l.message, "db timeout after 30 ms");
    }
}
