//! Ingestion bodies: a JSON array of records or NDJSON (one record per line). Every item
//! is validated on its own; a bad item is reported with its index, line and field and
//! does not stop the others.

use serde::Serialize;
use serde_json::value::RawValue;

/// Why one item was not accepted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejection {
    /// Position among the items (0-based).
    pub index: usize,
    /// Line in the body (1-based).
    pub line: usize,
    /// The field at fault, e.g. `timestamp`, `p95_latency_ms`, `(json)`.
    pub field: String,
    /// What was wrong.
    pub error: String,
}

/// One accepted item: the parsed record and its JSON text as received.
#[derive(Debug)]
pub struct Item<T> {
    /// The record.
    pub record: T,
    /// The JSON text (stored, re-parsed on restart).
    pub raw: String,
    /// Position among the items of its body (0-based), for rejections made later.
    pub index: usize,
    /// Line in the body (1-based; 0 when the record did not come from a body).
    pub line: usize,
}

/// The outcome of parsing a body.
#[derive(Debug)]
pub struct Parsed<T> {
    /// Items that passed validation, in order.
    pub items: Vec<Item<T>>,
    /// Items that did not.
    pub rejected: Vec<Rejection>,
}

/// A body that is not JSON at all (400).
#[derive(Debug, PartialEq)]
pub struct NotJson(pub String);

fn line_of(body: &str, offset: usize) -> usize {
    1 + body.as_bytes()[..offset.min(body.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn reject(index: usize, line: usize, err: watchdog_core::Error) -> Rejection {
    Rejection {
        index,
        line,
        field: err.field().unwrap_or("(record)").to_string(),
        error: match err {
            watchdog_core::Error::Record { message, .. } => message,
            other => other.to_string(),
        },
    }
}

/// Parses `body` as a JSON array or NDJSON and validates each item with `parse`, which
/// is given one item's JSON text (e.g. `Deploy::from_json_line`) and reports invalid JSON
/// as field `(json)`.
///
/// # Errors
/// [`NotJson`] when the body is empty, not UTF-8, an array that is not valid JSON, or
/// NDJSON of which no line is JSON.
pub fn parse_body<T>(
    body: &[u8],
    parse: impl Fn(&str) -> Result<T, watchdog_core::Error>,
) -> Result<Parsed<T>, NotJson> {
    // A byte-order mark (some Windows tools write one) is not part of the first record.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            let start = String::from_utf8_lossy(&body[..body.len().min(64)]);
            if start.trim_start().starts_with('[') {
                return Err(NotJson(format!(
                    "body is not UTF-8 text (byte {}): a JSON array must be valid UTF-8 throughout",
                    e.valid_up_to()
                )));
            }
            // NDJSON: only the lines with bad bytes are rejected.
            return parse_lines(body, parse);
        }
    };
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(NotJson(
            "empty body: expected a JSON array of records or NDJSON".into(),
        ));
    }
    let mut items = Vec::new();
    let mut rejected = Vec::new();
    if trimmed.starts_with('[') {
        let raws: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
            NotJson(format!(
                "body is not a valid JSON array (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))
        })?;
        let base = text.as_ptr() as usize;
        for (index, raw) in raws.into_iter().enumerate() {
            let offset = raw.get().as_ptr() as usize - base;
            let line = line_of(text, offset);
            match parse(raw.get()) {
                Ok(record) => items.push(Item {
                    record,
                    raw: raw.get().to_string(),
                    index,
                    line,
                }),
                Err(e) => rejected.push(reject(index, line, e)),
            }
        }
        return Ok(Parsed { items, rejected });
    }
    parse_lines(text.as_bytes(), parse)
}

/// The NDJSON half of [`parse_body`], on bytes: a line that is not UTF-8 is rejected on its
/// own (field `(encoding)`), the others are parsed.
fn parse_lines<T>(
    body: &[u8],
    parse: impl Fn(&str) -> Result<T, watchdog_core::Error>,
) -> Result<Parsed<T>, NotJson> {
    let mut items = Vec::new();
    let mut rejected = Vec::new();
    let mut json_lines = 0usize;
    let mut index = 0usize;
    for (i, bytes) in body.split(|&b| b == b'\n').enumerate() {
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(e) => {
                json_lines += 1;
                rejected.push(Rejection {
                    index,
                    line: i + 1,
                    field: "(encoding)".into(),
                    error: format!(
                        "line is not UTF-8 text (invalid byte at column {})",
                        e.valid_up_to() + 1
                    ),
                });
                index += 1;
                continue;
            }
        };
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let result = parse(l);
        if !matches!(&result, Err(e) if e.field() == Some("(json)")) {
            json_lines += 1;
        }
        match result {
            Ok(record) => items.push(Item {
                record,
                raw: l.to_string(),
                index,
                line: i + 1,
            }),
            Err(e) => rejected.push(reject(index, i + 1, e)),
        }
        index += 1;
    }
    if json_lines == 0 {
        let first = rejected
            .first()
            .map(|r| r.error.clone())
            .unwrap_or_default();
        return Err(NotJson(format!(
            "body is neither a JSON array nor NDJSON: no line is JSON (line 1: {first})"
        )));
    }
    Ok(Parsed { items, rejected })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::metric_record::parse_sample;

    #[test]
    fn ndjson_reports_line_and_field_and_keeps_the_rest() {
        let body = b"{\"timestamp\":\"2026-03-30T19:30:00Z\",\"error_rate\":0.1}\n\n{\"timestamp\":\"bad\",\"error_rate\":0.1}\n{\"timestamp\":\"2026-03-30T19:31:00Z\",\"p95_latency_ms\":\"nan\"}\n{\"timestamp\":\"2026-03-30T19:32:00Z\",\"error_rate\":0.2}\n";
        let p = parse_body(body, parse_sample).unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.rejected.len(), 2);
        assert_eq!(
            (p.rejected[0].index, p.rejected[0].line),
            (1, 3),
            "{:?}",
            p.rejected
        );
        assert_eq!(p.rejected[0].field, "timestamp");
        assert_eq!(p.rejected[1].field, "p95_latency_ms");
        assert_eq!(p.rejected[1].line, 4);
    }

    #[test]
    fn array_items_know_their_line() {
        let body = b"[\n {\"timestamp\":\"2026-03-30T19:30:00Z\",\"error_rate\":0.1},\n {\"error_rate\":0.1}\n]";
        let p = parse_body(body, parse_sample).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.rejected[0].index, 1);
        assert_eq!(p.rejected[0].line, 3);
        assert_eq!(p.rejected[0].field, "timestamp");
    }

    #[test]
    fn a_bad_byte_rejects_its_line_only_and_a_bom_is_ignored() {
        let body = b"\xEF\xBB\xBF{\"timestamp\":\"2026-03-30T19:30:00Z\",\"error_rate\":0.1}\n{\"timestamp\":\"2026-03-30T19:31:00Z\",\"service\":\"caf\xE9\",\"error_rate\":0.1}\r\n{\"timestamp\":\"2026-03-30T19:32:00Z\",\"error_rate\":0.2}\n";
        let p = parse_body(body, parse_sample).unwrap();
        assert_eq!(p.items.len(), 2, "{:?}", p.rejected);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!((p.rejected[0].index, p.rejected[0].line), (1, 2));
        assert_eq!(p.rejected[0].field, "(encoding)");
        assert_eq!(p.items[1].line, 3);
        assert!(parse_body(b"[\"\xE9\"]", parse_sample).is_err());
    }

    #[test]
    fn not_json_is_an_error_of_the_whole_body() {
        assert!(parse_body(b"hello world\nmore", parse_sample).is_err());
        assert!(parse_body(b"[1, 2", parse_sample).is_err());
        assert!(parse_body(b"  ", parse_sample).is_err());
    }
}
