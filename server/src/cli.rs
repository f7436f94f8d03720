//! Command-line interface (clap derive). Every flag can also come from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// WatchDog: did this release break something?
#[derive(Debug, Parser)]
#[command(name = "watchdog", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay metrics, deploys and logs from files and print one verdict per deploy.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Metric samples, one JSON object per line.
    #[arg(long, env = "WATCHDOG_METRICS")]
    pub metrics: PathBuf,
    /// Deploy events, one JSON object per line.
    #[arg(long, env = "WATCHDOG_DEPLOYS")]
    pub deploys: PathBuf,
    /// Log events, one JSON object per line (optional).
    #[arg(long, env = "WATCHDOG_LOGS")]
    pub logs: Option<PathBuf>,
    /// Detector configuration (TOML or JSON).
    #[arg(long, env = "WATCHDOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// How long each deploy is watched, in seconds (default 1800).
    #[arg(long, env = "WATCHDOG_MONITORING_WINDOW_SECS")]
    pub monitoring_window_secs: Option<u64>,
}
