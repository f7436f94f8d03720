//! The engine actor: one `watchdog_core::Engine` for every service and environment, owned
//! by a dedicated thread and fed through a bounded channel. Records reach it only after
//! they are durable, so a restart can rebuild it from the store ([`recover`]).
//!
//! Verdicts go, in the order the engine reached them, to an async task that records each
//! one (and its incident and alerts): [`crate::verdicts::task`], which holds the
//! application state; the engine itself knows only the store.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use watchdog_core::{
    Deploy, DeployVerdict, Engine, EngineStats, LateAfterVerdict, LogEvent, Sample, Timestamp,
    WatchStatus,
};

use crate::store::{Store, StoredTemplate};

/// Messages to the engine thread.
#[derive(Debug)]
enum Input {
    /// Samples, and where to say how many of them were late.
    Samples(Vec<Sample>, Option<oneshot::Sender<u64>>),
    Deploys(Vec<Deploy>),
    Logs(Vec<LogEvent>),
    /// Persisted templates to put back before any log is fed.
    Templates(Vec<StoredTemplate>),
    Advance(Timestamp),
    Ceiling(Option<Timestamp>),
    /// Forget series idle for this many seconds of event time.
    EvictIdle(u64),
    Finish,
    Status(oneshot::Sender<(EngineStats, Vec<WatchStatus>)>),
    /// Answered once everything sent before it is processed and its verdicts recorded.
    Barrier(oneshot::Sender<()>),
}

/// What the engine thread hands to the verdict task.
#[derive(Debug)]
pub enum Output {
    /// New verdicts, in order.
    Verdicts(Vec<DeployVerdict>),
    /// Log templates created or generalised, to persist.
    Templates(Vec<StoredTemplate>),
    /// Late samples in the stretch of verdicts already given, to note on them.
    LateAfterVerdict(Vec<LateAfterVerdict>),
    /// A barrier to answer after the verdicts before it are recorded.
    Barrier(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to the engine thread.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    tx: mpsc::Sender<Input>,
    /// False for a handle whose records reach the engine another way (a shared store
    /// followed by `crate::follow`): feeding through it does nothing.
    feeds: bool,
}

/// The engine thread stopped (only after a panic in the core).
#[derive(Debug, thiserror::Error)]
#[error("the detection engine is not running")]
pub struct EngineGone;

impl EngineHandle {
    /// Starts the engine thread. Returns the handle and the receiver of its output.
    /// `series_lag_secs` turns on per-series watermarks (see
    /// `Engine::set_series_watermarks`): for the data clock, where clients send at their
    /// own pace.
    ///
    /// # Errors
    /// An invalid detector configuration.
    pub fn start(
        config: watchdog_core::Config,
        series_lag_secs: Option<u64>,
    ) -> Result<(EngineHandle, mpsc::UnboundedReceiver<Output>), watchdog_core::Error> {
        let mut engine = Engine::new(config)?;
        engine.track_template_changes();
        engine.set_series_watermarks(series_lag_secs);
        // Bounded: when the engine falls behind, ingestion waits instead of buffering
        // without limit.
        let (tx, mut rx) = mpsc::channel::<Input>(64);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("watchdog-engine".into())
            .spawn(move || {
                while let Some(input) = rx.blocking_recv() {
                    match input {
                        Input::Samples(samples, reply) => {
                            let late_before = engine.late_samples();
                            for s in &samples {
                                // Values were validated at ingestion; a failure here is a
                                // record the core refuses, which it reports itself.
                                if let Err(e) = engine.ingest_sample(s) {
                                    tracing::warn!(error = %e, "engine refused a sample");
                                }
                            }
                            if let Some(reply) = reply {
                                let _ = reply.send(engine.late_samples() - late_before);
                            }
                        }
                        Input::Deploys(deploys) => {
                            for d in &deploys {
                                if let Err(e) = engine.ingest_deploy(d) {
                                    tracing::warn!(error = %e, "engine refused a deploy");
                                }
                            }
                        }
                        Input::Logs(logs) => {
                            for l in &logs {
                                if let Err(e) = engine.ingest_log(l) {
                                    tracing::warn!(error = %e, "engine refused a log event");
                                }
                            }
                        }
                        Input::Templates(templates) => {
                            for t in &templates {
                                engine.restore_templates(
                                    &t.service,
                                    &t.environment,
                                    std::slice::from_ref(&t.record),
                                );
                            }
                        }
                        Input::Advance(now) => engine.advance_to(now),
                        Input::Ceiling(c) => engine.set_event_time_ceiling(c),
                        Input::EvictIdle(idle_secs) => {
                            let n = match engine.event_time() {
                                Some(wm) => {
                                    engine.evict_idle_series(wm.add_secs(-(idle_secs as f64)))
                                }
                                None => 0,
                            };
                            if n > 0 {
                                tracing::info!(series = n, "idle series forgotten");
                            }
                        }
                        Input::Finish => engine.finish(),
                        Input::Status(reply) => {
                            let _ = reply.send((engine.stats(), engine.active_watches()));
                        }
                        Input::Barrier(reply) => {
                            flush(&mut engine, &out_tx);
                            let _ = out_tx.send(Output::Barrier(reply));
                            continue;
                        }
                    }
                    flush(&mut engine, &out_tx);
                }
            })
            .expect("spawning the engine thread");
        Ok((EngineHandle { tx, feeds: true }, out_rx))
    }

    async fn send(&self, input: Input) -> Result<(), EngineGone> {
        self.tx.send(input).await.map_err(|_| EngineGone)
    }

    /// A handle to the same engine on which [`samples`](Self::samples),
    /// [`deploys`](Self::deploys) and [`logs`](Self::logs) do nothing, for request
    /// handlers when the engine follows a shared store instead.
    pub fn detached(&self) -> EngineHandle {
        EngineHandle {
            tx: self.tx.clone(),
            feeds: false,
        }
    }

    async fn feed(&self, input: Input) -> Result<(), EngineGone> {
        if self.feeds {
            self.send(input).await
        } else {
            Ok(())
        }
    }

    /// Feeds samples (already stored) and waits until the engine has them; returns how
    /// many were late (older than the watermark). Zero on a handle that does not feed.
    pub async fn samples(&self, s: Vec<Sample>) -> Result<u64, EngineGone> {
        if !self.feeds {
            return Ok(0);
        }
        let (tx, rx) = oneshot::channel();
        self.send(Input::Samples(s, Some(tx))).await?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Feeds samples (already stored) without waiting for the engine (recovery, the
    /// store follower: nobody asks how many were late).
    pub async fn samples_nowait(&self, s: Vec<Sample>) -> Result<(), EngineGone> {
        self.feed(Input::Samples(s, None)).await
    }

    /// Forgets the series with nothing in the last `idle_secs` of event time (see
    /// `Engine::evict_idle_series`).
    pub async fn evict_idle(&self, idle_secs: u64) -> Result<(), EngineGone> {
        self.send(Input::EvictIdle(idle_secs)).await
    }

    /// Bounds event time by the wall clock (see `Engine::set_event_time_ceiling`).
    pub async fn bound_event_time(&self, ceiling: Option<Timestamp>) -> Result<(), EngineGone> {
        self.send(Input::Ceiling(ceiling)).await
    }

    /// Feeds deploys (already stored).
    pub async fn deploys(&self, d: Vec<Deploy>) -> Result<(), EngineGone> {
        self.feed(Input::Deploys(d)).await
    }

    /// Feeds log events (already stored).
    pub async fn logs(&self, l: Vec<LogEvent>) -> Result<(), EngineGone> {
        self.feed(Input::Logs(l)).await
    }

    /// Puts persisted log templates back (even on a detached handle: every engine
    /// needs them), so signatures keep their ids across restarts.
    pub async fn restore_templates(&self, t: Vec<StoredTemplate>) -> Result<(), EngineGone> {
        self.send(Input::Templates(t)).await
    }

    /// Moves the watermark to `now`.
    pub async fn advance(&self, now: Timestamp) -> Result<(), EngineGone> {
        self.send(Input::Advance(now)).await
    }

    /// Ends every watch (end of data, `watchdog run --once`).
    pub async fn finish(&self) -> Result<(), EngineGone> {
        self.send(Input::Finish).await
    }

    /// Counters and the watches in progress.
    pub async fn status(&self) -> Result<(EngineStats, Vec<WatchStatus>), EngineGone> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Status(tx)).await?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Waits until everything sent so far is processed and its verdicts are recorded.
    pub async fn barrier(&self) -> Result<(), EngineGone> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Barrier(tx)).await?;
        rx.await.map_err(|_| EngineGone)
    }
}

fn flush(engine: &mut Engine, out: &mpsc::UnboundedSender<Output>) {
    let mut templates: Vec<StoredTemplate> = engine
        .take_template_changes()
        .into_iter()
        .map(|(service, environment, record)| StoredTemplate {
            service,
            environment,
            record,
        })
        .collect();
    if !templates.is_empty() {
        // One key order for every writer, so concurrent upserts cannot deadlock.
        templates.sort_by(|a, b| {
            (&a.service, &a.environment, a.record.signature).cmp(&(
                &b.service,
                &b.environment,
                b.record.signature,
            ))
        });
        let _ = out.send(Output::Templates(templates));
    }
    let verdicts = engine.take_verdicts();
    if !verdicts.is_empty() {
        let _ = out.send(Output::Verdicts(verdicts));
    }
    let late = engine.take_late_after_verdict();
    if !late.is_empty() {
        let _ = out.send(Output::LateAfterVerdict(late));
    }
}

/// Rebuilds the engine after a start: re-feeds every stored record from
/// `reference - (baseline + monitoring + lateness)` in the order it was stored, where
/// `reference` is the wall clock (or the latest stored event time with `--clock data`),
/// or from the baseline of the oldest deploy that has no verdict yet when that is older.
/// Verdicts already stored are skipped when recorded again.
///
/// # Errors
/// Store failures, or the engine thread gone.
pub async fn recover(
    store: &Arc<dyn Store>,
    engine: &EngineHandle,
    detector: &watchdog_core::Config,
    reference_ms: i64,
) -> anyhow::Result<RecoveryStats> {
    let span_ms = (detector.baseline_window_secs
        + detector.monitoring_window_secs
        + detector.allowed_lateness_secs) as i64
        * 1000;
    let mut from_ms = reference_ms - span_ms;
    // A deploy older than that without a verdict (the server was down for longer than
    // its watch) is judged too, from its own baseline on.
    if let Some(oldest) = store.oldest_unjudged_deploy_ms(from_ms).await? {
        let baseline_ms =
            (detector.baseline_window_secs + detector.allowed_lateness_secs) as i64 * 1000;
        from_ms = from_ms.min(oldest - baseline_ms);
    }
    let mut stats = RecoveryStats::default();
    let mut deploys = store.deploys_since(from_ms).await?;
    deploys.sort_by_key(|d| (d.deploy.timestamp, d.id));
    let mut deploys = deploys.into_iter().peekable();
    let mut logs: std::collections::VecDeque<LogEvent> = Default::default();
    let mut log_after = 0i64;
    let mut logs_done = false;
    let mut after = 0i64;
    const PAGE: i64 = 20_000;
    loop {
        let page = store.samples_since(from_ms, after, PAGE).await?;
        let last_page = (page.len() as i64) < PAGE;
        if let Some(last) = page.last() {
            after = last.id;
        }
        let samples: Vec<Sample> = page
            .iter()
            .filter_map(|r| Sample::from_json_line(&r.body).ok())
            .collect();
        let horizon = if last_page {
            Timestamp(i64::MAX)
        } else {
            samples
                .iter()
                .map(|s| s.timestamp)
                .max()
                .unwrap_or(Timestamp(i64::MIN))
        };
        // Deploys and logs up to this page's latest event time go first, as they
        // arrived around those samples when live.
        let mut ds = Vec::new();
        while deploys
            .peek()
            .is_some_and(|d| d.deploy.timestamp <= horizon)
        {
            ds.push(deploys.next().expect("peeked").deploy);
        }
        if !ds.is_empty() {
            stats.deploys += ds.len();
            engine.deploys(ds).await?;
        }
        loop {
            if logs.is_empty() && !logs_done {
                let page = store.logs_since(from_ms, log_after, PAGE).await?;
                logs_done = (page.len() as i64) < PAGE;
                if let Some(l) = page.last() {
                    log_after = l.id;
                }
                logs.extend(
                    page.iter()
                        .filter_map(|r| LogEvent::from_json_line(&r.body).ok()),
                );
            }
            let mut batch = Vec::new();
            while logs.front().is_some_and(|l| l.timestamp <= horizon) {
                batch.push(logs.pop_front().expect("front"));
            }
            let more = !batch.is_empty() && logs.is_empty() && !logs_done;
            if !batch.is_empty() {
                stats.logs += batch.len();
                engine.logs(batch).await?;
            }
            if !more {
                break;
            }
        }
        stats.samples += samples.len();
        if !samples.is_empty() {
            engine.samples_nowait(samples).await?;
        }
        if last_page {
            break;
        }
    }
    Ok(stats)
}

/// What [`recover`] re-fed.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecoveryStats {
    /// Samples.
    pub samples: usize,
    /// Deploys.
    pub deploys: usize,
    /// Log events.
    pub logs: usize,
}
