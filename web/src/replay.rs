//! Running the core in the browser: reading user files (CSV or JSONL in the replay
//! formats) into records, and replaying records through the engine with timing.

use serde_json::{Map, Value};
use watchdog_core::{Config, Deploy, DeployVerdict, Engine, LogEvent, MetricTrace, Sample};

/// Records to replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Metric samples.
    pub samples: Vec<Sample>,
    /// Deploy events.
    pub deploys: Vec<Deploy>,
    /// Log events.
    pub logs: Vec<LogEvent>,
}

impl Dataset {
    /// Adds another dataset's records.
    pub fn extend(&mut self, other: Dataset) {
        self.samples.extend(other.samples);
        self.deploys.extend(other.deploys);
        self.logs.extend(other.logs);
    }
}

/// The outcome of a replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// One verdict per deploy, in the order they were reached.
    pub verdicts: Vec<DeployVerdict>,
    /// The detector's view of each metric of each deploy.
    pub traces: Vec<MetricTrace>,
    /// Samples replayed.
    pub samples: usize,
    /// Milliseconds the engine took (ingestion to last verdict), measured in the page.
    pub replay_ms: f64,
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

/// Replays `data` through a new engine configured by `config`, in event-time order.
///
/// # Errors
/// The configuration's or a record's error, as text for the page.
pub fn run(data: &Dataset, config: Config) -> Result<Run, String> {
    let started = now_ms();
    let mut engine = Engine::new(config).map_err(|e| e.to_string())?;
    engine.set_tracing(true);
    // Merge the three streams by timestamp, deploys first at equal times, as a live feed
    // would deliver them.
    let mut deploys: Vec<&Deploy> = data.deploys.iter().collect();
    deploys.sort_by_key(|d| d.timestamp);
    let mut logs: Vec<&LogEvent> = data.logs.iter().collect();
    logs.sort_by_key(|l| l.timestamp);
    let (mut di, mut li) = (0, 0);
    for (i, s) in data.samples.iter().enumerate() {
        while di < deploys.len() && deploys[di].timestamp <= s.timestamp {
            engine
                .ingest_deploy(deploys[di])
                .map_err(|e| format!("deploy {}: {e}", deploys[di].deploy_id))?;
            di += 1;
        }
        while li < logs.len() && logs[li].timestamp <= s.timestamp {
            engine
                .ingest_log(logs[li])
                .map_err(|e| format!("log event {}: {e}", li + 1))?;
            li += 1;
        }
        engine
            .ingest_sample(s)
            .map_err(|e| format!("sample {}: {e}", i + 1))?;
    }
    for d in &deploys[di..] {
        engine
            .ingest_deploy(d)
            .map_err(|e| format!("deploy {}: {e}", d.deploy_id))?;
    }
    for l in &logs[li..] {
        engine
            .ingest_log(l)
            .map_err(|e| format!("log event: {e}"))?;
    }
    engine.finish();
    let verdicts = engine.take_verdicts();
    let mut traces = engine.take_traces();
    let replay_ms = now_ms() - started;
    let window_secs = engine.config().monitoring_window_secs as f64;
    for t in &mut traces {
        extend_trace(t, data, window_secs);
    }
    Ok(Run {
        verdicts,
        traces,
        samples: data.samples.len(),
        replay_ms,
    })
}

/// A watch ends at detection, so its trace stops there; for the chart, the trace goes on
/// with the metric's samples up to the end of the monitoring window (without a statistic)
/// so the reader sees whether the shift persisted.
fn extend_trace(trace: &mut MetricTrace, data: &Dataset, window_secs: f64) {
    let Some(last) = trace.points.last().copied() else {
        return;
    };
    let end = trace.deployed_at.add_secs(window_secs);
    let matches = |label: &str, want: &str| label.is_empty() || label == want;
    let from = data.samples.partition_point(|s| s.timestamp <= last.t);
    let sorted = data
        .samples
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp);
    let candidates: &[Sample] = if sorted {
        &data.samples[from..]
    } else {
        &data.samples
    };
    for s in candidates {
        if s.timestamp <= last.t || s.timestamp > end {
            if sorted && s.timestamp > end {
                break;
            }
            continue;
        }
        if !matches(&s.service, &trace.service) || !matches(&s.environment, &trace.environment) {
            continue;
        }
        if let Some(value) = s.metric(&trace.metric) {
            trace.points.push(watchdog_core::TracePoint {
                t: s.timestamp,
                value,
                expected: last.expected,
                statistic: None,
            });
        }
    }
}

/// Reads one user file: CSV (a header with `timestamp` and metric columns, or
/// `deploy_id` for deploys), JSONL, or a JSON array of records. Each record is a metric
/// sample, a deploy (has `deploy_id` or `version`) or a log event (has `message`, `msg`
/// or `log`).
///
/// # Errors
/// A message naming the file, the line and the field at fault.
pub fn parse_file(name: &str, text: &str) -> Result<Dataset, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("{name}: line {}: invalid JSON: {e}", e.line()))?;
        let mut out = Dataset::default();
        for (i, v) in values.iter().enumerate() {
            add_record(&mut out, v).map_err(|e| format!("{name}: item {}: {e}", i + 1))?;
        }
        return Ok(out);
    }
    if trimmed.starts_with('{') {
        parse_jsonl(name, text)
    } else {
        parse_csv(name, text)
    }
}

fn parse_jsonl(name: &str, text: &str) -> Result<Dataset, String> {
    let mut out = Dataset::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = watchdog_core::samples::parse_line(line)
            .map_err(|e| format!("{name}: line {}: {e}", i + 1))?;
        add_record(&mut out, &value).map_err(|e| format!("{name}: line {}: {e}", i + 1))?;
    }
    if out.samples.is_empty() && out.deploys.is_empty() && out.logs.is_empty() {
        return Err(format!("{name}: no records found"));
    }
    Ok(out)
}

fn add_record(out: &mut Dataset, value: &Value) -> Result<(), watchdog_core::Error> {
    let has = |k: &str| value.get(k).is_some();
    if has("message") || has("msg") || has("log") {
        out.logs.push(LogEvent::from_json(value)?);
    } else if has("deploy_id") || has("version") {
        out.deploys.push(Deploy::from_json(value)?);
    } else {
        out.samples.push(Sample::from_json(value)?);
    }
    Ok(())
}

const TEXT_COLUMNS: [&str; 6] = [
    "timestamp",
    "service",
    "environment",
    "env",
    "deploy_id",
    "version",
];

fn parse_csv(name: &str, text: &str) -> Result<Dataset, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| format!("{name}: the file is empty"))?;
    let columns: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.trim().to_string())
        .collect();
    if !columns.iter().any(|c| c == "timestamp") {
        return Err(format!(
            "{name}: line 1: the CSV header needs a `timestamp` column, got {}",
            columns.join(",")
        ));
    }
    let mut out = Dataset::default();
    for (i, line) in lines {
        let cells = split_csv(line);
        if cells.len() != columns.len() {
            return Err(format!(
                "{name}: line {}: expected {} cells like the header, got {}",
                i + 1,
                columns.len(),
                cells.len()
            ));
        }
        let mut obj = Map::new();
        for (col, cell) in columns.iter().zip(cells) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let value = if TEXT_COLUMNS.contains(&col.as_str()) {
                Value::String(cell.to_string())
            } else {
                let x: f64 = cell.parse().map_err(|_| {
                    format!(
                        "{name}: line {}: field `{col}`: expected a number, got {cell:?}",
                        i + 1
                    )
                })?;
                serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        format!(
                            "{name}: line {}: field `{col}`: not a finite number: {cell:?}",
                            i + 1
                        )
                    })?
            };
            obj.insert(col.clone(), value);
        }
        add_record(&mut out, &Value::Object(obj))
            .map_err(|e| format!("{name}: line {}: {e}", i + 1))?;
    }
    Ok(out)
}

/// Splits a CSV line on commas, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn csv_rows_become_samples_and_deploys() {
        let m = parse_file(
            "m.csv",
            "timestamp,service,p95_latency_ms,error_rate\n2026-03-30T11:00:00Z,checkout,200,0.01\n2026-03-30T11:00:10Z,checkout,,0.02\n",
        )
        .unwrap();
        assert_eq!(m.samples.len(), 2);
        assert_eq!(m.samples[0].service, "checkout");
        assert_eq!(m.samples[1].metric("p95_latency_ms"), None);
        let d = parse_file("d.csv", "timestamp,deploy_id\n2026-03-30T12:00:00Z,v1\n").unwrap();
        assert_eq!(d.deploys[0].deploy_id, "v1");
    }

    #[wasm_bindgen_test]
    fn jsonl_records_are_sorted_by_kind() {
        let text = concat!(
            "{\"timestamp\":\"2026-03-30T11:00:00Z\",\"error_rate\":0.01}\n",
            "\n",
            "{\"timestamp\":\"2026-03-30T12:00:00Z\",\"deploy_id\":\"v2\"}\n",
            "{\"timestamp\":\"2026-03-30T12:00:01Z\",\"level\":\"error\",\"message\":\"boom\"}\n",
        );
        let d = parse_file("all.jsonl", text).unwrap();
        assert_eq!((d.samples.len(), d.deploys.len(), d.logs.len()), (1, 1, 1));
    }

    #[wasm_bindgen_test]
    fn errors_name_file_line_and_field() {
        let e = parse_file(
            "m.csv",
            "timestamp,p95_latency_ms\n2026-03-30T11:00:00Z,fast\n",
        )
        .unwrap_err();
        assert!(e.contains("m.csv: line 2: field `p95_latency_ms`"), "{e}");
        let e = parse_file("m.csv", "time,p95\n1,2\n").unwrap_err();
        assert!(e.contains("timestamp"), "{e}");
        let e =
            parse_file("d.jsonl", "{\"timestamp\":\"nope\",\"deploy_id\":\"v\"}\n").unwrap_err();
        assert!(
            e.starts_with("d.jsonl: line 1:") && e.contains("timestamp"),
            "{e}"
        );
    }

    #[wasm_bindgen_test]
    fn quoted_csv_cells_keep_commas() {
        assert_eq!(split_csv(r#"a,"b,c","d""e""#), vec!["a", "b,c", "d\"e"]);
    }
}
