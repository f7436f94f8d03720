//! `watchdog demo`: one command that shows a bad deploy being caught.

use std::process::ExitCode;

use watchdog_core::explain::{explain, format_value, metric_label, triage};
use watchdog_core::scenarios::{self, ScenarioParams};
use watchdog_core::{Config, MetricStatus, VerdictKind};

use crate::cli::DemoArgs;

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let params = ScenarioParams {
        seed: args.seed,
        ..ScenarioParams::default()
    };
    let data = scenarios::generate(&args.scenario, &params)?;
    let info = scenarios::catalogue()
        .iter()
        .find(|s| s.name == args.scenario)
        .map(|s| s.description)
        .unwrap_or_default();
    println!(
        "WatchDog demo — scenario {} (seed {}): {}",
        args.scenario, args.seed, info
    );
    println!(
        "Replaying {} samples and {} log lines around {} deploy(s) through the detection engine.\n",
        data.samples.len(),
        data.logs.len(),
        data.deploys.len()
    );
    for (_, v) in scenarios::run(&data, &Config::default())? {
        let e = explain(&v);
        let verdict = match v.verdict {
            VerdictKind::Regression => "REGRESSION",
            VerdictKind::Healthy => "HEALTHY",
            VerdictKind::Inconclusive => "INCONCLUSIVE",
        };
        println!(
            "━━ {} {} ({}) deployed {}",
            v.service, v.deploy_id, v.environment, v.deployed_at
        );
        println!("   verdict: {verdict}");
        if let Some(at) = v.detected_at {
            println!(
                "   detected: {} ({:.0} s after the deploy)",
                at,
                at.secs_since(v.deployed_at)
            );
        }
        println!("\n   {}\n   {}\n", e.headline, e.summary);
        println!(
            "   {:<18} {:>12} {:>12} {:>9} {:>16}",
            "metric", "baseline", "observed", "status", "statistic/limit"
        );
        for m in &v.evidence {
            let center =
                |s: &watchdog_core::Summary| if m.counts.is_some() { s.mean } else { s.median };
            println!(
                "   {:<18} {:>12} {:>12} {:>9} {:>16}",
                metric_label(&m.metric),
                format_value(&m.metric, center(&m.baseline)),
                format_value(&m.metric, center(&m.observed)),
                match m.status {
                    MetricStatus::Regressed => "REGRESSED",
                    MetricStatus::PreExisting => "pre-exist",
                    MetricStatus::Ok => "ok",
                    MetricStatus::Insufficient => "no data",
                },
                format!("{:.1} / {:.1}", m.statistic, m.threshold)
            );
        }
        for s in v.signatures.iter().take(3) {
            println!(
                "   log: {:?} {} x{} after the deploy (first {}), e.g. {:?}",
                s.change, s.template, s.count_after, s.first_seen, s.example
            );
        }
        for w in &v.warnings {
            println!("   note: {w}");
        }
        let t = triage(&v);
        println!("\n   triage: {} — {}", t.hypothesis, t.recommended_action);
        println!();
    }
    println!("Try another: watchdog demo --scenario latency_creep | pre_existing | low_traffic | healthy_outliers");
    Ok(ExitCode::SUCCESS)
}
