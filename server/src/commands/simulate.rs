//! `watchdog simulate`: writes a catalogue scenario as replay input files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use watchdog_core::scenarios::{self, ScenarioParams};

use crate::cli::SimulateArgs;
use crate::commands::compat::{
    DEFAULT_ENVIRONMENT, DEFAULT_SERVICE, DEPLOYS_FILE, LOG_FILE, METRICS_FILE,
};

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    // clap drops `requires` when the required flag conflicts with a given one (--out).
    if args.state_dir.is_none() && (args.deploy.is_some() || args.bad_deploy) {
        anyhow::bail!(
            "--deploy and --bad-deploy belong to the original layout: add --state-dir DIR (and leave out --out and --serve-metrics)"
        );
    }
    let params = ScenarioParams {
        seed: args.seed,
        shift: args.shift,
        noise: args.noise,
        traffic: args.traffic,
        // In the state directory the data goes on past a default watch (30 minutes)
        // and past the lateness allowance, so that `run` decides every deploy.
        after_mins: args
            .after_mins
            .unwrap_or(if args.state_dir.is_some() { 40 } else { 30 }),
        ..ScenarioParams::default()
    };
    let scenario = match (&args.scenario, args.bad_deploy) {
        (Some(s), _) => s.as_str(),
        (None, true) => "error_spike",
        (None, false) => "healthy",
    };
    let mut data = scenarios::generate(scenario, &params)?;
    if let Some(dir) = &args.state_dir {
        return write_state_dir(dir, data, args, scenario);
    }
    if !args.prefix.is_empty() {
        let p = &args.prefix;
        data.samples
            .iter_mut()
            .for_each(|s| s.service = format!("{p}{}", s.service));
        data.deploys
            .iter_mut()
            .for_each(|d| d.service = format!("{p}{}", d.service));
        data.logs
            .iter_mut()
            .for_each(|l| l.service = format!("{p}{}", l.service));
    }
    if args.shift_secs != 0 {
        let by = args.shift_secs as f64;
        data.samples
            .iter_mut()
            .for_each(|s| s.timestamp = s.timestamp.add_secs(by));
        data.deploys
            .iter_mut()
            .for_each(|d| d.timestamp = d.timestamp.add_secs(by));
        data.logs
            .iter_mut()
            .for_each(|l| l.timestamp = l.timestamp.add_secs(by));
        data.expected.iter_mut().for_each(|e| {
            e.effect_starts_at = e.effect_starts_at.map(|t| t.add_secs(by));
        });
    }
    if let Some(addr) = args.serve_metrics {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        rt.block_on(super::simulate_serve::serve_metrics(addr, data, args.speed))?;
        return Ok(ExitCode::SUCCESS);
    }
    let out = args
        .out
        .as_ref()
        .context("--out is required without --serve-metrics")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let write_lines =
        |name: &str, lines: &mut dyn Iterator<Item = serde_json::Value>| -> anyhow::Result<()> {
            let path = out.join(name);
            let mut f = BufWriter::new(
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
            );
            for v in lines {
                serde_json::to_writer(&mut f, &v)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
            Ok(())
        };
    write_lines(
        "metrics.jsonl",
        &mut data.samples.iter().map(|s| {
            let mut m = serde_json::Map::new();
            m.insert("timestamp".into(), s.timestamp.to_rfc3339().into());
            m.insert("service".into(), s.service.clone().into());
            m.insert("environment".into(), s.environment.clone().into());
            if let Some(v) = &s.version {
                m.insert("version".into(), v.clone().into());
            }
            for (k, v) in &s.metrics {
                m.insert(k.clone(), (*v).into());
            }
            serde_json::Value::Object(m)
        }),
    )?;
    write_lines(
        "deploys.jsonl",
        &mut data
            .deploys
            .iter()
            .map(|d| serde_json::to_value(d).unwrap_or_default()),
    )?;
    write_lines(
        "logs.jsonl",
        &mut data
            .logs
            .iter()
            .map(|l| serde_json::to_value(l).unwrap_or_default()),
    )?;
    let expected = out.join("expected.json");
    std::fs::write(&expected, serde_json::to_string_pretty(&data.expected)?)
        .with_context(|| format!("cannot write {}", expected.display()))?;
    eprintln!(
        "wrote {} samples, {} deploys and {} log lines of scenario {} (seed {}) to {}",
        data.samples.len(),
        data.deploys.len(),
        data.logs.len(),
        scenario,
        args.seed,
        out.display()
    );
    eprintln!(
        "replay it: watchdog replay --metrics {0}/metrics.jsonl --deploys {0}/deploys.jsonl --logs {0}/logs.jsonl",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The original's `simulate --state-dir DIR --deploy ID [--bad-deploy]`: the scenario as
/// one unlabelled service in the original file formats, moved in time so that its last
/// sample is now, written whole to a temporary file and renamed over the old one (a
/// running `watchdog run` sees a new file and reads it from its start).
fn write_state_dir(
    dir: &std::path::Path,
    mut data: scenarios::ScenarioData,
    args: &SimulateArgs,
    scenario: &str,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let last_ms = data
        .samples
        .iter()
        .map(|s| s.timestamp.millis())
        .max()
        .unwrap_or(now_ms);
    // Whole seconds, so timestamps stay as readable as the catalogue's.
    let by = ((now_ms - last_ms) / 1000) as f64;
    let deploy_id = args.deploy.clone().unwrap_or_else(|| "v1.0.0".to_string());
    let replace = |path: std::path::PathBuf, body: String| -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
    };
    let mut metrics = String::new();
    for s in &mut data.samples {
        s.timestamp = s.timestamp.add_secs(by);
        let mut m = serde_json::Map::new();
        m.insert("timestamp".into(), s.timestamp.to_rfc3339().into());
        for (k, v) in &s.metrics {
            m.insert(k.clone(), (*v).into());
        }
        metrics.push_str(&serde_json::Value::Object(m).to_string());
        metrics.push('\n');
    }
    let mut deploys = String::new();
    for d in &data.deploys {
        let line = serde_json::json!({
            "timestamp": d.timestamp.add_secs(by).to_rfc3339(),
            "deploy_id": deploy_id,
            "service": DEFAULT_SERVICE,
            "environment": DEFAULT_ENVIRONMENT,
        });
        deploys.push_str(&line.to_string());
        deploys.push('\n');
    }
    let mut log = String::new();
    for l in &data.logs {
        log.push_str(&format!(
            "{} {} {}\n",
            l.timestamp.add_secs(by).to_rfc3339(),
            l.level.as_str().to_uppercase(),
            l.message.replace('\n', " ")
        ));
    }
    replace(dir.join(METRICS_FILE), metrics)?;
    replace(dir.join(DEPLOYS_FILE), deploys)?;
    replace(dir.join(LOG_FILE), log)?;
    eprintln!(
        "wrote {} samples, deploy {} ({}) and {} log lines to {} ({}, {} and {}), ending now",
        data.samples.len(),
        deploy_id,
        if data.expected.iter().any(|e| e.bad) {
            format!("bad: scenario {scenario}")
        } else {
            format!("healthy: scenario {scenario}")
        },
        data.logs.len(),
        dir.display(),
        METRICS_FILE,
        DEPLOYS_FILE,
        LOG_FILE
    );
    if dir.join("watchdog.db").exists() {
        eprintln!(
            "note: {} already holds a database from an earlier run; its records stay, so use a new directory for a clean start",
            dir.display()
        );
    }
    eprintln!("follow it: watchdog run --state-dir {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
