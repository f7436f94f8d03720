//! Event time. The core never reads a clock: every timestamp comes from the data.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in event time, as milliseconds since the Unix epoch (UTC).
///
/// Serialized as an RFC 3339 string (`2026-03-30T19:30:00Z`), which is what every file
/// format and API of WatchDog uses on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Builds a timestamp from whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs * 1000)
    }

    /// An instant from a number since the epoch: seconds, or milliseconds when the number
    /// is 1e11 or more (in seconds that would be after the year 5000, so a number that
    /// large can only be milliseconds, as JavaScript and many exporters write them).
    pub fn from_epoch_number(x: f64) -> Self {
        if x.abs() >= 1e11 {
            Timestamp(x.round() as i64)
        } else {
            Timestamp((x * 1000.0).round() as i64)
        }
    }

    /// This instant moved by `secs` seconds (negative moves back).
    pub fn add_secs(self, secs: f64) -> Self {
        Timestamp(self.0 + (secs * 1000.0).round() as i64)
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }

    /// Parses RFC 3339 (`2026-03-30T19:30:00Z`, offsets and fractions allowed), a bare
    /// `YYYY-MM-DDTHH:MM:SS` taken as UTC, or a number of seconds since the epoch.
    ///
    /// # Errors
    /// Returns a message saying what was expected when the text is none of these.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
            return Ok(Timestamp(dt.timestamp_millis()));
        }
        // A space instead of the `T` is common in logs and CSV exports.
        if t.len() > 10 && t.as_bytes()[10] == b' ' {
            let mut fixed = t.to_string();
            fixed.replace_range(10..11, "T");
            if let Ok(dt) = DateTime::parse_from_rfc3339(&fixed) {
                return Ok(Timestamp(dt.timestamp_millis()));
            }
            if let Ok(ndt) = chrono::NaiveDateTime::parse_from_str(&fixed, "%Y-%m-%dT%H:%M:%S%.f") {
                return Ok(Timestamp(ndt.and_utc().timestamp_millis()));
            }
        }
        if let Ok(ndt) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
            return Ok(Timestamp(ndt.and_utc().timestamp_millis()));
        }
        if let Ok(secs) = t.parse::<f64>() {
            if secs.is_finite() {
                return Ok(Timestamp::from_epoch_number(secs));
            }
        }
        Err(format!(
            "expected an RFC 3339 timestamp like 2026-03-30T19:30:00Z, got {t:?}"
        ))
    }

    /// RFC 3339 text in UTC with a `Z`, with milliseconds only when they are not zero.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None => format!("{}ms", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_rfc3339() {
        let t = Timestamp::parse("2026-03-30T19:30:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-30T19:30:00Z");
        let with_offset = Timestamp::parse("2026-03-30T21:30:00.250+02:00").unwrap();
        assert_eq!(with_offset.to_rfc3339(), "2026-03-30T19:30:00.250Z");
        assert_eq!(Timestamp::parse("2026-03-30 19:30:00").unwrap(), t);
        assert_eq!(Timestamp::parse("1774899000").unwrap(), t);
        assert_eq!(Timestamp::parse("1774899000000").unwrap(), t);
    }

    #[test]
    fn rejects_garbage_with_the_value_in_the_message() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.contains("\"yesterday\""), "{err}");
    }
}
