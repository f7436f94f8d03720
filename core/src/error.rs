//! Errors of the detection core.

use thiserror::Error;

/// Everything that can go wrong in `watchdog-core`. Messages are lowercase, name the value
/// that was wrong, and say what would be accepted instead.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A configuration value is out of its range.
    #[error("invalid configuration: {field} {message}")]
    Config {
        /// The configuration key, e.g. `false_alarm_rate`.
        field: String,
        /// What was wrong, with the offending value.
        message: String,
    },
    /// A record (metric sample, deploy or log event) is malformed.
    #[error("field `{field}`: {message}")]
    Record {
        /// The field at fault, e.g. `timestamp` or `p95_latency_ms`.
        field: String,
        /// What was wrong, with the offending value.
        message: String,
    },
    /// A scenario name that is not in the catalogue.
    #[error("unknown scenario {name:?}; known scenarios: {known}")]
    UnknownScenario {
        /// The name asked for.
        name: String,
        /// The catalogue's names, comma separated.
        known: String,
    },
}

impl Error {
    /// A record error for `field`.
    pub fn record(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Record {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A configuration error for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field this error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Config { field, .. } | Error::Record { field, .. } => Some(field),
            Error::UnknownScenario { .. } => None,
        }
    }
}
