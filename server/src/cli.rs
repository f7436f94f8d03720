//! Command-line interface (clap derive). Every flag can also come from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

// The settings `serve` and `run` share are the configuration's own flag and environment
// layer, so they live with it: the configuration does not depend on the command line.
pub use crate::config::ServerArgs;

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
    /// Run the server: HTTP ingestion, live verdicts, incidents, alerts and the web app.
    Serve(ServeArgs),
    /// Follow metric, deploy and log files as they grow (like tail -F), with the same
    /// engine and store as `serve`.
    Run(RunArgs),
    /// Tell a WatchDog server about a deploy (for deploy scripts).
    Notify(NotifyArgs),
    /// Load-test a server's metric ingestion and report samples/s, latency and memory.
    Loadgen(LoadgenArgs),
    /// Print each log line's stable signature id and template, one JSON object per line.
    Signatures(SignaturesArgs),
    /// Run the scenario catalogue and report detection, false-alarm and inconclusive
    /// rates and detection delays.
    Benchmark(BenchmarkArgs),
    /// Write a catalogue scenario as metrics.jsonl, deploys.jsonl and logs.jsonl.
    Simulate(SimulateArgs),
    /// Show a bad deploy being caught, with its verdict and evidence.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    /// Seeds per scenario.
    #[arg(long, default_value_t = 100)]
    pub trials: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only these scenarios (repeatable); default all.
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Detector configuration (TOML or JSON).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Monitoring window in seconds.
    #[arg(long)]
    pub monitoring_window_secs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario name from the catalogue (see `watchdog benchmark`); with --state-dir,
    /// `healthy` by default and `error_spike` with --bad-deploy.
    #[arg(long, required_unless_present = "state_dir")]
    pub scenario: Option<String>,
    /// Directory to write metrics.jsonl, deploys.jsonl, logs.jsonl and expected.json to.
    #[arg(long, required_unless_present_any = ["serve_metrics", "state_dir"])]
    pub out: Option<PathBuf>,
    /// The original WatchDog's layout: write metrics.jsonl, deploy-events.jsonl and
    /// app.log into this directory for `watchdog run --state-dir`, ending now
    /// (docs/migration.md).
    #[arg(long, conflicts_with_all = ["out", "serve_metrics"])]
    pub state_dir: Option<PathBuf>,
    /// With --state-dir: the simulated deploy's id (default v1.0.0).
    #[arg(long, requires = "state_dir")]
    pub deploy: Option<String>,
    /// With --state-dir: make the simulated deploy a bad one (scenario error_spike).
    #[arg(long, requires = "state_dir", conflicts_with = "scenario")]
    pub bad_deploy: bool,
    /// Instead of writing files, serve the scenario on /metrics in Prometheus text format
    /// at this address (e.g. 127.0.0.1:9101), replayed in real time times --speed.
    #[arg(long)]
    pub serve_metrics: Option<std::net::SocketAddr>,
    /// Replay speed for --serve-metrics (20 = twenty times real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Minutes of data after the deploy (the monitoring window is 30 minutes); default
    /// 30, or 40 with --state-dir.
    #[arg(long)]
    pub after_mins: Option<u64>,
    /// Move every timestamp by this many seconds (negative moves back), e.g. to load
    /// several scenarios one after the other into one server.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub shift_secs: i64,
    /// Prefix added to the scenario's service names (e.g. `demo-` gives demo-checkout),
    /// so several scenarios can be loaded into one server.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Effect size multiplier (1 = as catalogued).
    #[arg(long, default_value_t = 1.0)]
    pub shift: f64,
    /// Noise multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub noise: f64,
    /// Traffic multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub traffic: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Scenario to show.
    #[arg(long, default_value = "error_spike")]
    pub scenario: String,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SignaturesArgs {
    /// Log file (JSON lines or plain text); `-` or nothing reads stdin.
    pub file: Option<String>,
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
    /// Skip invalid lines (counted and reported on stderr) instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on, on the host of --listen (default 127.0.0.1); the original
    /// WatchDog's flag.
    #[arg(long, env = "WATCHDOG_PORT")]
    pub port: Option<u16>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Metric samples file to follow (default: metrics.jsonl in --state-dir).
    #[arg(long, requires = "deploys")]
    pub metrics: Option<PathBuf>,
    /// Deploy events file to follow (default: deploy-events.jsonl in --state-dir).
    #[arg(long, requires = "metrics")]
    pub deploys: Option<PathBuf>,
    /// Application log file to follow, JSON lines or plain text (default, without
    /// --metrics: the config file's `log_file`, else app.log in --state-dir).
    #[arg(long, visible_alias = "log-file")]
    pub logs: Option<PathBuf>,
    /// Also post every alert to this URL: a Slack incoming webhook
    /// (`https://hooks.slack.com/services/…`) gets Block Kit, any other URL the plain-text
    /// alert body. The original WatchDog's flag; overrides the config file's `webhook_url`.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Read the files to their end, close every watch and exit instead of following.
    #[arg(long)]
    pub once: bool,
    /// Also serve the HTTP API and web app while following.
    #[arg(long)]
    pub serve: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// The release id, e.g. v1.4.2 or a commit sha.
    #[arg(long, visible_alias = "deploy")]
    pub deploy_id: String,
    /// Service deployed.
    #[arg(long, env = "WATCHDOG_SERVICE", default_value = crate::commands::compat::DEFAULT_SERVICE)]
    pub service: String,
    /// Environment deployed to.
    #[arg(long)]
    pub environment: String,
    /// Deploy time (RFC 3339); now when omitted.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Append the deploy to deploy-events.jsonl in this directory, for a running
    /// `watchdog run --state-dir`, instead of posting it to a server (the original
    /// WatchDog's file mode).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Server base URL.
    #[arg(long, env = "WATCHDOG_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token.
    #[arg(long, env = "WATCHDOG_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token.
    #[arg(long, env = "WATCHDOG_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Samples per request (NDJSON lines).
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Target samples per second in total (0 = as fast as the server takes them).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Distinct services the samples are spread over.
    #[arg(long, default_value_t = 20)]
    pub services: usize,
    /// PID of the server, to sample its resident memory (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// What to send: NDJSON, OTLP (protobuf or JSON) or Prometheus remote write.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub protocol: crate::commands::loadgen::push::Protocol,
    /// Series churn (NDJSON): every this many seconds, `--churn-step` services are
    /// replaced by new names (0 = the same services throughout).
    #[arg(long, default_value_t = 0)]
    pub churn_every_secs: u64,
    /// Services replaced at each churn step.
    #[arg(long, default_value_t = 1000)]
    pub churn_step: usize,
    /// One more connection, sending one batch a second, stamps its samples this many
    /// seconds off the wall clock (a client with a wrong clock; negative = behind).
    /// NDJSON only.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub skewed_clock_secs: i64,
    /// Post a deploy of a live service every this many seconds (0 = none); at the end,
    /// wait until every posted deploy has a verdict and report it.
    #[arg(long, default_value_t = 0)]
    pub deploys_every_secs: u64,
    /// Longest wait at the end for the posted deploys' verdicts, in seconds.
    #[arg(long, default_value_t = 600)]
    pub judge_wait_secs: u64,
}
