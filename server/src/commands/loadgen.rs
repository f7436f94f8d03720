//! `watchdog loadgen`: sustained metric ingestion against a running server, as NDJSON or
//! (`--protocol`) through the OTLP and remote-write receivers (bodies in [`push`]).
//! Reports accepted samples per second, request latency percentiles and, with
//! `--server-pid`, the server's resident memory over the run (Linux `/proc`).
//!
//! For a soak (`scripts/soak.sh`), NDJSON load can also churn its series
//! (`--churn-every-secs`: names come and go as pod names do), have one connection with a
//! wrong clock (`--skewed-clock-secs`), and post deploys of live services
//! (`--deploys-every-secs`), waiting at the end until every one has a verdict.

use std::fmt::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::LoadgenArgs;

pub mod push;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The name number of the first live service at `elapsed_secs` into the run: every
/// `every_secs`, `step` names are dropped from the bottom and as many new ones come in.
fn churn_offset(elapsed_secs: u64, every_secs: u64, step: usize) -> usize {
    match every_secs {
        0 => 0,
        e => (elapsed_secs / e) as usize * step,
    }
}

fn body(batch: usize, services: usize, seq: u64, now_ms: i64, offset: usize) -> String {
    let ts = watchdog_core::Timestamp(now_ms).to_rfc3339();
    let mut out = String::with_capacity(batch * 150);
    for i in 0..batch {
        let n = seq.wrapping_mul(7919).wrapping_add(i as u64);
        let jitter = (n % 97) as f64 / 97.0;
        let _ = writeln!(
            out,
            "{{\"timestamp\":\"{ts}\",\"service\":\"svc-{}\",\"environment\":\"load\",\"error_rate\":{:.4},\"p95_latency_ms\":{:.1},\"request_rate\":{:.0}}}",
            n as usize % services.max(1) + offset,
            0.01 + 0.002 * jitter,
            180.0 + 20.0 * jitter,
            1200.0 + 50.0 * jitter
        );
    }
    out
}

/// What an NDJSON ingestion answer counted.
#[derive(Debug, Default)]
struct IngestCounts {
    accepted: Option<u64>,
    rejected: u64,
    late: u64,
}

impl IngestCounts {
    fn of(body: &[u8]) -> IngestCounts {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return IngestCounts::default();
        };
        IngestCounts {
            accepted: v["accepted"].as_u64(),
            rejected: v["rejected_total"]
                .as_u64()
                .or_else(|| v["rejected"].as_array().map(|a| a.len() as u64))
                .unwrap_or(0),
            late: v["late"].as_u64().unwrap_or(0),
        }
    }
}

/// Posts a deploy of a live service every `every_secs` until `deadline`; returns how
/// many were stored. Under churn the service is among the names of the step before the
/// newest: old enough (one churn interval) to have a baseline, since dense series are
/// pooled into bins of a few seconds and a baseline needs a dozen of them, and young
/// enough to live on through the watch.
#[allow(clippy::too_many_arguments)]
async fn post_deploys(
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    every_secs: u64,
    services: usize,
    (churn_every, churn_step): (u64, usize),
    start: Instant,
    deadline: Instant,
) -> u64 {
    let mut posted = 0u64;
    let mut k = 0usize;
    loop {
        tokio::time::sleep(Duration::from_secs(every_secs)).await;
        if Instant::now() >= deadline {
            return posted;
        }
        let offset = churn_offset(start.elapsed().as_secs(), churn_every, churn_step);
        let spread = if churn_every > 0 {
            churn_step.max(1)
        } else {
            services.max(1)
        };
        // The step before the newest, when there are two steps' worth of names.
        let back = if churn_every > 0 && services >= 2 * spread {
            spread
        } else {
            0
        };
        let service = offset + services.max(1) - 1 - back - k % spread.min(services.max(1));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let body = serde_json::json!({
            "timestamp": watchdog_core::Timestamp(now_ms).to_rfc3339(),
            "deploy_id": format!("soak-{k}"),
            "service": format!("svc-{service}"),
            "environment": "load",
        });
        k += 1;
        let mut req = client.post(format!("{base}/api/v1/deploys")).json(&body);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => posted += 1,
            Ok(r) => eprintln!("deploy {k} refused: {}", r.status()),
            Err(e) => eprintln!("deploy {k} failed: {e}"),
        }
    }
}

/// `total` of `GET /api/v1/deploys?limit=1{filter}`.
async fn deploy_total(
    client: &reqwest::Client,
    base: &str,
    token: &Option<String>,
    filter: &str,
) -> Option<u64> {
    let mut req = client.get(format!("{base}/api/v1/deploys?limit=1{filter}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
    v["total"].as_u64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs the load and prints a summary.
///
/// # Errors
/// When the runtime cannot start, or no request succeeded.
pub fn run(args: &LoadgenArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(args.concurrency)
            .build()?;
        let protocol = args.protocol;
        let url = format!("{}{}", args.url.trim_end_matches('/'), protocol.path());
        let start_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let accepted = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let late = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(args.duration_secs);
        let per_task_rate = args.rate as f64 / args.concurrency.max(1) as f64;
        let mut tasks = Vec::new();
        // With --skewed-clock-secs, one more connection than --concurrency: the client
        // with the wrong clock, one batch a second, on top of the --rate of the others.
        let skewed = args.skewed_clock_secs != 0 && protocol == push::Protocol::Ndjson;
        let connections = args.concurrency.max(1) + usize::from(skewed);
        for t in 0..connections {
            let (client, url, token) = (client.clone(), url.clone(), args.token.clone());
            let (accepted, errors, latencies, stop) = (
                accepted.clone(),
                errors.clone(),
                latencies.clone(),
                stop.clone(),
            );
            let (rejected, late) = (rejected.clone(), late.clone());
            let (batch, services) = (args.batch, args.services);
            let (churn_every, churn_step) = (args.churn_every_secs, args.churn_step);
            let is_skewed = skewed && t == connections - 1;
            let skew_ms = if is_skewed {
                args.skewed_clock_secs * 1000
            } else {
                0
            };
            let task_rate = if is_skewed {
                batch as f64
            } else {
                per_task_rate
            };
            tasks.push(tokio::spawn(async move {
                let mut seq = t as u64 * 1_000_000;
                let task_start = Instant::now();
                let mut sent = 0u64;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    if task_rate > 0.0 {
                        let due = task_start + Duration::from_secs_f64(sent as f64 / task_rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    // Requests of this connection so far (the push bodies' timestamps).
                    let n = seq - t as u64 * 1_000_000;
                    let b = match protocol {
                        push::Protocol::Ndjson => body(
                            batch,
                            services,
                            seq,
                            now_ms + skew_ms,
                            churn_offset(start.elapsed().as_secs(), churn_every, churn_step),
                        )
                        .into_bytes(),
                        push::Protocol::OtlpProtobuf | push::Protocol::OtlpJson => push::otlp(
                            batch,
                            services,
                            t,
                            n,
                            start_ms,
                            protocol == push::Protocol::OtlpJson,
                        ),
                        push::Protocol::RemoteWrite => {
                            push::remote_write(batch, services, t, n, start_ms)
                        }
                    };
                    seq += 1;
                    let (ctype, encoding) = protocol.headers();
                    let mut req = client.post(&url).header("content-type", ctype).body(b);
                    if let Some(e) = encoding {
                        req = req.header("content-encoding", e);
                    }
                    if let Some(tok) = &token {
                        req = req.bearer_auth(tok);
                    }
                    let t0 = Instant::now();
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            let body = r.bytes().await.unwrap_or_default();
                            latencies
                                .lock()
                                .expect("latency lock")
                                .push(t0.elapsed().as_secs_f64());
                            // The NDJSON answer says how many were taken; the receivers'
                            // (protobuf, 204) do not, and took the whole batch.
                            let counts = IngestCounts::of(&body);
                            accepted.fetch_add(
                                counts.accepted.unwrap_or(batch as u64),
                                Ordering::Relaxed,
                            );
                            rejected.fetch_add(counts.rejected, Ordering::Relaxed);
                            late.fetch_add(counts.late, Ordering::Relaxed);
                        }
                        Ok(r) if r.status() == reqwest::StatusCode::UNPROCESSABLE_ENTITY => {
                            // Every item refused (the skewed client's batches): refused
                            // one by one, as designed, not a failed request.
                            let body = r.bytes().await.unwrap_or_default();
                            let counts = IngestCounts::of(&body);
                            rejected.fetch_add(counts.rejected, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!(
                                    "request failed: {status}: {}",
                                    text.chars().take(200).collect::<String>()
                                );
                            }
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("request failed: {e}");
                            }
                        }
                    }
                    sent += batch as u64;
                }
            }));
        }
        let deployer = (args.deploys_every_secs > 0).then(|| {
            tokio::spawn(post_deploys(
                client.clone(),
                args.url.trim_end_matches('/').to_string(),
                args.token.clone(),
                args.deploys_every_secs,
                args.services,
                (args.churn_every_secs, args.churn_step),
                start,
                deadline,
            ))
        });
        let mut rss = Vec::new();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(pid) = args.server_pid {
                if let Some(kib) = rss_kib(pid) {
                    rss.push(kib);
                }
            }
            let secs = start.elapsed().as_secs();
            if secs % 10 == 0 {
                eprintln!(
                    "{secs:>4}s  {:>10} samples accepted  rss {} MiB",
                    accepted.load(Ordering::Relaxed),
                    rss.last().map(|k| k / 1024).unwrap_or(0)
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let posted = match deployer {
            Some(d) => d.await.unwrap_or(0),
            None => 0,
        };
        let elapsed = start.elapsed().as_secs_f64();
        let total = accepted.load(Ordering::Relaxed);
        let mut lat = latencies.lock().expect("latency lock").clone();
        lat.sort_by(|a, b| a.total_cmp(b));
        println!("duration_secs: {elapsed:.1}");
        println!("samples_accepted: {total}");
        println!("samples_per_sec: {:.0}", total as f64 / elapsed);
        println!(
            "samples_rejected: {} (late: {})",
            rejected.load(Ordering::Relaxed),
            late.load(Ordering::Relaxed)
        );
        println!(
            "requests: {} (errors: {})",
            lat.len(),
            errors.load(Ordering::Relaxed)
        );
        println!(
            "latency_ms: p50 {:.1}  p99 {:.1}  max {:.1}",
            percentile(&lat, 0.5) * 1e3,
            percentile(&lat, 0.99) * 1e3,
            lat.last().copied().unwrap_or(f64::NAN) * 1e3
        );
        if !rss.is_empty() {
            let n = rss.len();
            let tenth = |i: usize| rss[(i * (n - 1)) / 10] / 1024;
            println!(
                "server_rss_mib: peak {}  first {}  at 50% {}  last {}",
                rss.iter().max().copied().unwrap_or(0) / 1024,
                tenth(0),
                tenth(5),
                tenth(10)
            );
        }
        if total == 0 {
            anyhow::bail!("no request succeeded against {url}");
        }
        if args.deploys_every_secs > 0 {
            let base = args.url.trim_end_matches('/');
            let waited = Instant::now();
            let limit = Duration::from_secs(args.judge_wait_secs);
            let (watching, all) = loop {
                let watching = deploy_total(&client, base, &args.token, "&verdict=watching").await;
                let all = deploy_total(&client, base, &args.token, "").await;
                if watching == Some(0) || waited.elapsed() >= limit {
                    break (watching, all);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            };
            println!(
                "deploys: {posted} posted, {} stored, {} still watching after {:.0} s",
                all.map_or("?".into(), |n| n.to_string()),
                watching.map_or("?".into(), |n| n.to_string()),
                waited.elapsed().as_secs_f64()
            );
            for verdict in ["regression", "healthy", "inconclusive"] {
                let n =
                    deploy_total(&client, base, &args.token, &format!("&verdict={verdict}")).await;
                println!(
                    "deploys_{verdict}: {}",
                    n.map_or("?".into(), |n| n.to_string())
                );
            }
            if watching != Some(0) || all != Some(posted) {
                eprintln!("error: not every posted deploy was judged");
                return Ok(ExitCode::from(1));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
