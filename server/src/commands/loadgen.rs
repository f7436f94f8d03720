//! `watchdog loadgen`: sustained metric ingestion against a running server, as NDJSON or
//! (`--protocol`) through the OTLP and remote-write receivers (bodies in [`push`]).
//! Reports accepted samples per second, request latency percentiles and, with
//! `--server-pid`, the server's resident memory over the run (Linux `/proc`).

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

fn body(batch: usize, services: usize, seq: u64, now_ms: i64) -> String {
    let ts = watchdog_core::Timestamp(now_ms).to_rfc3339();
    let mut out = String::with_capacity(batch * 150);
    for i in 0..batch {
        let n = seq.wrapping_mul(7919).wrapping_add(i as u64);
        let jitter = (n % 97) as f64 / 97.0;
        let _ = writeln!(
            out,
            "{{\"timestamp\":\"{ts}\",\"service\":\"svc-{}\",\"environment\":\"load\",\"error_rate\":{:.4},\"p95_latency_ms\":{:.1},\"request_rate\":{:.0}}}",
            n as usize % services.max(1),
            0.01 + 0.002 * jitter,
            180.0 + 20.0 * jitter,
            1200.0 + 50.0 * jitter
        );
    }
    out
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
        let errors = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(args.duration_secs);
        let per_task_rate = args.rate as f64 / args.concurrency.max(1) as f64;
        let mut tasks = Vec::new();
        for t in 0..args.concurrency.max(1) {
            let (client, url, token) = (client.clone(), url.clone(), args.token.clone());
            let (accepted, errors, latencies, stop) = (
                accepted.clone(),
                errors.clone(),
                latencies.clone(),
                stop.clone(),
            );
            let (batch, services) = (args.batch, args.services);
            tasks.push(tokio::spawn(async move {
                let mut seq = t as u64 * 1_000_000;
                let task_start = Instant::now();
                let mut sent = 0u64;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    if per_task_rate > 0.0 {
                        let due = task_start + Duration::from_secs_f64(sent as f64 / per_task_rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    // Requests of this connection so far (the push bodies' timestamps).
                    let n = seq - t as u64 * 1_000_000;
                    let b = match protocol {
                        push::Protocol::Ndjson => body(batch, services, seq, now_ms).into_bytes(),
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
                            let _ = r.bytes().await;
                            latencies
                                .lock()
                                .expect("latency lock")
                                .push(t0.elapsed().as_secs_f64());
                            accepted.fetch_add(batch as u64, Ordering::Relaxed);
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
        let elapsed = start.elapsed().as_secs_f64();
        let total = accepted.load(Ordering::Relaxed);
        let mut lat = latencies.lock().expect("latency lock").clone();
        lat.sort_by(|a, b| a.total_cmp(b));
        println!("duration_secs: {elapsed:.1}");
        println!("samples_accepted: {total}");
        println!("samples_per_sec: {:.0}", total as f64 / elapsed);
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
        Ok(ExitCode::SUCCESS)
    })
}
