//! Wiring: opens the store, starts the engine (rebuilt from the store), the verdict
//! recorder, the wall-clock ticker and the alert worker, and stops them in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use watchdog_core::Timestamp;

use crate::alerts::Channel;
use crate::config::{Clock, ServerConfig};
use crate::explainer::Explainer;
use crate::follow;
use crate::metrics::Metrics;
use crate::runner::{self, EngineHandle};
use crate::state::AppState;
use crate::store::Store;

/// A running server core (everything but the HTTP listener).
#[derive(Debug)]
pub struct Server {
    /// The shared state, for `app(state)`.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the SQLite store in `config.state_dir` and starts everything.
    ///
    /// # Errors
    /// Store, configuration or recovery failures.
    pub async fn start(
        config: ServerConfig,
        channels: Vec<Channel>,
        explainer: Explainer,
    ) -> anyhow::Result<Server> {
        let store = open_store(&config).await?;
        Self::start_with_store(config, store, channels, explainer).await
    }

    /// Starts everything on a given store.
    ///
    /// # Errors
    /// Configuration or recovery failures.
    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<dyn Store>,
        channels: Vec<Channel>,
        explainer: Explainer,
    ) -> anyhow::Result<Server> {
        // Under the data clock each series keeps its own watermark, so that one client
        // sending far ahead of another cannot end the other's watches before its data
        // arrives; a series behind everybody by more than the span a restart re-feeds
        // (baseline, watch and lateness) is ended by the common event time.
        let d = &config.detector;
        let series_lag = (config.clock == Clock::Data)
            .then_some(d.baseline_window_secs + d.monitoring_window_secs + d.allowed_lateness_secs);
        let (engine, verdicts) = EngineHandle::start(config.detector.clone(), series_lag)?;
        // A shared store (several servers on one PostgreSQL) feeds the engine by being
        // followed; this server's requests only store.
        let shared = store.shared();
        let follower = shared.then(|| engine.clone());
        let engine = if shared { engine.detached() } else { engine };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events, _) = broadcast::channel(1024);
        let installation: Arc<str> = store.installation_id().await?.into();
        let admission = Arc::new(crate::ingest::limits::Admission::new(config.limits.clone()));
        let state = AppState {
            admission,
            installation,
            store,
            engine,
            events,
            metrics: Arc::new(Metrics::default()),
            alerts: Arc::new(channels),
            http: crate::alerts::client(),
            outbox_wake: Arc::new(Notify::new()),
            explainer,
            shutdown: shutdown_rx.clone(),
            receivers: Arc::new(crate::ingest::receivers::Receivers::new(
                config.otlp.clone(),
                config.remote_write.clone(),
                &config.limits,
            )),
            config: Arc::new(config),
        };
        let mut tasks = vec![tokio::spawn(crate::verdicts::task(state.clone(), verdicts))];
        // The templates seen before go back first, so that re-fed and new logs get the
        // ids they had (the recovery window is shorter than a template's life).
        let templates = state.store.templates().await?;
        let restored = templates.len();
        state.engine.restore_templates(templates).await?;

        let now_ms = AppState::now_ms();
        let reference_ms = match state.config.clock {
            Clock::Wall => now_ms,
            // A record stored before future event times were refused must not place the
            // reference in the future.
            Clock::Data => state
                .store
                .latest_event_ms()
                .await?
                .unwrap_or(0)
                .min(now_ms + state.config.max_future_skew_secs as i64 * 1000),
        };
        if state.config.clock == Clock::Wall {
            // Event time never runs ahead of the wall clock: a sample from a sender whose
            // clock is ahead is kept but cannot make everybody else's data late.
            let engine = follower.as_ref().unwrap_or(&state.engine);
            engine.bound_event_time(Some(Timestamp(now_ms))).await?;
        }
        let started = std::time::Instant::now();
        let stats = match &follower {
            None => {
                runner::recover(
                    &state.store,
                    &state.engine,
                    &state.config.detector,
                    reference_ms,
                )
                .await?
            }
            Some(engine) => {
                let from_ms = reference_ms - follow::span_ms(&state.config.detector);
                let mut cursor = follow::Cursor::default();
                let fed = follow::catch_up(&state.store, engine, &mut cursor, from_ms).await?;
                tasks.push(tokio::spawn(follow::run(
                    state.store.clone(),
                    engine.clone(),
                    from_ms,
                    cursor,
                    shutdown_rx.clone(),
                )));
                runner::RecoveryStats {
                    samples: fed,
                    ..Default::default()
                }
            }
        };
        // Prometheus: the baseline window is pulled before the watermark moves to now,
        // so that it is not dropped as late (ingest/prometheus.rs).
        let mut puller = match state.config.prometheus.clone() {
            Some(p) => Some(
                crate::ingest::prometheus::Puller::new(p, &state.config.detector)
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        if let Some(p) = puller.as_mut() {
            p.poll_if_leader(&state).await;
        }
        if state.config.clock == Clock::Wall {
            state.engine.advance(Timestamp(AppState::now_ms())).await?;
        }
        state.engine.barrier().await?;
        tracing::info!(
            samples = stats.samples,
            deploys = stats.deploys,
            logs = stats.logs,
            templates = restored,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "engine rebuilt from the store"
        );

        if state.config.clock == Clock::Wall {
            let engine = state.engine.clone();
            let mut stop = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if engine.advance(Timestamp(AppState::now_ms())).await.is_err() {
                                return;
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        {
            // Idle series are forgotten every minute (or every idle period if shorter):
            // in the admission registry by arrival, in the engine by event time (so a
            // replay of old data with `--clock data` is not forgotten for being old).
            let engine = follower.clone().unwrap_or_else(|| state.engine.clone());
            let admission = state.admission.clone();
            let mut stop = shutdown_rx.clone();
            let idle_secs = admission.limits().series_idle_secs;
            let every = Duration::from_secs(idle_secs.clamp(1, 60));
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {
                            admission.sweep(AppState::now_ms());
                            if engine.evict_idle(idle_secs).await.is_err() {
                                return;
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        if let Some(p) = puller {
            tasks.push(tokio::spawn(p.run(state.clone(), shutdown_rx.clone())));
        }
        if state.config.retention_secs > 0 {
            tasks.push(tokio::spawn(retention(state.clone(), shutdown_rx.clone())));
        }
        tasks.push(tokio::spawn(crate::outbox::run(state.clone(), shutdown_rx)));
        Ok(Server {
            state,
            shutdown,
            tasks,
        })
    }

    /// A sender that starts the shutdown (for signal handlers).
    pub fn shutdown_sender(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Tells the background tasks and event streams to stop.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Finishes accepted work: every record already handed to the engine is processed
    /// and its verdicts recorded, the alert in flight is delivered; then stops.
    pub async fn shutdown(self) {
        self.begin_shutdown();
        if let Err(e) = self.state.engine.barrier().await {
            tracing::error!(error = %e, "engine stopped before shutdown");
        }
        for t in self.tasks.into_iter().skip(1) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

/// How often retention runs (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Deletes samples and logs older than `retention_secs` before now (before the latest
/// stored event time with `--clock data`, so replayed history is not deleted for being
/// old), at start and then every hour.
async fn retention(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let reference = match state.config.clock {
            Clock::Wall => Ok(Some(AppState::now_ms())),
            Clock::Data => state.store.latest_event_ms().await,
        };
        match reference {
            Ok(Some(reference)) => {
                let before = reference - state.config.retention_secs as i64 * 1000;
                match state.store.prune(before).await {
                    Ok(p) => {
                        use std::sync::atomic::Ordering::Relaxed;
                        state.metrics.pruned[0].fetch_add(p.samples, Relaxed);
                        state.metrics.pruned[1].fetch_add(p.logs, Relaxed);
                        if p.samples + p.logs + p.series > 0 {
                            tracing::info!(samples = p.samples, logs = p.logs, series = p.series, before = %Timestamp(before), "retention deleted old records");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "retention failed; will try again"),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "retention failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Opens the configured store (here, not in `store`, so that the store does not depend on
/// the server's configuration): PostgreSQL when a database URL is set
/// (`WATCHDOG_DATABASE_URL=postgres://…`), else SQLite in the state directory.
///
/// # Errors
/// When the database cannot be opened, reached or migrated.
pub async fn open_store(config: &ServerConfig) -> crate::store::StoreResult<Arc<dyn Store>> {
    match &config.database_url {
        Some(url) => {
            let url = String::from_utf8_lossy(url.expose()).into_owned();
            Ok(Arc::new(
                crate::store::postgres::PostgresStore::connect_url(&url).await?,
            ))
        }
        None => Ok(Arc::new(
            crate::store::sqlite::SqliteStore::open(&config.state_dir, config.durability).await?,
        )),
    }
}
