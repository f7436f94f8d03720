//! `watchdog benchmark`: runs the scenario catalogue many times with different seeds and
//! reports, per scenario, how often bad deploys were caught, how often healthy ones were
//! called regressions, how often the verdict was inconclusive, and how fast detection was.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde::Serialize;
use watchdog_core::scenarios::{self, ScenarioParams};
use watchdog_core::{Config, VerdictKind};

use crate::cli::BenchmarkArgs;

/// Results of one scenario over all trials.
#[derive(Debug, Default, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub bad: bool,
    pub bad_deploys: u64,
    pub healthy_deploys: u64,
    pub detected: u64,
    pub false_alarms: u64,
    pub inconclusive: u64,
    /// Detection rate among bad deploys.
    pub detection_rate: Option<f64>,
    /// Regression verdicts among healthy deploys.
    pub false_alarm_rate: Option<f64>,
    /// Inconclusive verdicts among all deploys.
    pub inconclusive_rate: f64,
    /// Seconds from the deploy to detection.
    pub delay_median_secs: Option<f64>,
    pub delay_p90_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    trials: u64,
    false_alarm_target: f64,
    scenarios: Vec<ScenarioResult>,
    overall_detection_rate: f64,
    overall_false_alarm_rate: f64,
    overall_inconclusive_rate: f64,
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Runs `trials` seeds of one scenario.
pub fn run_scenario(
    name: &str,
    bad: bool,
    trials: u64,
    config: &Config,
    mut tick: impl FnMut(),
) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult {
        scenario: name.to_string(),
        bad,
        ..ScenarioResult::default()
    };
    let mut delays = Vec::new();
    let mut deploys = 0u64;
    for seed in 0..trials {
        let params = ScenarioParams {
            seed,
            ..ScenarioParams::default()
        };
        let data = scenarios::generate(name, &params)?;
        for (expected, v) in scenarios::run(&data, config)? {
            deploys += 1;
            if v.verdict == VerdictKind::Inconclusive {
                r.inconclusive += 1;
            }
            if expected.bad {
                r.bad_deploys += 1;
                if v.verdict == VerdictKind::Regression {
                    r.detected += 1;
                    if let Some(at) = v.detected_at {
                        delays.push(at.secs_since(v.deployed_at));
                    }
                }
            } else {
                r.healthy_deploys += 1;
                if v.verdict == VerdictKind::Regression {
                    r.false_alarms += 1;
                }
            }
        }
        tick();
    }
    delays.sort_by(f64::total_cmp);
    r.detection_rate = (r.bad_deploys > 0).then(|| r.detected as f64 / r.bad_deploys as f64);
    r.false_alarm_rate =
        (r.healthy_deploys > 0).then(|| r.false_alarms as f64 / r.healthy_deploys as f64);
    r.inconclusive_rate = r.inconclusive as f64 / deploys.max(1) as f64;
    r.delay_median_secs = quantile(&delays, 0.5);
    r.delay_p90_secs = quantile(&delays, 0.9);
    Ok(r)
}

pub fn run(args: &BenchmarkArgs) -> anyhow::Result<ExitCode> {
    let config = super::replay::config_from(args.config.as_deref(), args.monitoring_window_secs)?;
    if args.trials == 0 {
        anyhow::bail!("--trials must be at least 1, got 0");
    }
    let catalogue: Vec<_> = scenarios::catalogue()
        .iter()
        .filter(|s| args.scenario.is_empty() || args.scenario.iter().any(|n| n == s.name))
        .collect();
    if catalogue.is_empty() {
        anyhow::bail!(
            "no scenario matches {:?}; known scenarios: {}",
            args.scenario,
            scenarios::catalogue()
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(args.trials * catalogue.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:<22} [{bar:30}] {pos}/{len} trials ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut results = Vec::new();
    for s in &catalogue {
        bar.set_message(s.name);
        results.push(run_scenario(s.name, s.bad, args.trials, &config, || {
            bar.inc(1)
        })?);
    }
    bar.finish_and_clear();

    let sum = |f: fn(&ScenarioResult) -> u64| results.iter().map(f).sum::<u64>();
    let (bad, det, good, fa, inc) = (
        sum(|r| r.bad_deploys),
        sum(|r| r.detected),
        sum(|r| r.healthy_deploys),
        sum(|r| r.false_alarms),
        sum(|r| r.inconclusive),
    );
    let report = Report {
        trials: args.trials,
        false_alarm_target: config.false_alarm_rate,
        overall_detection_rate: det as f64 / bad.max(1) as f64,
        overall_false_alarm_rate: fa as f64 / good.max(1) as f64,
        overall_inconclusive_rate: inc as f64 / (bad + good).max(1) as f64,
        scenarios: results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let secs = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
    println!(
        "{:<22} {:>5} {:>9} {:>11} {:>12} {:>10} {:>9}",
        "scenario", "kind", "detected", "false alarm", "inconclusive", "delay p50", "delay p90"
    );
    for r in &report.scenarios {
        println!(
            "{:<22} {:>5} {:>9} {:>11} {:>12} {:>10} {:>9}",
            r.scenario,
            if r.bad { "bad" } else { "good" },
            pct(r.detection_rate),
            pct(r.false_alarm_rate),
            pct(Some(r.inconclusive_rate)),
            secs(r.delay_median_secs),
            secs(r.delay_p90_secs),
        );
    }
    println!(
        "\n{} trials per scenario. Bad deploys caught: {:.1}% ({det}/{bad}). Healthy deploys called regressions: {:.2}% ({fa}/{good}; target at most {:.1}%). Inconclusive: {:.1}%.\nDelays are seconds from the deploy to detection (latency_step's shift begins 60 s after its deploy).",
        args.trials,
        report.overall_detection_rate * 100.0,
        report.overall_false_alarm_rate * 100.0,
        config.false_alarm_rate * 100.0,
        report.overall_inconclusive_rate * 100.0,
    );
    Ok(ExitCode::SUCCESS)
}
