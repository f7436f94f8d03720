//! `watchdog replay`: run the engine over files and print one verdict per deploy, in the
//! deploys file's order.
//!
//! Input rules (documented in the README):
//! - every non-blank line must parse; by default the first bad lines (up to 20) are
//!   reported as `FILE:LINE: field `F`: what was wrong` and the command exits 1 without
//!   printing verdicts. `--skip-invalid` instead skips bad lines, counts them and reports
//!   the count and the first few on stderr.
//! - an empty metrics or deploys file is an error;
//! - a deploy of a service with no samples gets an `inconclusive` verdict (cause
//!   `no_data`) and a warning on stderr naming its line.
//! - records are ordered by event time before they are replayed, so files need not be
//!   sorted.
//! - a line that is not UTF-8 is a bad line (skipped with `--skip-invalid`, like any
//!   other); a UTF-8 byte order mark before line 1 is ignored.
//! - a timestamp with a date and a time of day but no zone (`2026-03-30T19:30:00`) is a
//!   bad line: it names a different instant in every zone. Write `Z` or an offset;
//!   numbers (seconds or milliseconds since the epoch) are UTC already.
//! - an exact duplicate deploy line (same id, service, environment and timestamp) is
//!   judged once; its verdict is printed at both lines and a warning names them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use watchdog_core::{Config, Deploy, DeployVerdict, Engine, LogEvent, Sample};

use crate::cli::ReplayArgs;

/// Most bad lines listed before giving up.
const MAX_LISTED: usize = 20;

/// A parse failure at a line of a file.
struct BadLine {
    line: usize,
    message: String,
}

/// What a JSONL file held: the parsed records with their line numbers, the first bad
/// lines, and how many lines were bad in all.
type Parsed<T> = (Vec<(usize, T)>, Vec<BadLine>, usize);

/// Reads a JSONL file with `parse`, collecting bad lines.
///
/// A line is bad when it is not UTF-8 (named by the byte and its column), not JSON, has a
/// timestamp without a time zone, or `parse` refuses it; a bad line never stops the
/// reading, so every other line is kept. A UTF-8 byte order mark before line 1 (as some
/// Windows editors write) is ignored.
fn read_jsonl<T>(
    path: &Path,
    parse: impl Fn(&serde_json::Value) -> Result<T, watchdog_core::Error>,
) -> anyhow::Result<Parsed<T>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut items = Vec::new();
    let mut bad = Vec::new();
    let mut bad_total = 0;
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {} at line {}", path.display(), line_no + 1))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let mut bytes = buf.as_slice();
        if line_no == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let result = match std::str::from_utf8(bytes) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => parse_record(line, &parse),
            Err(e) => {
                let at = e.valid_up_to();
                Err(format!(
                    "not valid UTF-8: byte 0x{:02x} at column {}; save the file as UTF-8",
                    bytes[at],
                    at + 1
                ))
            }
        };
        match result {
            Ok(v) => items.push((line_no, v)),
            Err(message) => {
                bad_total += 1;
                if bad.len() < MAX_LISTED {
                    bad.push(BadLine {
                        line: line_no,
                        message,
                    });
                }
            }
        }
    }
    Ok((items, bad, bad_total))
}

/// One line's record: JSON, a zoned timestamp, then `parse`.
fn parse_record<T>(
    line: &str,
    parse: impl Fn(&serde_json::Value) -> Result<T, watchdog_core::Error>,
) -> Result<T, String> {
    let value = watchdog_core::samples::parse_line(line).map_err(|e| e.to_string())?;
    if let Some(obj) = value.as_object() {
        // The same keys, in the same order, as the core reads the timestamp from.
        let field = ["timestamp", "time", "ts"]
            .into_iter()
            .find(|k| obj.contains_key(*k));
        if let Some((key, serde_json::Value::String(text))) = field.map(|k| (k, &obj[k])) {
            if lacks_zone(text) {
                return Err(format!(
                    "field `{key}`: timestamp {text:?} has no time zone; add `Z` for UTC or an offset such as +02:00 (RFC 3339)"
                ));
            }
        }
    }
    parse(&value).map_err(|e| e.to_string())
}

/// Whether `text` is a date and time of day with no zone (`2026-03-30T19:30:00`, or with
/// a space for the `T`). Such a time means a different instant in every zone, so replay
/// refuses it rather than guess UTC. Epoch numbers are UTC by definition and pass.
fn lacks_zone(text: &str) -> bool {
    let t = text.trim();
    let mut fixed = t.to_string();
    if t.len() > 10 && t.as_bytes()[10] == b' ' && t.is_char_boundary(11) {
        fixed.replace_range(10..11, "T");
    }
    chrono::DateTime::parse_from_rfc3339(&fixed).is_err()
        && chrono::NaiveDateTime::parse_from_str(&fixed, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

/// Loads a configuration file: TOML, or JSON when the name ends in `.json`.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let config: Config = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?
    };
    config
        .validate()
        .with_context(|| format!("invalid config {}", path.display()))?;
    Ok(config)
}

/// The configuration from `--config` and `--monitoring-window-secs`.
pub fn config_from(config: Option<&Path>, window: Option<u64>) -> anyhow::Result<Config> {
    let mut c = match config {
        Some(p) => load_config(p)?,
        None => Config::default(),
    };
    if let Some(w) = window {
        if w == 0 {
            bail!("--monitoring-window-secs must be at least 1, got 0");
        }
        c.monitoring_window_secs = w;
    }
    // Files are replayed after the fact: let a regression's verdict gather the log
    // evidence of the five minutes after its detection (see Config::evidence_grace_secs).
    c.evidence_grace_secs.get_or_insert(300);
    c.validate()?;
    Ok(c)
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = config_from(args.config.as_deref(), args.monitoring_window_secs)?;
    let (samples, bad_m, bad_m_total) = read_jsonl(&args.metrics, Sample::from_json)?;
    let (deploys, bad_d, bad_d_total) = read_jsonl(&args.deploys, Deploy::from_json)?;
    let (logs, bad_l, bad_l_total) = match &args.logs {
        Some(p) => read_jsonl(p, LogEvent::from_json)?,
        None => (Vec::new(), Vec::new(), 0),
    };

    let report = |path: &Path, bad: &[BadLine], total: usize| {
        for b in bad {
            eprintln!("{}:{}: {}", path.display(), b.line, b.message);
        }
        if total > bad.len() {
            eprintln!(
                "{}: … and {} more bad lines",
                path.display(),
                total - bad.len()
            );
        }
    };
    let total_bad = bad_m_total + bad_d_total + bad_l_total;
    report(&args.metrics, &bad_m, bad_m_total);
    report(&args.deploys, &bad_d, bad_d_total);
    if let Some(p) = &args.logs {
        report(p, &bad_l, bad_l_total);
    }
    if total_bad > 0 && !args.skip_invalid {
        eprintln!(
            "error: {total_bad} invalid line(s); fix them, or pass --skip-invalid to skip them"
        );
        return Ok(ExitCode::from(1));
    }
    if total_bad > 0 {
        eprintln!("warning: skipped {total_bad} invalid line(s) (--skip-invalid)");
    }
    if samples.is_empty() {
        eprintln!("error: {}: no metric samples", args.metrics.display());
        return Ok(ExitCode::from(1));
    }
    if deploys.is_empty() {
        eprintln!("error: {}: no deploys", args.deploys.display());
        return Ok(ExitCode::from(1));
    }

    // An exact duplicate line (same deploy id, service, environment and timestamp, as a
    // retried `notify` appends) is the same deploy: it is judged once, and its verdict is
    // printed again at the duplicate's place, so the output keeps one line per deploy line.
    let mut first_of: HashMap<(&str, &str, &str, i64), usize> = HashMap::new();
    let mut unique: Vec<(usize, Deploy)> = Vec::with_capacity(deploys.len());
    let mut slot_of_line = Vec::with_capacity(deploys.len());
    for (line, d) in &deploys {
        let key = (
            d.deploy_id.as_str(),
            d.service.as_str(),
            d.environment.as_str(),
            d.timestamp.millis(),
        );
        match first_of.get(&key) {
            Some(&slot) => {
                eprintln!(
                    "warning: {}:{}: deploy {:?} repeats line {} exactly; judged once, its verdict printed for both lines",
                    args.deploys.display(),
                    line,
                    d.deploy_id,
                    unique[slot].0
                );
                slot_of_line.push(slot);
            }
            None => {
                first_of.insert(key, unique.len());
                slot_of_line.push(unique.len());
                unique.push((*line, d.clone()));
            }
        }
    }

    let judged = replay(config, &samples, &unique, &logs)?;
    for ((line, d), v) in unique.iter().zip(&judged) {
        if v.inconclusive_cause == Some(watchdog_core::InconclusiveCause::NoData) {
            eprintln!(
                "warning: {}:{}: deploy {:?} of service {:?} in environment {:?} has no metric samples",
                args.deploys.display(),
                line,
                d.deploy_id,
                d.service,
                d.environment
            );
        }
    }
    let verdicts = slot_of_line.iter().map(|&slot| &judged[slot]);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for v in verdicts {
        serde_json::to_writer(&mut out, v)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the engine over the records in event-time order and returns one verdict per
/// deploy, in the order of `deploys`.
pub fn replay(
    config: Config,
    samples: &[(usize, Sample)],
    deploys: &[(usize, Deploy)],
    logs: &[(usize, LogEvent)],
) -> anyhow::Result<Vec<DeployVerdict>> {
    enum Rec<'a> {
        S(&'a Sample),
        D(&'a Deploy),
        L(&'a LogEvent),
    }
    let mut recs: Vec<(i64, u8, Rec)> =
        Vec::with_capacity(samples.len() + deploys.len() + logs.len());
    recs.extend(
        samples
            .iter()
            .map(|(_, s)| (s.timestamp.millis(), 1, Rec::S(s))),
    );
    recs.extend(
        deploys
            .iter()
            .map(|(_, d)| (d.timestamp.millis(), 0, Rec::D(d))),
    );
    recs.extend(
        logs.iter()
            .map(|(_, l)| (l.timestamp.millis(), 2, Rec::L(l))),
    );
    // Stable: records with equal timestamps keep file order; a deploy goes before the
    // samples of its own instant (they belong to the new release).
    recs.sort_by_key(|r| (r.0, r.1));
    let mut engine = Engine::new(config)?;
    for (_, _, r) in &recs {
        match r {
            Rec::S(s) => engine.ingest_sample(s)?,
            Rec::D(d) => engine.ingest_deploy(d)?,
            Rec::L(l) => engine.ingest_log(l)?,
        }
    }
    engine.finish();
    let mut produced: Vec<Option<DeployVerdict>> =
        engine.take_verdicts().into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(deploys.len());
    for (_, d) in deploys {
        let found = produced.iter_mut().find(|v| {
            v.as_ref().is_some_and(|v| {
                v.deploy_id == d.deploy_id
                    && v.service == d.service
                    && v.environment == d.environment
                    && v.deployed_at == d.timestamp
            })
        });
        match found.and_then(Option::take) {
            Some(v) => out.push(v),
            None => bail!("internal error: no verdict for deploy {:?}", d.deploy_id),
        }
    }
    Ok(out)
}
