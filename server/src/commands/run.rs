//! `watchdog run`: follows metric, deploy and log files (like `tail -F`) with the same
//! engine and store as `watchdog serve`, for people without an HTTP pipeline.
//!
//! Each round reads the new complete lines of every file, orders them by event time,
//! stores them and feeds the engine. File positions are kept in the state directory
//! (`run-offsets.json`), so a restart continues where it stopped.
//!
//! Without `--metrics` it follows the original WatchDog's state directory instead
//! (`metrics.jsonl`, `deploy-events.jsonl`, `app.log` or the config's `log_file`; see
//! [`super::compat`]), in event time, and prints each verdict for people.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use watchdog_core::{Deploy, LogEvent, LogLevel, Sample, Timestamp};

use crate::cli::RunArgs;
use crate::commands::serve;
use crate::config::ServerConfig;
use crate::ingest::accept;
use crate::ingest::body::Item;
use crate::ingest::files::Follower;
use crate::state::AppState;

/// Most bytes read from one file per round.
const ROUND_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Offsets {
    files: BTreeMap<String, (u64, usize)>,
}

fn offsets_path(state_dir: &Path) -> PathBuf {
    state_dir.join("run-offsets.json")
}

fn load_offsets(state_dir: &Path) -> Offsets {
    std::fs::read_to_string(offsets_path(state_dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_offsets(state_dir: &Path, followers: &[(Kind, Follower)]) -> std::io::Result<()> {
    let o = Offsets {
        files: followers
            .iter()
            .map(|(_, f)| (f.path().display().to_string(), (f.offset(), f.line())))
            .collect(),
    };
    let tmp = offsets_path(state_dir).with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&o)?)?;
    std::fs::rename(tmp, offsets_path(state_dir))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Metrics,
    Deploys,
    Logs,
}

#[derive(Debug)]
enum Rec {
    Sample(Sample, String),
    Deploy(Deploy),
    Log(LogEvent, String),
}

impl Rec {
    fn ts(&self) -> Timestamp {
        match self {
            Rec::Sample(s, _) => s.timestamp,
            Rec::Deploy(d) => d.timestamp,
            Rec::Log(l, _) => l.timestamp,
        }
    }
}

/// A plain-text log line: a leading timestamp (`2026-03-30T19:30:00Z ERROR …`) is its
/// event time, else now; a level after it, else the first word that names a level,
/// sets the level.
fn plain_log(line: &str, now_ms: i64) -> LogEvent {
    let parsed = watchdog_core::signatures::parse_log_line(line);
    let level = parsed.level.unwrap_or_else(|| {
        line.split_whitespace()
            .take(4)
            .find_map(LogLevel::parse)
            .unwrap_or(LogLevel::Info)
    });
    let (timestamp, message) = match parsed.timestamp {
        Some(t) => (t, parsed.message),
        None => (Timestamp(now_ms), line.to_string()),
    };
    LogEvent {
        timestamp,
        service: String::new(),
        environment: String::new(),
        level,
        message,
    }
}

fn parse_line(kind: Kind, line: &str, now_ms: i64) -> Result<Rec, watchdog_core::Error> {
    match kind {
        Kind::Metrics => Sample::from_json_line(line).map(|s| Rec::Sample(s, line.to_string())),
        Kind::Deploys => Deploy::from_json_line(line).map(Rec::Deploy),
        Kind::Logs => {
            let ev = if line.trim_start().starts_with('{') {
                LogEvent::from_json_line(line)?
            } else {
                plain_log(line, now_ms)
            };
            let raw = serde_json::json!({
                "timestamp": ev.timestamp,
                "service": ev.service,
                "environment": ev.environment,
                "level": ev.level.as_str(),
                "message": ev.message,
            })
            .to_string();
            Ok(Rec::Log(ev, raw))
        }
    }
}

/// Stores and feeds one round of records, in event-time order.
async fn apply(state: &AppState, mut recs: Vec<Rec>, announce: bool) -> anyhow::Result<()> {
    recs.sort_by_key(Rec::ts);
    while !recs.is_empty() {
        // The longest run of one kind at the front.
        let j = recs
            .iter()
            .position(|r| std::mem::discriminant(r) != std::mem::discriminant(&recs[0]))
            .unwrap_or(recs.len());
        let group: Vec<Rec> = recs.drain(..j).collect();
        match &group[0] {
            Rec::Sample(..) => {
                let items = group
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, r)| match r {
                        Rec::Sample(record, raw) => Some(Item {
                            record,
                            raw,
                            index,
                            line: 0,
                        }),
                        _ => None,
                    })
                    .collect();
                let done = accept::samples(state, items)
                    .await
                    .map_err(|e| anyhow::anyhow!("storing samples: {e}"))?;
                warn_refused(&done.rejected);
            }
            Rec::Deploy(..) => {
                let deploys: Vec<Deploy> = group
                    .into_iter()
                    .filter_map(|r| match r {
                        Rec::Deploy(d) => Some(d),
                        _ => None,
                    })
                    .collect();
                if announce {
                    let window = state.config.detector.monitoring_window_secs;
                    for d in &deploys {
                        println!(
                            "watching deploy {} of {} ({}), deployed {}, for up to {window} s",
                            d.deploy_id,
                            if d.service.is_empty() {
                                "(all services)"
                            } else {
                                &d.service
                            },
                            d.environment,
                            d.timestamp
                        );
                    }
                }
                accept::deploys(state, deploys, "file")
                    .await
                    .map_err(|e| anyhow::anyhow!("storing deploys: {e}"))?;
            }
            Rec::Log(..) => {
                let items = group
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, r)| match r {
                        Rec::Log(record, raw) => Some(Item {
                            record,
                            raw,
                            index,
                            line: 0,
                        }),
                        _ => None,
                    })
                    .collect();
                let done = accept::logs(state, items)
                    .await
                    .map_err(|e| anyhow::anyhow!("storing log events: {e}"))?;
                warn_refused(&done.rejected);
            }
        }
    }
    Ok(())
}

fn warn_refused(rejected: &[crate::ingest::body::Rejection]) {
    for r in rejected {
        tracing::warn!(field = %r.field, error = %r.error, "record refused");
    }
}

/// Follows the files until ctrl-c/SIGTERM (or their end with `--once`).
///
/// # Errors
/// Configuration or store failures, or unreadable files.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    serve::init_tracing();
    let (mut config, legacy) = super::compat::load_config(&args.server)?;
    let files = Files::resolve(args, &config, legacy.as_ref());
    // `--once` reads files that already exist, usually of the past, and the original's
    // state directory is the record of what happened: event time must come from the
    // data, or every sample would be older than the wall clock's watermark.
    if (args.once || files.state_dir_mode) && args.server.clock.is_none() {
        config.clock = crate::config::Clock::Data;
    }
    // With the data clock, event time is the data's own, and the original's `simulate`
    // writes the minutes after its deploy ahead of the wall clock: the check against a
    // sender whose clock is wrong (max_future_skew_secs) would refuse them. A century
    // still keeps the wall-clock arithmetic in range.
    if config.clock == crate::config::Clock::Data {
        config.max_future_skew_secs = config.max_future_skew_secs.max(100 * 365 * 86_400);
    }
    // The original's verdict carried the dominant error signature: as in `replay`, a
    // regression waits five minutes of event time after its detection to gather log
    // evidence (`detected_at` unchanged) unless the config says otherwise.
    if files.state_dir_mode {
        config.detector.evidence_grace_secs.get_or_insert(300);
    }
    let webhook = args
        .webhook_url
        .clone()
        .or_else(|| legacy.as_ref().and_then(|l| l.webhook_url.clone()));
    let extra = match webhook {
        Some(url) => vec![super::compat::webhook_channel(&url)?],
        None => Vec::new(),
    };
    if args.serve {
        serve::check_auth(&config);
    }
    serve::runtime()?.block_on(async move {
        let store = super::compat::open_store(&config).await?;
        // Deploys still watched when the last run stopped may be decided while the
        // engine is rebuilt, before anyone listens: they are looked up afterwards.
        let watching = if args.once {
            Vec::new()
        } else {
            let q = crate::store::DeployQuery {
                verdict: Some("watching".into()),
                limit: 500,
                ..Default::default()
            };
            store
                .list_deploys(&q)
                .await?
                .0
                .iter()
                .map(|d| d.id)
                .collect()
        };
        let server = serve::start_on(config.clone(), store, extra).await?;
        let state = server.state.clone();
        if files.state_dir_mode {
            eprintln!(
                "following {}, {} and {} (state in {})",
                files.metrics.display(),
                files.deploys.display(),
                files.logs.as_deref().unwrap_or(Path::new("-")).display(),
                config.state_dir.display()
            );
        }
        let printer = (!args.once).then(|| {
            let rx = state.events.subscribe();
            tokio::spawn(print_verdicts(state.clone(), rx, watching))
        });
        let offsets = load_offsets(&config.state_dir);
        let mut followers: Vec<(Kind, Follower)> = [
            (Kind::Metrics, Some(&files.metrics)),
            (Kind::Deploys, Some(&files.deploys)),
            (Kind::Logs, files.logs.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .map(|(k, p)| {
            let (off, line) = offsets
                .files
                .get(&p.display().to_string())
                .copied()
                .unwrap_or((0, 0));
            (k, Follower::new(p, off, line))
        })
        .collect();
        for (kind, f) in &followers {
            // The state directory's log is optional, as it was in the original.
            let optional = files.state_dir_mode && *kind == Kind::Logs;
            if args.once && !optional && !f.path().exists() {
                anyhow::bail!("{}: no such file", f.path().display());
            }
        }
        let http = if args.serve {
            let cfg = config.clone();
            let st = server.shutdown_sender();
            let srv_state = server.state.clone();
            Some(tokio::spawn(async move {
                let tmp = TmpServer {
                    state: srv_state,
                    stop: st,
                };
                tmp.serve(&cfg).await
            }))
        } else {
            None
        };
        let mut stop = server.state.shutdown.clone();
        // One listener for the whole run: a signal that arrives while a round is being
        // read or stored is kept, and ends the loop at the next round.
        let on_signal = server.shutdown_sender();
        tokio::spawn(async move {
            serve::shutdown_signal().await;
            let _ = on_signal.send(true);
        });
        let mut invalid = 0usize;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = AppState::now_ms();
            let mut recs = Vec::new();
            let mut read_any = false;
            for (kind, f) in followers.iter_mut() {
                let lines = f.poll(ROUND_BYTES)?;
                read_any |= !lines.is_empty();
                for (n, line) in lines {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match parse_line(*kind, &line, now) {
                        Ok(r) => recs.push(r),
                        Err(e) => {
                            invalid += 1;
                            tracing::warn!("{}:{n}: {e}", f.path().display());
                        }
                    }
                }
            }
            if !recs.is_empty() {
                apply(&state, recs, !args.once).await?;
                save_offsets(&config.state_dir, &followers)?;
            }
            if args.once && !read_any {
                break;
            }
            if !read_any {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
        if args.once {
            state.engine.finish().await?;
            state.engine.barrier().await?;
            let (deploys, _) = state
                .store
                .list_deploys(&crate::store::DeployQuery {
                    limit: 500,
                    ..Default::default()
                })
                .await?;
            for d in deploys.iter().rev() {
                println!("{}", serde_json::to_string(d)?);
            }
            if invalid > 0 {
                eprintln!("{invalid} invalid line(s) skipped (see the warnings above)");
            }
        }
        server.begin_shutdown();
        if let Some(h) = http {
            let _ = h.await;
        }
        server.shutdown().await;
        if let Some(p) = printer {
            p.abort();
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The HTTP side of `run --serve`.
struct TmpServer {
    state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
}

impl TmpServer {
    async fn serve(self, config: &ServerConfig) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        println!("watchdog listening on http://{}", listener.local_addr()?);
        let mut stop = self.stop.subscribe();
        axum::serve(listener, crate::app::app(self.state))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await?;
        Ok(())
    }
}

/// The files `run` follows: the flags', or the original's state directory layout.
#[derive(Debug)]
struct Files {
    metrics: PathBuf,
    deploys: PathBuf,
    logs: Option<PathBuf>,
    /// No `--metrics`: the state directory's files.
    state_dir_mode: bool,
}

impl Files {
    fn resolve(
        args: &RunArgs,
        config: &ServerConfig,
        legacy: Option<&super::compat::LegacyConfig>,
    ) -> Files {
        use super::compat::{DEPLOYS_FILE, LOG_FILE, METRICS_FILE};
        match (&args.metrics, &args.deploys) {
            (Some(m), Some(d)) => Files {
                metrics: m.clone(),
                deploys: d.clone(),
                logs: args.logs.clone(),
                state_dir_mode: false,
            },
            _ => {
                let dir = &config.state_dir;
                Files {
                    metrics: dir.join(METRICS_FILE),
                    deploys: dir.join(DEPLOYS_FILE),
                    logs: Some(
                        args.logs
                            .clone()
                            .or_else(|| legacy.and_then(|l| l.log_file.clone()))
                            .unwrap_or_else(|| dir.join(LOG_FILE)),
                    ),
                    state_dir_mode: true,
                }
            }
        }
    }
}

/// Prints every new verdict as `watchdog demo` does, with the explainer's text (a
/// language model's rephrasing when one is configured and keeps every number): first
/// those of the `watching` deploys decided while the engine was rebuilt, then each one
/// announced on `rx`, once per deploy.
async fn print_verdicts(
    state: AppState,
    mut rx: tokio::sync::broadcast::Receiver<crate::events::ServerEvent>,
    watching: Vec<i64>,
) {
    let mut printed = std::collections::HashSet::new();
    for id in watching {
        if let Ok(Some(row)) = state.store.get_deploy(id).await {
            if let Some(v) = &row.verdict {
                printed.insert(id);
                print_verdict(&state, v).await;
            }
        }
    }
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("warning: {n} verdict(s) not printed (the store has them)");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if ev.kind != "verdict" {
            continue;
        }
        if let Some(id) = ev.data.get("id").and_then(|i| i.as_i64()) {
            if !printed.insert(id) {
                continue;
            }
        }
        let Some(v) = ev
            .data
            .get("verdict")
            .and_then(|v| serde_json::from_value::<watchdog_core::DeployVerdict>(v.clone()).ok())
        else {
            continue;
        };
        print_verdict(&state, &v).await;
    }
}

async fn print_verdict(state: &AppState, v: &watchdog_core::DeployVerdict) {
    let r = state.explainer.explain(v).await;
    let text = match r.source {
        crate::explainer::ExplanationSource::Llm => format!(
            "{}\n(rephrased by {} model {})",
            r.text,
            state.explainer.mode(),
            r.model.as_deref().unwrap_or("?")
        ),
        crate::explainer::ExplanationSource::Local => match &r.fallback_reason {
            None => format!("{}\n{}", r.local.headline, r.local.summary),
            Some(why) => format!(
                "{}\n{}\n(the {} explainer was not used: {why})",
                r.local.headline,
                r.local.summary,
                state.explainer.mode()
            ),
        },
    };
    println!("{}", super::human::verdict_block(v, &text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_log_lines_keep_their_own_time_and_level() {
        let now = 1_800_000_000_000;
        let l = plain_log("2026-03-30T19:30:00Z ERROR payment gateway timeout", now);
        assert_eq!(
            l.timestamp,
            Timestamp::parse("2026-03-30T19:30:00Z").unwrap()
        );
        assert_eq!(l.level, LogLevel::Error);
        assert_eq!(l.message, "payment gateway timeout");
        let l = plain_log("worker 3: error reading queue", now);
        assert_eq!(l.timestamp, Timestamp(now));
        assert_eq!(l.level, LogLevel::Error);
        assert_eq!(l.message, "worker 3: error reading queue");
    }
}
