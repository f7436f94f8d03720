//! Server configuration: a TOML file (`--config`), overridden by environment variables,
//! overridden by flags (clap reads both). docs/config.md lists every key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::store::sqlite::Durability;

/// Settings shared by `serve` and `run` (docs/config.md).
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// Config file (TOML): server keys plus a `[detector]` table.
    #[arg(long, env = "WATCHDOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the SQLite database (default ./state).
    #[arg(long, env = "WATCHDOG_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "WATCHDOG_LISTEN")]
    pub listen: Option<String>,
    /// Built web app to serve, with SPA fallback (default ./dist).
    #[arg(long, env = "WATCHDOG_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Largest request body in bytes (default 33554432).
    #[arg(long, env = "WATCHDOG_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// What moves the engine's watermark: wall (default) or data.
    #[arg(long, env = "WATCHDOG_CLOCK", value_enum)]
    pub clock: Option<Clock>,
    /// Dashboard base URL used in alert links.
    #[arg(long, env = "WATCHDOG_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PostgreSQL URL (postgres://…, add ?pgbouncer=true behind a transaction pooler);
    /// SQLite in the state directory when unset. See docs/postgres.md.
    #[arg(long, env = "WATCHDOG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// SQLite durability: normal (default, survives process crashes) or full.
    #[arg(long, env = "WATCHDOG_SQLITE_SYNCHRONOUS")]
    pub sqlite_synchronous: Option<String>,
    /// How long each deploy is watched, in seconds.
    #[arg(long, env = "WATCHDOG_MONITORING_WINDOW_SECS")]
    pub monitoring_window_secs: Option<u64>,
    /// How far before a deploy the baseline reaches, in seconds.
    #[arg(long, env = "WATCHDOG_BASELINE_WINDOW_SECS")]
    pub baseline_window_secs: Option<u64>,
    /// Bearer token required for ingestion and every change.
    #[arg(long, env = "WATCHDOG_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Bearer token required for reads (reads are open when unset).
    #[arg(long, env = "WATCHDOG_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// Secret of the GitHub webhook (X-Hub-Signature-256).
    #[arg(long, env = "WATCHDOG_GITHUB_SECRET", hide_env_values = true)]
    pub github_secret: Option<String>,
    /// Token of the GitLab webhook (X-Gitlab-Token).
    #[arg(long, env = "WATCHDOG_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<String>,
    /// Accept writes without a token (local experiments only).
    #[arg(long, env = "WATCHDOG_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
}

/// A secret value: never printed, compared in constant time.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; empty means unset.
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let v = value.into();
        (!v.is_empty()).then_some(Secret(v))
    }

    /// Constant-time comparison with what a client sent.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }

    /// The raw bytes, for HMAC keys.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Default of `max_future_skew_secs`: five minutes covers clocks that NTP keeps in step
/// and batching senders, and is far below the hour of a wrong time zone.
pub const DEFAULT_MAX_FUTURE_SKEW_SECS: u64 = 300;

/// Default of `retention_secs`: two weeks of samples and logs (at the ≈ 195 bytes a
/// stored sample takes, 100 series at one sample per 10 s hold ≈ 2.4 GB).
pub const DEFAULT_RETENTION_SECS: u64 = 14 * 86_400;

/// The history a restart and the detector reach back for: the longest baseline (or the
/// daily-pattern check a period earlier), the watch, and the lateness.
pub fn history_needed_secs(d: &watchdog_core::Config) -> u64 {
    d.max_baseline_window_secs
        .max(d.seasonal_period_secs)
        .max(d.baseline_window_secs)
        + d.baseline_window_secs
        + d.monitoring_window_secs
        + d.allowed_lateness_secs
}

/// A retention shorter than the history the detector needs would delete baselines before
/// they are used.
///
/// # Errors
/// Naming both values.
pub fn check_retention(retention_secs: u64, d: &watchdog_core::Config) -> anyhow::Result<()> {
    let needed = history_needed_secs(d);
    if retention_secs != 0 && retention_secs < needed {
        anyhow::bail!(
            "retention_secs ({retention_secs}) is shorter than the history the detector reaches back for ({needed} s: the longest baseline or daily-pattern check, the baseline, the watch and the lateness); raise it or set 0 to keep everything"
        );
    }
    Ok(())
}

/// How the engine's watermark moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// With the wall clock, every second: watches end on time even when no data arrives.
    #[default]
    Wall,
    /// Only with the data's event time (replaying old data through the server).
    Data,
}

/// The `[server]`-level keys of the config file; the detector lives under `[detector]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    web_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    max_future_skew_secs: Option<u64>,
    retention_secs: Option<u64>,
    clock: Option<Clock>,
    public_url: Option<String>,
    sqlite_synchronous: Option<String>,
    allow_unauthenticated: Option<bool>,
    detector: Option<watchdog_core::Config>,
    prometheus: Option<crate::ingest::prometheus::PrometheusConfig>,
    limits: Option<crate::ingest::limits::Limits>,
    otlp: Option<crate::ingest::otlp::OtlpConfig>,
    remote_write: Option<crate::ingest::remote_write::RemoteWriteConfig>,
    github_status: Option<crate::feedback::github::GithubStatusConfig>,
}

/// Everything `watchdog serve` and `watchdog run` need.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the database lives.
    pub state_dir: PathBuf,
    /// The built web app (`dist/`), served when it exists.
    pub web_dir: PathBuf,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Records stamped further than this after the server's clock are refused, each
    /// with its own message (a sender with a wrong clock must not move event time).
    pub max_future_skew_secs: u64,
    /// Samples and log events older than this are deleted (0 keeps them for ever);
    /// deploys, verdicts, incidents and audit are kept.
    pub retention_secs: u64,
    /// Name lengths, metrics per record, series and metric names held (`[limits]`).
    pub limits: crate::ingest::limits::Limits,
    /// Watermark source.
    pub clock: Clock,
    /// Base URL of the dashboard, for links in alerts.
    pub public_url: String,
    /// SQLite commit durability.
    pub durability: Durability,
    /// PostgreSQL URL; SQLite in `state_dir` when unset. May hold a password.
    pub database_url: Option<Secret>,
    /// Metrics pulled from Prometheus (`[prometheus]` in the config file).
    pub prometheus: Option<crate::ingest::prometheus::PrometheusConfig>,
    /// The OTLP receiver (`[otlp]`).
    pub otlp: crate::ingest::otlp::OtlpConfig,
    /// The remote-write receiver (`[remote_write]`).
    pub remote_write: crate::ingest::remote_write::RemoteWriteConfig,
    /// Detector settings.
    pub detector: watchdog_core::Config,
    /// Token for ingestion and changes.
    pub api_token: Option<Secret>,
    /// Token for reads (reads are open when unset).
    pub read_token: Option<Secret>,
    /// GitHub webhook secret.
    pub github_secret: Option<Secret>,
    /// GitLab webhook token.
    pub gitlab_token: Option<Secret>,
    /// Serve writes without a token (local experiments only).
    pub allow_unauthenticated: bool,
    /// Deployment statuses posted back to GitHub (`[github_status]`); off when unset.
    pub github_status: Option<crate::feedback::github::GithubStatusConfig>,
}

impl ServerConfig {
    /// Test and library default: loopback, wall clock, default detector.
    pub fn for_state_dir(state_dir: &Path) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            state_dir: state_dir.to_path_buf(),
            web_dir: PathBuf::from("dist"),
            max_body_bytes: 32 * 1024 * 1024,
            max_future_skew_secs: DEFAULT_MAX_FUTURE_SKEW_SECS,
            limits: Default::default(),
            retention_secs: DEFAULT_RETENTION_SECS,
            clock: Clock::Wall,
            public_url: "http://127.0.0.1:8080".into(),
            durability: Durability::Normal,
            database_url: None,
            prometheus: None,
            otlp: Default::default(),
            remote_write: Default::default(),
            detector: watchdog_core::Config::default(),
            api_token: None,
            read_token: None,
            github_secret: None,
            gitlab_token: None,
            allow_unauthenticated: false,
            github_status: None,
        }
    }

    /// Merges file, environment and flags (flags and environment already merged by clap).
    ///
    /// # Errors
    /// An unreadable or invalid config file, an invalid address, or an invalid detector
    /// setting, each naming the value.
    pub fn load(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen_text = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen address {listen_text:?} is not HOST:PORT, e.g. 127.0.0.1:8080")
        })?;
        let mut detector = file.detector.unwrap_or_default();
        if let Some(secs) = args.monitoring_window_secs {
            detector.monitoring_window_secs = secs;
        }
        if let Some(secs) = args.baseline_window_secs {
            detector.baseline_window_secs = secs;
        }
        detector.validate()?;
        let retention_secs = file.retention_secs.unwrap_or(DEFAULT_RETENTION_SECS);
        check_retention(retention_secs, &detector)?;
        let sync_text = args
            .sqlite_synchronous
            .clone()
            .or(file.sqlite_synchronous)
            .unwrap_or_else(|| "normal".into());
        let durability = sync_text.parse().map_err(anyhow::Error::msg)?;
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        Ok(ServerConfig {
            listen,
            state_dir: args
                .state_dir
                .clone()
                .or(file.state_dir)
                .unwrap_or_else(|| PathBuf::from("state")),
            web_dir: args
                .web_dir
                .clone()
                .or(file.web_dir)
                .unwrap_or_else(|| PathBuf::from("dist")),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(32 * 1024 * 1024),
            max_future_skew_secs: file
                .max_future_skew_secs
                .unwrap_or(DEFAULT_MAX_FUTURE_SKEW_SECS),
            limits: file.limits.unwrap_or_default(),
            retention_secs,
            clock: args.clock.or(file.clock).unwrap_or_default(),
            public_url,
            durability,
            database_url: args.database_url.clone().and_then(Secret::new),
            prometheus: file.prometheus,
            otlp: file.otlp.unwrap_or_default(),
            remote_write: file.remote_write.unwrap_or_default(),
            detector,
            api_token: args.api_token.clone().and_then(Secret::new),
            read_token: args.read_token.clone().and_then(Secret::new),
            github_secret: args.github_secret.clone().and_then(Secret::new),
            gitlab_token: args.gitlab_token.clone().and_then(Secret::new),
            allow_unauthenticated: args.allow_unauthenticated
                || file.allow_unauthenticated.unwrap_or(false),
            github_status: file.github_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter"));
        assert!(Secret::new("").is_none());
    }

    #[test]
    fn limits_come_from_their_table_and_unknown_ones_are_named() {
        let f =
            toml::from_str::<FileConfig>("max_future_skew_secs = 60\n[limits]\nmax_series = 5\n")
                .unwrap();
        let limits = f.limits.unwrap();
        assert_eq!(limits.max_series, 5);
        assert_eq!(limits.max_label_bytes, 256, "the rest keep their defaults");
        assert_eq!(f.max_future_skew_secs, Some(60));
        let err = toml::from_str::<FileConfig>("[limits]\nmax_serie = 5\n").unwrap_err();
        assert!(err.to_string().contains("max_serie"), "{err}");
    }

    #[test]
    fn a_retention_shorter_than_the_baseline_is_refused() {
        let d = watchdog_core::Config::default();
        let err = check_retention(3600, &d).unwrap_err().to_string();
        assert!(err.contains("retention_secs (3600)"), "{err}");
        check_retention(0, &d).unwrap();
        check_retention(DEFAULT_RETENTION_SECS, &d).unwrap();
    }

    #[test]
    fn file_rejects_unknown_keys() {
        let err = toml::from_str::<FileConfig>("lisen = \"x\"").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
