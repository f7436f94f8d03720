//! `watchdog demo`: one command that shows a bad deploy being caught.

use std::process::ExitCode;

use watchdog_core::explain::explain;
use watchdog_core::scenarios::{self, ScenarioParams};
use watchdog_core::Config;

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
        println!(
            "{}",
            super::human::verdict_block(&v, &format!("{}\n{}", e.headline, e.summary))
        );
    }
    println!("Try another: watchdog demo --scenario latency_creep | pre_existing | low_traffic | healthy_outliers");
    Ok(ExitCode::SUCCESS)
}
