//! Following a shared store: when several servers write one PostgreSQL database, each
//! server's engine reads every stored record from the store, in id order, instead of being
//! fed by its own requests. All engines then see the same data and reach the same verdicts;
//! the store keeps one of each (see `store/postgres.rs`).
//!
//! Row ids become visible in id order (inserts take a per-table lock), so a cursor per
//! table that only moves forward reads each row exactly once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use watchdog_core::{LogEvent, Sample};

use crate::runner::EngineHandle;
use crate::store::Store;

/// Rows read per page.
const PAGE: i64 = 20_000;
/// How often new rows are looked for.
pub const POLL: Duration = Duration::from_millis(200);

/// Where the follower is in each table.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursor {
    /// Last sample row fed.
    pub samples: i64,
    /// Last log row fed.
    pub logs: i64,
    /// Last deploy row fed.
    pub deploys: i64,
}

/// How far back the follower reads on start: the span a watch can still need.
pub fn span_ms(detector: &watchdog_core::Config) -> i64 {
    (detector.baseline_window_secs
        + detector.monitoring_window_secs
        + detector.allowed_lateness_secs) as i64
        * 1000
}

/// Feeds every row stored after `cursor` (deploys, then logs, then samples, as a live
/// server receives them) with event time at or after `from_ms`. Returns the rows fed.
///
/// # Errors
/// Store failures, or the engine gone (as an `anyhow` error).
pub async fn catch_up(
    store: &Arc<dyn Store>,
    engine: &EngineHandle,
    cursor: &mut Cursor,
    from_ms: i64,
) -> anyhow::Result<usize> {
    let mut fed = 0;
    let mut deploys: Vec<_> = store
        .deploys_since(from_ms)
        .await?
        .into_iter()
        .filter(|d| d.id > cursor.deploys)
        .collect();
    deploys.sort_by_key(|d| d.id);
    if let Some(last) = deploys.last() {
        cursor.deploys = last.id;
        fed += deploys.len();
        engine
            .deploys(deploys.into_iter().map(|d| d.deploy).collect())
            .await?;
    }
    loop {
        let page = store.logs_since(from_ms, cursor.logs, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor.logs = last.id;
        let events: Vec<LogEvent> = page
            .iter()
            .filter_map(|r| LogEvent::from_json_line(&r.body).ok())
            .collect();
        fed += page.len();
        engine.logs(events).await?;
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    loop {
        let page = store.samples_since(from_ms, cursor.samples, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor.samples = last.id;
        let samples: Vec<Sample> = page
            .iter()
            .filter_map(|r| Sample::from_json_line(&r.body).ok())
            .collect();
        fed += page.len();
        engine.samples_nowait(samples).await?;
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(fed)
}

/// Follows the store until `shutdown` turns true. A failing read is logged and retried at
/// the next poll; nothing is skipped.
pub async fn run(
    store: Arc<dyn Store>,
    engine: EngineHandle,
    from_ms: i64,
    mut cursor: Cursor,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = catch_up(&store, &engine, &mut cursor, from_ms).await {
            tracing::error!(error = %e, "following the shared store failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}
