//! `watchdog run`: follows metric, deploy and log files (like `tail -F`) with the same
//! engine and store as `watchdog serve`, for people without an HTTP pipeline.
//!
//! Each round reads the new complete lines of every file, orders them by event time,
//! stores them and feeds the engine. File positions are kept in the state directory
//! (`run-offsets.json`), so a restart continues where it stopped.

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

/// A plain-text log line: the first word that names a level sets it; the time is now.
fn plain_log(line: &str, now_ms: i64) -> LogEvent {
    let level = line
        .split_whitespace()
        .take(4)
        .find_map(LogLevel::parse)
        .unwrap_or(LogLevel::Info);
    LogEvent {
        timestamp: Timestamp(now_ms),
        service: String::new(),
        environment: String::new(),
        level,
        message: line.to_string(),
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
async fn apply(state: &AppState, mut recs: Vec<Rec>) -> anyhow::Result<()> {
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
                let deploys = group
                    .into_iter()
                    .filter_map(|r| match r {
                        Rec::Deploy(d) => Some(d),
                        _ => None,
                    })
                    .collect();
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
    let mut config = ServerConfig::load(&args.server)?;
    // `--once` reads files that already exist, usually of the past: event time must come
    // from the data, or every sample would be older than the wall clock's watermark.
    if args.once && args.server.clock.is_none() {
        config.clock = crate::config::Clock::Data;
    }
    if args.serve {
        serve::check_auth(&config)?;
    }
    serve::runtime()?.block_on(async move {
        let server = serve::start(config.clone()).await?;
        let state = server.state.clone();
        let offsets = load_offsets(&config.state_dir);
        let mut followers: Vec<(Kind, Follower)> = [
            (Kind::Metrics, Some(&args.metrics)),
            (Kind::Deploys, Some(&args.deploys)),
            (Kind::Logs, args.logs.as_ref()),
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
        for (_, f) in &followers {
            if args.once && !f.path().exists() {
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
        let mut invalid = 0usize;
        loop {
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
                apply(&state, recs).await?;
                save_offsets(&config.state_dir, &followers)?;
            }
            if args.once && !read_any {
                break;
            }
            if !read_any {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::signal::ctrl_c() => break,
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
