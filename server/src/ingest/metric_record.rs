//! Reads one metric record's JSON text straight into a [`Sample`], without building a
//! `serde_json::Value` tree first: under load that tree (a map node and a string per
//! field) cost more than everything else the parser does.
//!
//! The rules are those of [`Sample::from_json`], and so are the errors, field for field:
//! the tests below hold the two side by side. Keys are compared in the order
//! `serde_json`'s map would give them (sorted, the last of duplicate keys winning), so the
//! first bad metric named is the same one.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use watchdog_core::{Error, Sample, Timestamp};

/// Parses one JSON object as a metric record.
///
/// # Errors
/// [`Error::Record`] with field `(json)` for invalid JSON, else as [`Sample::from_json`].
pub fn parse_sample(text: &str) -> Result<Sample, Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top = de
        .deserialize_any(TopVisitor)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|e| {
            Error::record(
                "(json)",
                format!("invalid JSON at column {}: {e}", e.column()),
            )
        })?;
    match top {
        Top::Object(fields) => fields.into_sample(),
        Top::Other(kind) => Err(Error::record(
            "(record)",
            format!("expected a JSON object, got {kind}"),
        )),
    }
}

/// A JSON value reduced to what the metric rules look at.
#[derive(Debug)]
enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    Num(f64),
    /// Anything else, by its kind's name (`a boolean`, `an array`, `an object`).
    Other(&'static str),
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Str(_) => "a string",
            Scalar::Num(_) => "a number",
            Scalar::Other(k) => k,
        }
    }
}

#[derive(Debug)]
enum Top<'a> {
    Object(Fields<'a>),
    Other(&'static str),
}

/// The fields of one record, as read.
#[derive(Debug, Default)]
struct Fields<'a> {
    timestamp: Option<Scalar<'a>>,
    time: Option<Scalar<'a>>,
    ts: Option<Scalar<'a>>,
    service: Option<Scalar<'a>>,
    environment: Option<Scalar<'a>>,
    env: Option<Scalar<'a>>,
    version: Option<Scalar<'a>>,
    /// Every non-label field, in the order received.
    others: Vec<(Cow<'a, str>, Scalar<'a>)>,
}

fn label(value: Option<&Scalar<'_>>, key: &str) -> Result<String, Error> {
    match value {
        None | Some(Scalar::Null) => Ok(String::new()),
        Some(Scalar::Str(s)) => Ok(s.trim().to_string()),
        Some(other) => Err(Error::record(
            key,
            format!("expected a string, got {}", other.kind()),
        )),
    }
}

fn is_non_finite_text(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "nan" | "inf" | "+inf" | "-inf" | "infinity" | "-infinity"
    )
}

impl Fields<'_> {
    fn into_sample(mut self) -> Result<Sample, Error> {
        let (key, value) = [
            ("timestamp", &self.timestamp),
            ("time", &self.time),
            ("ts", &self.ts),
        ]
        .into_iter()
        .find_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .ok_or_else(|| Error::record("timestamp", "missing"))?;
        let timestamp = match value {
            Scalar::Str(s) => Timestamp::parse(s).map_err(|m| Error::record(key, m))?,
            Scalar::Num(secs) => Timestamp::from_epoch_number(*secs),
            other => {
                return Err(Error::record(
                    key,
                    format!("expected an RFC 3339 string, got {}", other.kind()),
                ))
            }
        };
        let service = label(self.service.as_ref(), "service")?;
        let environment = match &self.environment {
            Some(v) => label(Some(v), "environment")?,
            None => label(self.env.as_ref(), "env")?,
        };
        // A numeric version (`"version": 3`) is a version too, not a metric.
        let version = match &self.version {
            Some(Scalar::Num(x)) if x.fract() == 0.0 && x.abs() < 1e15 => {
                Some(format!("{}", *x as i64))
            }
            Some(Scalar::Num(x)) => Some(x.to_string()),
            v => Some(label(v.as_ref(), "version")?).filter(|v| !v.is_empty()),
        };
        // serde_json's map order: sorted by key, the last duplicate winning.
        self.others.sort_by(|a, b| a.0.cmp(&b.0));
        let mut metrics = Vec::with_capacity(self.others.len());
        let mut fields = self.others.into_iter().peekable();
        while let Some((name, value)) = fields.next() {
            if fields.peek().is_some_and(|(next, _)| *next == name) {
                continue;
            }
            match value {
                // serde_json refuses numbers it cannot represent, so a number here is
                // finite; the check keeps that an explicit rule rather than an accident.
                Scalar::Num(x) if x.is_finite() => metrics.push((name.into_owned(), x)),
                Scalar::Num(x) => {
                    return Err(Error::record(
                        name.as_ref(),
                        format!("not a finite number: {x}"),
                    ))
                }
                Scalar::Str(s) if is_non_finite_text(&s) => {
                    return Err(Error::record(
                        name.as_ref(),
                        format!("not a finite number: {s:?}"),
                    ))
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
        Ok(Sample {
            version,
            timestamp,
            service,
            environment,
            metrics,
        })
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let slot = match key.0.as_ref() {
                "timestamp" => &mut fields.timestamp,
                "time" => &mut fields.time,
                "ts" => &mut fields.ts,
                "service" => &mut fields.service,
                "environment" => &mut fields.environment,
                "env" => &mut fields.env,
                // Labels the engine does not use.
                "version" => &mut fields.version,
                "deploy_id" | "host" | "instance" => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                _ => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    fields.others.push((key.0, value));
                    continue;
                }
            };
            *slot = Some(map.next_value_seed(ScalarSeed)?);
        }
        Ok(Top::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other("an array"))
    }

    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other("a string"))
    }
}

/// An object key, borrowed from the text unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads any JSON value as a [`Scalar`], skipping the insides of arrays and objects.
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other("a boolean"))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Num(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Num(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Num(v))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: parse to a `Value`, then the core's rules.
    fn reference(text: &str) -> Result<Sample, Error> {
        Sample::from_json_line(text)
    }

    fn same(text: &str) {
        let ours = parse_sample(text);
        let theirs = reference(text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => {
                assert_eq!(a.field(), b.field(), "{text}: {a} vs {b}");
                assert_eq!(a.to_string(), b.to_string(), "{text}");
            }
            _ => panic!("{text}: ours {ours:?}, reference {theirs:?}"),
        }
    }

    #[test]
    fn agrees_with_the_core_on_valid_records() {
        for text in [
            r#"{"timestamp":"2026-03-30T19:30:00Z","service":"api","environment":"prod","error_rate":0.01,"p95_latency_ms":180.5,"request_rate":1200}"#,
            r#"{"time":"2026-03-30 19:30:00","env":" staging ","latency":-3,"big":18446744073709551615}"#,
            r#"{"ts":1774899000.25,"z":1,"a":2,"m":3,"host":"h1","version":"v2","deploy_id":"d","instance":{"x":1}}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","service":null,"x":null,"y":true,"s":"text","arr":[1,2],"obj":{"a":1},"v":1}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","a":1,"a":2,"b":3}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","environment":"prod","env":"other","v":1}"#,
            r#"{"ts":1,"timestamp":"2026-03-30T19:30:00Z","v":1}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","sp\u00e9cial \"q\"":1.5e3}"#,
            " {\"timestamp\":\"2026-03-30T19:30:00+02:00\",\"v\":0} ",
        ] {
            same(text);
        }
    }

    #[test]
    fn agrees_with_the_core_on_errors() {
        for text in [
            r#"{"error_rate":0.1}"#,
            r#"{"timestamp":"bad","error_rate":0.1}"#,
            r#"{"timestamp":true,"error_rate":0.1}"#,
            r#"{"timestamp":null,"error_rate":0.1}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","p95_latency_ms":"nan"}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","b":" -Infinity ","a":"inf"}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","service":3,"a":1}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","env":[],"a":1}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","environment":{},"env":"x","a":1}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","service":"api"}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","a":1e400}"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","a":1"#,
            r#"{"timestamp":"2026-03-30T19:30:00Z","a":1} x"#,
            r#"[1,2]"#,
            r#"42"#,
            r#""text""#,
            r#"null"#,
            r#"hello"#,
        ] {
            same(text);
        }
    }
}
