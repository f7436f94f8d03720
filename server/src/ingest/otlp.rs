//! OTLP/HTTP: the OpenTelemetry protocol's `ExportMetricsServiceRequest` and
//! `ExportLogsServiceRequest`, in protobuf (`application/x-protobuf`) or JSON
//! (`application/json`), optionally gzip-compressed. The messages are the official ones,
//! generated from the OpenTelemetry protos by the `opentelemetry-proto` crate (prost for
//! the binary encoding, serde for the JSON one), so no decoder here is hand-written.
//!
//! How OTLP maps onto WatchDog (docs/otlp.md):
//! - resource attributes: `service.name` → service, `deployment.environment.name` (or
//!   the older `deployment.environment`) → environment, `service.version` → the version
//!   that [`crate::ingest::versions`] turns into deploys;
//! - metrics: see [`metrics`]; logs: see [`logs`].

pub mod logs;
pub mod metrics;
pub mod series;

use std::io::Read;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyVal;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

/// `[otlp]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// A change of the version attribute is a deploy (default true).
    pub version_deploys: bool,
    /// The resource attribute holding the version (default `service.version`).
    pub version_attribute: String,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            version_deploys: true,
            version_attribute: "service.version".into(),
        }
    }
}

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (the OTLP JSON mapping: lowerCamelCase keys, hex ids).
    Json,
}

impl Encoding {
    /// The encoding named by a `Content-Type` header.
    ///
    /// # Errors
    /// Any other content type, named.
    pub fn from_content_type(value: Option<&str>) -> Result<Encoding, String> {
        let v = value.unwrap_or("");
        let media = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            "" => Err("missing Content-Type: OTLP/HTTP needs application/x-protobuf or application/json".into()),
            _ => Err(format!(
                "unsupported Content-Type {v:?}: OTLP/HTTP needs application/x-protobuf or application/json"
            )),
        }
    }

    /// The `Content-Type` of responses in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit once decompressed (413).
    TooLarge(String),
    /// Not decodable (400).
    Invalid(String),
    /// An encoding we do not speak (415).
    Unsupported(String),
}

/// Undoes `Content-Encoding` (`gzip` or none), refusing to inflate past `limit` bytes so
/// that a small compressed body cannot expand without bound.
///
/// # Errors
/// [`BodyError`] naming the problem.
pub fn decompress(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    match content_encoding
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    BodyError::Invalid(format!("gzip body could not be decompressed: {e}"))
                })?;
            if out.len() > limit {
                return Err(BodyError::TooLarge(format!(
                    "gzip body inflates past max_body_bytes ({limit} bytes); send smaller batches"
                )));
            }
            Ok(out)
        }
        Some(other) => Err(BodyError::Unsupported(format!(
            "unsupported Content-Encoding {other:?}: use gzip or none"
        ))),
    }
}

/// Decodes one OTLP message in the given encoding; `what` names it in errors.
///
/// # Errors
/// [`BodyError::Invalid`] with the decoder's message (for JSON, its line and column).
pub fn decode<T>(body: &[u8], encoding: Encoding, what: &str) -> Result<T, BodyError>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    if body.is_empty() {
        return Err(BodyError::Invalid(format!(
            "empty body: expected an OTLP {what}"
        )));
    }
    match encoding {
        Encoding::Protobuf => T::decode(body)
            .map_err(|e| BodyError::Invalid(format!("body is not a valid protobuf {what}: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| BodyError::Invalid(format!("body is not a valid OTLP JSON {what}: {e}"))),
    }
}

/// Who sent the data: the labels WatchDog files it under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceLabels {
    /// `service.name`.
    pub service: String,
    /// `deployment.environment.name` or `deployment.environment`.
    pub environment: String,
    /// The configured version attribute.
    pub version: String,
}

impl ResourceLabels {
    /// Reads the labels from a resource.
    pub fn of(resource: Option<&Resource>, version_attribute: &str) -> ResourceLabels {
        let attrs = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        ResourceLabels {
            service: attr_text(attrs, "service.name").unwrap_or_default(),
            environment: attr_text(attrs, "deployment.environment.name")
                .or_else(|| attr_text(attrs, "deployment.environment"))
                .unwrap_or_default(),
            version: attr_text(attrs, version_attribute).unwrap_or_default(),
        }
    }
}

/// An attribute's value.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyVal> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// An attribute as text: strings as they are, numbers and booleans printed.
pub fn attr_text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        AnyVal::StringValue(s) => Some(s.trim().to_string()),
        AnyVal::IntValue(i) => Some(i.to_string()),
        AnyVal::DoubleValue(d) => Some(d.to_string()),
        AnyVal::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An attribute as an integer (an integer, or text holding one: some SDKs send status
/// codes as strings).
pub fn attr_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        AnyVal::IntValue(i) => Some(*i),
        AnyVal::StringValue(s) => s.trim().parse().ok(),
        AnyVal::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

/// Feeds attributes into a hasher (the identity of a series).
pub fn hash_attrs(attrs: &[KeyValue], h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    for kv in attrs {
        kv.key.hash(h);
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            None => 0u8.hash(h),
            Some(AnyVal::StringValue(s)) => (1u8, s).hash(h),
            Some(AnyVal::IntValue(i)) => (2u8, i).hash(h),
            Some(AnyVal::DoubleValue(d)) => (3u8, d.to_bits()).hash(h),
            Some(AnyVal::BoolValue(b)) => (4u8, b).hash(h),
            Some(other) => (5u8, format!("{other:?}")).hash(h),
        }
    }
}

/// Nanoseconds since the epoch to milliseconds, `None` for 0 (unset) or out of range.
pub fn nanos_to_ms(ns: u64) -> Option<i64> {
    (ns > 0)
        .then_some((ns / 1_000_000) as i64)
        .filter(|ms| *ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type(Some("application/x-protobuf")),
            Ok(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8")),
            Ok(Encoding::Json)
        );
        let e = Encoding::from_content_type(Some("text/plain")).unwrap_err();
        assert!(e.contains("text/plain"), "{e}");
        assert!(Encoding::from_content_type(None).is_err());
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decompress(&gz, Some("gzip"), 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            decompress(&gz, Some("gzip"), 9_999),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            decompress(&gz[..gz.len() / 2], Some("gzip"), 10_000),
            Err(BodyError::Invalid(_))
        ));
        assert!(matches!(
            decompress(&gz, Some("br"), 10_000),
            Err(BodyError::Unsupported(_))
        ));
    }
}
