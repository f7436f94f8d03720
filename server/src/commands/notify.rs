//! `watchdog notify`: tells a server about a deploy, for deploy scripts.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use watchdog_core::Timestamp;

use crate::cli::NotifyArgs;

/// Attempts before giving up when the server cannot be reached.
const ATTEMPTS: u32 = 4;

/// Posts one deploy record; retries connection failures and 5xx with backoff (the server
/// dedupes a deploy posted twice).
///
/// # Errors
/// A bad timestamp, an unreachable server, or a refusal (the server's message is shown).
pub fn run(args: &NotifyArgs) -> anyhow::Result<ExitCode> {
    let timestamp = match &args.timestamp {
        Some(t) => Timestamp::parse(t).map_err(|e| anyhow::anyhow!("--timestamp: {e}"))?,
        None => Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64,
        ),
    };
    let record = json!({
        "timestamp": timestamp,
        "deploy_id": args.deploy_id,
        "service": args.service,
        "environment": args.environment,
    });
    if let Some(dir) = &args.state_dir {
        return append_to_state_dir(dir, &record);
    }
    let body = json!([record]);
    let url = format!("{}/api/v1/deploys", args.server.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let mut req = client.post(&url).json(&body);
            if let Some(t) = &args.token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let text = resp.text().await.unwrap_or_default();
                    println!("{text}");
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(resp) if resp.status().is_server_error() => {
                    last_error = format!("server answered {}", resp.status());
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    anyhow::bail!("{url} refused the deploy with {status}: {text}");
                }
                Err(e) => last_error = format!("{e}"),
            }
        }
        Err(anyhow::anyhow!(
            "could not reach {url} after {ATTEMPTS} attempts: {last_error}"
        ))
        .context("watchdog notify")
    })
}

/// The original's file mode: appends the deploy as one line of `deploy-events.jsonl` in
/// `dir`, where a running `watchdog run --state-dir DIR` picks it up. One `write` of a
/// whole line to a file opened for appending, so concurrent writers do not interleave
/// lines and `run` never reads half of one.
fn append_to_state_dir(dir: &Path, record: &serde_json::Value) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let path = dir.join(super::compat::DEPLOYS_FILE);
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    // A last line without its newline (edited by hand) would swallow this one.
    if last_byte(&path).is_some_and(|b| b != b'\n') {
        line.insert(0, b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    f.write_all(&line)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    println!("{}", String::from_utf8_lossy(&line).trim_end());
    eprintln!("appended deploy to {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn last_byte(path: &Path) -> Option<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::End(-1)).ok()?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).ok()?;
    Some(b[0])
}
