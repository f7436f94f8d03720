//! The original WatchDog's interface, on top of this one (docs/migration.md): its state
//! directory layout, its JSON config file, its storage variables and its `webhook_url`.
//! Everything here translates to the current engine, store and alert channels; nothing
//! is a second implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;

use crate::alerts::Channel;
use crate::cli::ServerArgs;
use crate::config::ServerConfig;
use crate::store::Store;

/// Service name given to deploys that name none (`notify`, `simulate --state-dir`): the
/// original watched one service and had no such field. Unlabelled metric samples and
/// log lines match a deploy of any service, so a single-service user never sees it
/// except in titles.
pub const DEFAULT_SERVICE: &str = "app";

/// Environment of `simulate --state-dir`'s deploy.
pub const DEFAULT_ENVIRONMENT: &str = "production";

/// Metric samples in the original's state directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Deploy events in the original's state directory (appended by `notify --state-dir`).
pub const DEPLOYS_FILE: &str = "deploy-events.jsonl";
/// Application log in the original's state directory, unless the config names one.
pub const LOG_FILE: &str = "app.log";

/// The original's JSON config file:
/// `{"baseline_capacity":120,"monitoring_window_secs":300,"log_file":"…","webhook_url":"…",
/// "detector":{"error_threshold":0.08,"error_drift":0.002,"latency_threshold":120.0,
/// "latency_drift":5.0}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyConfig {
    /// How many samples its baseline ring held; replaced by the baseline window.
    #[serde(default)]
    baseline_capacity: Option<serde_json::Number>,
    /// How long each deploy is watched.
    #[serde(default)]
    pub monitoring_window_secs: Option<u64>,
    /// The application log to follow.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Where alerts are posted.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Its fixed CUSUM thresholds and drifts; replaced by derived thresholds.
    #[serde(default)]
    detector: Option<LegacyDetector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyDetector {
    #[serde(default)]
    error_threshold: Option<f64>,
    #[serde(default)]
    error_drift: Option<f64>,
    #[serde(default)]
    latency_threshold: Option<f64>,
    #[serde(default)]
    latency_drift: Option<f64>,
}

impl LegacyConfig {
    /// Reads `path` when it is the original's JSON format; `None` for anything else (the
    /// current TOML format, read by [`ServerConfig::load`]).
    ///
    /// # Errors
    /// An unreadable file, or a JSON file with an unknown key or a value of the wrong
    /// type, naming the file, the key and its position.
    pub fn read(path: &Path) -> anyhow::Result<Option<LegacyConfig>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        if !text.trim_start().starts_with('{') {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "config file {} (the original WatchDog's JSON format, see docs/migration.md)",
                path.display()
            )
        })
    }

    /// The keys present whose meaning the current statistics replace.
    pub fn replaced_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.baseline_capacity.is_some() {
            keys.push("baseline_capacity");
        }
        if let Some(d) = &self.detector {
            for (k, v) in [
                ("detector.error_threshold", d.error_threshold),
                ("detector.error_drift", d.error_drift),
                ("detector.latency_threshold", d.latency_threshold),
                ("detector.latency_drift", d.latency_drift),
            ] {
                if v.is_some() {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// The one warning about replaced keys, or `None` when there are none.
    pub fn warning(&self, path: &Path) -> Option<String> {
        let keys = self.replaced_keys();
        if keys.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        if keys.iter().any(|k| k.starts_with("detector.")) {
            parts.push(
                "the fixed CUSUM thresholds and drifts (detector.*) are replaced by thresholds derived \
                 from the false-alarm budget `false_alarm_rate` (default 0.01) on each metric's \
                 standardized values, plus a minimum effect `min_relative_effect` (default 0.10)",
            );
        }
        if keys.contains(&"baseline_capacity") {
            parts.push(
                "the baseline sample count (baseline_capacity) is replaced by `baseline_window_secs` \
                 (default 3600) reaching back until `target_baseline_samples` (default 60) are held",
            );
        }
        Some(format!(
            "warning: config file {}: {} are ignored: {}. Set the new keys in a TOML config's [detector] table (docs/config.md, docs/migration.md).",
            path.display(),
            keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
            parts.join("; ")
        ))
    }
}

/// [`ServerConfig::load`], also taking the original's JSON config file: its
/// `monitoring_window_secs` applies unless a flag or `WATCHDOG_MONITORING_WINDOW_SECS` set
/// one, and the replaced keys are reported once on stderr. Returns the legacy file too,
/// for `log_file` and `webhook_url`.
///
/// # Errors
/// As [`ServerConfig::load`] and [`LegacyConfig::read`].
pub fn load_config(args: &ServerArgs) -> anyhow::Result<(ServerConfig, Option<LegacyConfig>)> {
    let legacy = match &args.config {
        Some(path) => LegacyConfig::read(path)?,
        None => None,
    };
    let Some(legacy) = legacy else {
        return Ok((ServerConfig::load(args)?, None));
    };
    let path = args.config.clone().unwrap_or_default();
    let mut without_file = args.clone();
    without_file.config = None;
    let mut config = ServerConfig::load(&without_file)?;
    if let (Some(secs), None) = (legacy.monitoring_window_secs, args.monitoring_window_secs) {
        config.detector.monitoring_window_secs = secs;
        config
            .detector
            .validate()
            .with_context(|| format!("config file {}: monitoring_window_secs", path.display()))?;
    }
    if let Some(w) = legacy.warning(&path) {
        eprintln!("{w}");
    }
    Ok((config, Some(legacy)))
}

/// The alert channel for the original's `webhook_url`: Slack's Block Kit for a Slack
/// incoming webhook (host `hooks.slack.com`, or a path of Slack's shape
/// `/services/T…/B…/…` as Slack-compatible receivers use), the plain-text body for any
/// other URL.
///
/// # Errors
/// A value that is not an http(s) URL (the value itself is not shown: it may hold a
/// credential).
pub fn webhook_channel(url: &str) -> anyhow::Result<Channel> {
    let parsed = reqwest::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .context("webhook URL (--webhook-url or the config's webhook_url) is not an http(s) URL, e.g. https://hooks.slack.com/services/T000/B000/XXXX")?;
    let slack =
        parsed.host_str() == Some("hooks.slack.com") || parsed.path().starts_with("/services/");
    Ok(if slack {
        Channel::Slack {
            webhook_url: url.trim().to_string(),
        }
    } else {
        Channel::Text {
            url: url.trim().to_string(),
        }
    })
}

/// Whether a database URL names PostgreSQL.
fn is_postgres(url: &str) -> bool {
    let u = url.trim().to_ascii_lowercase();
    u.starts_with("postgres://") || u.starts_with("postgresql://")
}

/// A SQLite file named by `WATCHDOG_DATABASE_URL` (`path`, `sqlite:path`,
/// `sqlite://path`).
fn sqlite_path(url: &str) -> PathBuf {
    let u = url.trim();
    let rest = u
        .strip_prefix("sqlite://")
        .or_else(|| u.strip_prefix("sqlite:"))
        .unwrap_or(u);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// Where `WATCHDOG_STORAGE` and `WATCHDOG_DATABASE_URL` put the data.
#[derive(Debug, PartialEq, Eq)]
pub enum Storage {
    /// SQLite in `watchdog.db` of the state directory.
    StateDir,
    /// SQLite in this file.
    SqliteFile(PathBuf),
    /// PostgreSQL (or Supabase's Postgres) at the configured URL.
    Postgres,
}

/// Resolves the original's storage variables, read through `var`, against the configured
/// database URL.
///
/// # Errors
/// `json`, `supabase` without a Postgres connection string, an unknown value, or a
/// contradiction between the variables, each with what to set instead.
pub fn storage(
    var: impl Fn(&str) -> Option<String>,
    database_url: Option<&str>,
) -> anyhow::Result<Storage> {
    let get = |k: &str| {
        var(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let kind = get("WATCHDOG_STORAGE").map(|s| s.to_ascii_lowercase());
    let url = database_url.map(str::trim).filter(|u| !u.is_empty());
    match (kind.as_deref(), url) {
        (None | Some("postgres" | "postgresql" | "supabase"), Some(u)) if is_postgres(u) => {
            Ok(Storage::Postgres)
        }
        (None | Some("sqlite"), Some(u)) if !is_postgres(u) => {
            Ok(Storage::SqliteFile(sqlite_path(u)))
        }
        (None, Some(_)) => Ok(Storage::Postgres),
        (None | Some("sqlite"), None) => Ok(Storage::StateDir),
        (Some("sqlite"), Some(_)) => anyhow::bail!(
            "WATCHDOG_STORAGE=sqlite but WATCHDOG_DATABASE_URL is a PostgreSQL URL: unset WATCHDOG_STORAGE to use PostgreSQL, or set WATCHDOG_DATABASE_URL to a SQLite file such as state/watchdog.db"
        ),
        (Some("json"), _) => anyhow::bail!(
            "WATCHDOG_STORAGE=json (the original WatchDog's JSON-file fallback) is no longer available: WatchDog keeps everything in SQLite with no server to run. Unset WATCHDOG_STORAGE (or set it to sqlite) to use watchdog.db in the state directory, or set WATCHDOG_DATABASE_URL to a SQLite file path"
        ),
        (Some("supabase"), _) => anyhow::bail!("{}", supabase_help(get("SUPABASE_URL").as_deref())),
        (Some("postgres" | "postgresql"), _) => anyhow::bail!(
            "WATCHDOG_STORAGE={} needs WATCHDOG_DATABASE_URL=postgres://user:password@host:5432/database (docs/postgres.md)",
            kind.as_deref().unwrap_or_default()
        ),
        (Some(other), _) => anyhow::bail!(
            "WATCHDOG_STORAGE must be sqlite, supabase or json (or unset), got {other:?}"
        ),
    }
}

/// How to point WatchDog at the Supabase project the original wrote to over REST.
fn supabase_help(supabase_url: Option<&str>) -> String {
    let project_ref = supabase_url
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| {
            u.host_str()
                .and_then(|h| h.strip_suffix(".supabase.co"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "<project-ref>".to_string());
    format!(
        "WATCHDOG_STORAGE=supabase: WatchDog does not write through Supabase's REST API (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY are not used); it connects to the project's Postgres database directly. \
Set WATCHDOG_DATABASE_URL to the project's connection string (Supabase dashboard → Connect), with the database password, not the service role key:\n  \
direct:  postgres://postgres:<password>@db.{project_ref}.supabase.co:5432/postgres?sslmode=require\n  \
pooler:  postgres://postgres.{project_ref}:<password>@aws-0-<region>.pooler.supabase.com:6543/postgres?pgbouncer=true&sslmode=require  (transaction pooler: keep pgbouncer=true)\n\
WatchDog creates its tables at start (supabase/migrations, row level security on); see docs/postgres.md."
    )
}

/// Opens the store the configuration and the original's storage variables name.
///
/// # Errors
/// As [`storage`], a SQLite file holding another program's tables, or the store failing
/// to open.
pub async fn open_store(config: &ServerConfig) -> anyhow::Result<Arc<dyn Store>> {
    let url = config
        .database_url
        .as_ref()
        .map(|s| String::from_utf8_lossy(s.expose()).into_owned());
    match storage(|k| std::env::var(k).ok(), url.as_deref())? {
        Storage::StateDir => {
            let old = config.state_dir.join("watchdog.sqlite");
            if old.exists() {
                eprintln!(
                    "note: {} is the original WatchDog's database; WatchDog keeps its own in {} and leaves that file as it is",
                    old.display(),
                    config.state_dir.join("watchdog.db").display()
                );
            }
            Ok(crate::server::open_store(config).await?)
        }
        Storage::Postgres => Ok(crate::server::open_store(config).await?),
        Storage::SqliteFile(path) => {
            refuse_foreign_sqlite(&path).await?;
            Ok(Arc::new(
                crate::store::sqlite::SqliteStore::open_file(&path, config.durability).await?,
            ))
        }
    }
}

/// A SQLite file with tables but without WatchDog's `schema_migrations` is another
/// program's (the original WatchDog's `watchdog.sqlite`): its `incidents` table would
/// clash with ours, so it is refused rather than changed.
async fn refuse_foreign_sqlite(path: &Path) -> anyhow::Result<()> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(());
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening SQLite file {}", path.display()))?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    let _ = conn.close().await;
    if !tables.is_empty() && !tables.iter().any(|t| t == "schema_migrations") {
        let suggestion = path.with_file_name("watchdog.db");
        anyhow::bail!(
            "{} holds another schema (tables {}), probably the original WatchDog's database: WatchDog keeps its own tables and does not change these. Point WATCHDOG_DATABASE_URL at a new file, e.g. {}",
            path.display(),
            tables.join(", "),
            suggestion.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn storage_variables_resolve_or_say_what_to_set() {
        assert_eq!(storage(vars(&[]), None).unwrap(), Storage::StateDir);
        assert_eq!(
            storage(
                vars(&[("WATCHDOG_STORAGE", "sqlite")]),
                Some(".WatchDog/watchdog.sqlite")
            )
            .unwrap(),
            Storage::SqliteFile(PathBuf::from(".WatchDog/watchdog.sqlite"))
        );
        assert_eq!(
            storage(vars(&[]), Some("sqlite:///tmp/x.db?mode=rwc")).unwrap(),
            Storage::SqliteFile(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(
            storage(
                vars(&[("WATCHDOG_STORAGE", "supabase")]),
                Some("postgres://u:p@h/db")
            )
            .unwrap(),
            Storage::Postgres
        );
        let err = storage(
            vars(&[
                ("WATCHDOG_STORAGE", "supabase"),
                ("SUPABASE_URL", "https://abcdefgh.supabase.co"),
                ("SUPABASE_SERVICE_ROLE_KEY", "eyJ-secret"),
            ]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("db.abcdefgh.supabase.co:5432"), "{err}");
        assert!(err.contains("postgres.abcdefgh:<password>@"), "{err}");
        assert!(err.contains("pgbouncer=true"), "{err}");
        assert!(!err.contains("eyJ-secret"), "{err}");
        let err = storage(vars(&[("WATCHDOG_STORAGE", "json")]), None).unwrap_err();
        assert!(err.to_string().contains("sqlite"), "{err}");
        let err = storage(vars(&[("WATCHDOG_STORAGE", "mongo")]), None).unwrap_err();
        assert!(err.to_string().contains("\"mongo\""), "{err}");
    }

    #[test]
    fn webhook_urls_pick_slack_or_plain_text() {
        let slack = webhook_channel("https://hooks.slack.com/services/T0/B0/x").unwrap();
        assert_eq!(slack.name(), "slack");
        let slack_shaped = webhook_channel("http://127.0.0.1:9/services/T0/B0/x").unwrap();
        assert_eq!(slack_shaped.name(), "slack");
        let text = webhook_channel("https://hooks.example.test/watchdog").unwrap();
        assert_eq!(text.name(), "text");
        let err = webhook_channel("hooks.example.test/secret-path").unwrap_err();
        assert!(!err.to_string().contains("secret-path"), "{err}");
    }

    #[test]
    fn the_original_config_is_read_with_its_replaced_keys_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog.json");
        std::fs::write(
            &path,
            r#"{"baseline_capacity":120,"monitoring_window_secs":300,"log_file":".WatchDog/app.log","webhook_url":"https://hooks.example.test/watchdog","detector":{"error_threshold":0.08,"error_drift":0.002,"latency_threshold":120.0,"latency_drift":5.0}}"#,
        )
        .unwrap();
        let c = LegacyConfig::read(&path).unwrap().unwrap();
        assert_eq!(c.monitoring_window_secs, Some(300));
        assert_eq!(c.log_file.as_deref(), Some(Path::new(".WatchDog/app.log")));
        let w = c.warning(&path).unwrap();
        for k in [
            "baseline_capacity",
            "detector.error_threshold",
            "detector.latency_drift",
            "false_alarm_rate",
            "baseline_window_secs",
        ] {
            assert!(w.contains(k), "{k} missing from {w}");
        }
        std::fs::write(&path, r#"{"monitoring_window_secs":300,"webhok_url":"x"}"#).unwrap();
        let err = format!("{:#}", LegacyConfig::read(&path).unwrap_err());
        assert!(
            err.contains("webhok_url") && err.contains("watchdog.json"),
            "{err}"
        );
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n").unwrap();
        assert!(LegacyConfig::read(&path).unwrap().is_none());
    }
}
