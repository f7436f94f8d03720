//! Reading raw log lines: JSON log records and plain lines with a timestamp and a level.

use std::borrow::Cow;

use serde::Deserialize;

use crate::samples::LogLevel;
use crate::time::Timestamp;

/// What [`parse_log_line`] found in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine {
    /// The line's timestamp, when it had one that names a full date.
    pub timestamp: Option<Timestamp>,
    /// The line's level, when it had one.
    pub level: Option<LogLevel>,
    /// The message, with the timestamp and level prefix removed.
    pub message: String,
}

/// Like [`ParsedLine`], borrowing the message from the line when it can.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLineRef<'a> {
    /// The line's timestamp, when it had one that names a full date.
    pub timestamp: Option<Timestamp>,
    /// The line's level, when it had one.
    pub level: Option<LogLevel>,
    /// The message, with the timestamp and level prefix removed.
    pub message: Cow<'a, str>,
}

/// Splits a raw log line into timestamp, level and message.
///
/// - A JSON object uses its `message`, `msg` or `log` field, `level` or `severity`
///   (names, or pino/bunyan numbers 10–60) and `timestamp`, `time` or `ts` (RFC 3339, or
///   epoch seconds; numbers above 10^11 are taken as milliseconds). A JSON object with
///   none of the message fields is kept whole as the message.
/// - A plain line that starts with a timestamp has it removed: ISO 8601
///   (`2026-03-30T19:30:00Z`, `2026-03-30 19:30:00,123`, optionally in brackets) or
///   syslog (`Mar 30 19:30:00`, which names no year, so `timestamp` stays `None`). After
///   a syslog timestamp, the `host tag[pid]:` header is removed too. A level right after
///   the timestamp (`ERROR`, `[WARN]`, `<info>`, `error:`) is removed and reported.
/// - Anything else is the message as it is.
pub fn parse_log_line(line: &str) -> ParsedLine {
    let p = parse_log_line_ref(line);
    ParsedLine {
        timestamp: p.timestamp,
        level: p.level,
        message: p.message.into_owned(),
    }
}

/// [`parse_log_line`] without copying the message when it is a slice of the line (plain
/// lines, and JSON messages without escapes).
pub fn parse_log_line_ref(line: &str) -> ParsedLineRef<'_> {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    let body = trimmed.trim_start();
    if body.starts_with('{') {
        if let Some(parsed) = parse_json(body) {
            return parsed;
        }
    }
    parse_plain(trimmed)
}

/// A JSON field that may be a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Number(f64),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow, default)]
    message: Option<Field<'a>>,
    #[serde(borrow, default)]
    msg: Option<Field<'a>>,
    #[serde(borrow, default)]
    log: Option<Field<'a>>,
    #[serde(borrow, default)]
    level: Option<Field<'a>>,
    #[serde(borrow, default)]
    severity: Option<Field<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Field<'a>>,
    #[serde(borrow, default)]
    time: Option<Field<'a>>,
    #[serde(borrow, default)]
    ts: Option<Field<'a>>,
}

fn parse_json(body: &str) -> Option<ParsedLineRef<'_>> {
    let record: JsonLine<'_> = serde_json::from_str(body).ok()?;
    let message = [record.message, record.msg, record.log]
        .into_iter()
        .flatten()
        .find_map(|f| match f {
            Field::Text(t) => Some(t),
            _ => None,
        })?;
    let level = match record.level.or(record.severity) {
        Some(Field::Text(t)) => LogLevel::parse(&t),
        Some(Field::Number(n)) => pino_level(n),
        _ => None,
    };
    let timestamp = match record.timestamp.or(record.time).or(record.ts) {
        Some(Field::Text(t)) => Timestamp::parse(&t).ok(),
        Some(Field::Number(n)) if n.is_finite() => Some(if n.abs() > 1e11 {
            Timestamp(n.round() as i64)
        } else {
            Timestamp((n * 1000.0).round() as i64)
        }),
        _ => None,
    };
    Some(ParsedLineRef {
        timestamp,
        level,
        message,
    })
}

/// pino and bunyan numeric levels.
fn pino_level(n: f64) -> Option<LogLevel> {
    Some(match n as i64 {
        10 | 20 => LogLevel::Debug,
        30 => LogLevel::Info,
        40 => LogLevel::Warn,
        50 => LogLevel::Error,
        60 => LogLevel::Fatal,
        _ => return None,
    })
}

fn parse_plain(line: &str) -> ParsedLineRef<'_> {
    let start = line.len() - line.trim_start().len();
    let rest = &line[start..];
    let (timestamp, after) = if let Some((ts, len)) = iso_prefix(rest) {
        (ts, &rest[len..])
    } else if let Some(len) = syslog_prefix(rest) {
        (None, strip_syslog_header(&rest[len..]))
    } else {
        return ParsedLineRef {
            timestamp: None,
            level: None,
            message: Cow::Borrowed(line),
        };
    };
    let after = after.trim_start();
    let (level, message) = match after.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((word, tail)) => match level_word(word) {
            Some(l) => (Some(l), strip_separator(tail)),
            None => (None, after),
        },
        None => match level_word(after) {
            Some(l) => (Some(l), ""),
            None => (None, after),
        },
    };
    ParsedLineRef {
        timestamp,
        level,
        message: Cow::Borrowed(message),
    }
}

/// A level word after a timestamp: a known level name of three letters or more, or any
/// level name in brackets. Single letters are too easily the start of a sentence.
fn level_word(word: &str) -> Option<LogLevel> {
    let bracketed = (word.starts_with('[') && word.trim_end_matches(':').ends_with(']'))
        || (word.starts_with('<') && word.ends_with('>'));
    let bare = word.trim_matches(|c| matches!(c, '[' | ']' | '<' | '>' | ':'));
    if bare.len() < 3 && !bracketed {
        return None;
    }
    LogLevel::parse(bare)
}

fn strip_separator(tail: &str) -> &str {
    let t = tail.trim_start();
    match t.strip_prefix("- ").or_else(|| t.strip_prefix(": ")) {
        Some(r) => r.trim_start(),
        None => t,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> bool {
    b.len() >= at + n && b[at..at + n].iter().all(u8::is_ascii_digit)
}

/// An ISO 8601 date-time at the start of `s` (optionally in `[...]`): returns the parsed
/// instant (UTC when no offset is given) and the length of the prefix.
fn iso_prefix(s: &str) -> Option<(Option<Timestamp>, usize)> {
    let b = s.as_bytes();
    let open = usize::from(b.first() == Some(&b'['));
    let d = open;
    let date = digits(b, d, 4)
        && b.get(d + 4) == Some(&b'-')
        && digits(b, d + 5, 2)
        && b.get(d + 7) == Some(&b'-')
        && digits(b, d + 8, 2)
        && matches!(b.get(d + 10), Some(b'T' | b' '))
        && digits(b, d + 11, 2)
        && b.get(d + 13) == Some(&b':')
        && digits(b, d + 14, 2)
        && b.get(d + 16) == Some(&b':')
        && digits(b, d + 17, 2);
    if !date {
        return None;
    }
    let mut end = d + 19;
    if matches!(b.get(end), Some(b'.' | b',')) && digits(b, end + 1, 1) {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    let zone_start = end;
    if b.get(end) == Some(&b'Z') {
        end += 1;
    } else if matches!(b.get(end), Some(b'+' | b'-')) && digits(b, end + 1, 2) {
        end += 3;
        if b.get(end) == Some(&b':') && digits(b, end + 1, 2) {
            end += 3;
        } else if digits(b, end, 2) {
            end += 2;
        }
    }
    // Normalise to RFC 3339: `T`, `.` for fractions, `+hh:mm` offsets, `Z` by default.
    let mut text = String::with_capacity(end - d + 6);
    text.push_str(&s[d..d + 10]);
    text.push('T');
    text.push_str(&s[d + 11..zone_start].replace(',', "."));
    let zone = &s[zone_start..end];
    if zone.is_empty() {
        text.push('Z');
    } else if zone.len() == 5 {
        text.push_str(&zone[..3]);
        text.push(':');
        text.push_str(&zone[3..]);
    } else {
        text.push_str(zone);
    }
    if open == 1 {
        if b.get(end) != Some(&b']') {
            return None;
        }
        end += 1;
    }
    let boundary = end == b.len() || b[end].is_ascii_whitespace();
    boundary.then(|| (Timestamp::parse(&text).ok(), end))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A syslog (RFC 3164) timestamp `Mmm dd hh:mm:ss` at the start of `s`: its length.
fn syslog_prefix(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 15 || !MONTHS.iter().any(|m| s.starts_with(m)) || b[3] != b' ' {
        return None;
    }
    let day = if b[4] == b' ' { 5 } else { 4 };
    let day_end = day + b[day..].iter().take_while(|c| c.is_ascii_digit()).count();
    if day_end == day || day_end - day > 2 || b.get(day_end) != Some(&b' ') {
        return None;
    }
    let t = day_end + 1;
    let time = digits(b, t, 2)
        && b.get(t + 2) == Some(&b':')
        && digits(b, t + 3, 2)
        && b.get(t + 5) == Some(&b':')
        && digits(b, t + 6, 2);
    let end = t + 8;
    (time && (end == b.len() || b[end].is_ascii_whitespace())).then_some(end)
}

/// After a syslog timestamp: drops `host tag[pid]:` (or just `tag:`), where the tag is
/// one token ending in `:`.
fn strip_syslog_header(rest: &str) -> &str {
    let rest = rest.trim_start();
    let mut words = rest.splitn(3, ' ');
    let first = words.next().unwrap_or("");
    let second = words.next();
    let is_tag = |w: &str| w.len() > 1 && w.ends_with(':') && !w[..w.len() - 1].contains(':');
    if is_tag(first) {
        return rest[first.len()..].trim_start();
    }
    if let Some(second) = second {
        if !first.contains(':') && is_tag(second) {
            return rest[first.len() + 1 + second.len()..].trim_start();
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<Timestamp> {
        Some(Timestamp::parse(s).unwrap())
    }

    #[test]
    fn json_lines_use_their_message_level_and_time() {
        let p = parse_log_line(
            r#"{"timestamp":"2026-03-30T19:30:00Z","level":"ERROR","message":"db timeout","service":"x"}"#,
        );
        assert_eq!(p.message, "db timeout");
        assert_eq!(p.level, Some(LogLevel::Error));
        assert_eq!(p.timestamp, ts("2026-03-30T19:30:00Z"));
        let p = parse_log_line(r#"{"msg":"a \"quoted\" word","level":50,"time":1774899000000}"#);
        assert_eq!(p.message, "a \"quoted\" word");
        assert_eq!(p.level, Some(LogLevel::Error));
        assert_eq!(p.timestamp, Some(Timestamp(1_774_899_000_000)));
        let p = parse_log_line(r#"{"log":"x","severity":"warning","ts":1774899000.5}"#);
        assert_eq!((p.message.as_str(), p.level), ("x", Some(LogLevel::Warn)));
        assert_eq!(p.timestamp, Some(Timestamp(1_774_899_000_500)));
    }

    #[test]
    fn json_without_a_message_or_broken_json_is_the_message() {
        let line = r#"{"event":"x"}"#;
        assert_eq!(parse_log_line(line).message, line);
        let line = r#"{"message": oops"#;
        assert_eq!(parse_log_line(line).message, line);
    }

    #[test]
    fn iso_timestamp_and_level_are_stripped() {
        let p = parse_log_line("2026-03-30T19:30:00Z ERROR db timeout");
        assert_eq!(p.message, "db timeout");
        assert_eq!(p.level, Some(LogLevel::Error));
        assert_eq!(p.timestamp, ts("2026-03-30T19:30:00Z"));
        let p = parse_log_line("2026-03-30 19:30:00,123 [WARN] slow query - 3s");
        assert_eq!(p.message, "slow query - 3s");
        assert_eq!(p.level, Some(LogLevel::Warn));
        assert_eq!(p.timestamp, ts("2026-03-30T19:30:00.123Z"));
        let p = parse_log_line("[2026-03-30T21:30:00.5+0200] error: boom");
        assert_eq!(p.message, "boom");
        assert_eq!(p.timestamp, ts("2026-03-30T19:30:00.5Z"));
        let p = parse_log_line("2026-03-30T19:30:00Z I think so");
        assert_eq!((p.level, p.message.as_str()), (None, "I think so"));
    }

    #[test]
    fn syslog_header_is_stripped() {
        let p = parse_log_line("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user x from 1.2.3.4");
        assert_eq!(p.message, "Invalid user x from 1.2.3.4");
        assert_eq!(p.timestamp, None);
        let p = parse_log_line("Jun  4 15:16:01 combo kernel: ACPI: Interpreter disabled.");
        assert_eq!(p.message, "ACPI: Interpreter disabled.");
    }

    #[test]
    fn other_lines_are_kept_as_they_are() {
        for line in [
            "plain message 42",
            "ERROR without a timestamp",
            "2026-03-30 is a date",
            "May the force be with you",
        ] {
            let p = parse_log_line(line);
            assert_eq!(
                (p.message.as_str(), p.level, p.timestamp),
                (line, None, None)
            );
        }
    }
}
