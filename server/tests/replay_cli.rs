//! `watchdog replay` on awkward files (issue 12, finding 11): bytes that are not UTF-8,
//! a byte order mark, exact duplicate deploy lines, timestamps without a zone. The built
//! binary on real files in a temp directory.

mod common;

use std::path::Path;

use common::cli::{run_to_end, text};
use serde_json::Value;

/// Thirty minutes of samples every 10 s from 19:00; from 19:20:40 on (`bad`) the error
/// rate jumps from 1 % to 9 % and p95 latency doubles.
fn metrics(bad: bool) -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..180)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 1000) as f64 / 1000.0 - 0.5;
            let hit = bad && i >= 124;
            format!(
                "{{\"timestamp\":\"2026-03-30T19:{:02}:{:02}Z\",\"error_rate\":{:.5},\"p95_latency_ms\":{:.1},\"request_rate\":{:.0}}}",
                i / 6,
                (i % 6) * 10,
                if hit { 0.09 } else { 0.01 } + u * 0.006,
                if hit { 240.0 } else { 120.0 } + u * 12.0,
                400.0 + u * 20.0
            )
        })
        .collect()
}

const DEPLOY: &str =
    r#"{"timestamp":"2026-03-30T19:20:00Z","deploy_id":"v2","environment":"bars"}"#;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

fn lines(v: &[String]) -> Vec<u8> {
    let mut out = v.join("\n").into_bytes();
    out.push(b'\n');
    out
}

fn replay(dir: &Path, metrics: &str, deploys: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec!["replay", "--metrics", metrics, "--deploys", deploys];
    args.extend_from_slice(extra);
    let out = run_to_end(dir, &args, &[]);
    let verdicts = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON verdict per line"))
        .collect();
    (out.status.code().unwrap_or(-1), verdicts, text(&out.stderr))
}

/// `deploys.jsonl` in `dir` holding [`DEPLOY`] alone: its path.
fn write_one_deploy(dir: &Path) -> String {
    write(dir, "deploys.jsonl", format!("{DEPLOY}\n").as_bytes())
}

/// [`replay`] without options, which must exit 1 with no verdict: its stderr.
fn replay_refused(dir: &Path, metrics: &str, deploys: &str) -> String {
    let (code, verdicts, err) = replay(dir, metrics, deploys, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(verdicts.is_empty());
    err
}

#[test]
fn a_line_with_a_byte_that_is_not_utf8_is_one_bad_line_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = lines(&metrics(true));
    // Line 5: a Latin-1 byte inside a string value.
    let at = m
        .split(|&b| b == b'\n')
        .take(4)
        .map(|l| l.len() + 1)
        .sum::<usize>()
        + 2;
    m.insert(at, 0xff);
    let m = write(dir.path(), "metrics.jsonl", &m);
    let d = write_one_deploy(dir.path());

    let err = replay_refused(dir.path(), &m, &d);
    assert!(
        err.contains("metrics.jsonl:5: not valid UTF-8: byte 0xff at column 3"),
        "{err}"
    );

    let (code, verdicts, err) = replay(dir.path(), &m, &d, &["--skip-invalid"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("metrics.jsonl:5: not valid UTF-8"), "{err}");
    assert!(err.contains("skipped 1 invalid line"), "{err}");
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0]["verdict"], "regression", "{}", verdicts[0]);
}

#[test]
fn a_byte_order_mark_before_line_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = b"\xEF\xBB\xBF".to_vec();
    m.extend(lines(&metrics(true)));
    let m = write(dir.path(), "metrics.jsonl", &m);
    let d = write(
        dir.path(),
        "deploys.jsonl",
        format!("\u{feff}{DEPLOY}\n").as_bytes(),
    );
    let (code, verdicts, err) = replay(dir.path(), &m, &d, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("invalid"), "{err}");
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0]["deploy_id"], "v2");
    assert_eq!(verdicts[0]["verdict"], "regression", "{}", verdicts[0]);
}

#[test]
fn an_exact_duplicate_deploy_line_is_judged_once_and_printed_for_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "metrics.jsonl", &lines(&metrics(true)));
    let other = r#"{"timestamp":"2026-03-30T19:10:00Z","deploy_id":"v1","environment":"bars"}"#;
    let d = write(
        dir.path(),
        "deploys.jsonl",
        format!("{DEPLOY}\n{other}\n{DEPLOY}\n").as_bytes(),
    );
    let (code, verdicts, err) = replay(dir.path(), &m, &d, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(verdicts.len(), 3, "one line per deploy line");
    assert_eq!(
        verdicts[0], verdicts[2],
        "the same deploy, the same verdict"
    );
    assert_eq!(verdicts[0]["verdict"], "regression", "{}", verdicts[0]);
    assert_eq!(verdicts[1]["deploy_id"], "v1");
    assert!(
        err.contains("deploys.jsonl:3: deploy \"v2\" repeats line 1 exactly"),
        "{err}"
    );
}

#[test]
fn a_timestamp_without_a_zone_is_refused_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = metrics(false);
    m[2] = m[2].replace("19:00:20Z", "19:00:20");
    m[3] = m[3]
        .replace("2026-03-30T19:00:30Z", "2026-03-30 19:00:30")
        .replace("\"timestamp\"", "\"time\"");
    let m = write(dir.path(), "metrics.jsonl", &lines(&m));
    let d = write_one_deploy(dir.path());
    let err = replay_refused(dir.path(), &m, &d);
    assert!(
        err.contains(
            "metrics.jsonl:3: field `timestamp`: timestamp \"2026-03-30T19:00:20\" has no time zone"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "metrics.jsonl:4: field `time`: timestamp \"2026-03-30 19:00:30\" has no time zone"
        ),
        "{err}"
    );

    // A zone, an offset or an epoch number is fine.
    let mut ok = metrics(false);
    ok[2] = ok[2].replace("19:00:20Z", "21:00:20+02:00");
    ok[3] = ok[3].replace("\"2026-03-30T19:00:30Z\"", "1774897230");
    let m = write(dir.path(), "metrics.jsonl", &lines(&ok));
    let (code, verdicts, err) = replay(dir.path(), &m, &d, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(verdicts[0]["verdict"], "healthy", "{}", verdicts[0]);
}
