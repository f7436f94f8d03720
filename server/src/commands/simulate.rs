//! `watchdog simulate`: writes a catalogue scenario as replay input files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use watchdog_core::scenarios::{self, ScenarioParams};

use crate::cli::SimulateArgs;

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let params = ScenarioParams {
        seed: args.seed,
        shift: args.shift,
        noise: args.noise,
        traffic: args.traffic,
        after_mins: args.after_mins,
        ..ScenarioParams::default()
    };
    let mut data = scenarios::generate(&args.scenario, &params)?;
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
        args.scenario,
        args.seed,
        out.display()
    );
    eprintln!(
        "replay it: watchdog replay --metrics {0}/metrics.jsonl --deploys {0}/deploys.jsonl --logs {0}/logs.jsonl",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
