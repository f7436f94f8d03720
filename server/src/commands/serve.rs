//! `watchdog serve`: the HTTP server.

use std::process::ExitCode;

use anyhow::Context;

use crate::alerts::Channel;
use crate::cli::ServeArgs;
use crate::config::ServerConfig;
use crate::server::Server;

/// Logs go to stderr; `RUST_LOG` filters them.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Never opens the write API to the world by accident: without an API token (and
/// without `--allow-unauthenticated`) the server starts read-only, and says so once.
/// (The original WatchDog's `serve --state-dir DIR --port N` took no token.)
pub fn check_auth(config: &ServerConfig) {
    if config.api_token.is_none() && !config.allow_unauthenticated {
        eprintln!(
            "warning: no API token: the server is read-only (ingestion, deploys and incident changes are refused with 401); set WATCHDOG_API_TOKEN (or --api-token) to accept them, or pass --allow-unauthenticated for a local experiment"
        );
    }
}

/// The runtime every server command uses.
///
/// # Errors
/// When tokio cannot start.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Builds the server core from the environment's alert channels (plus `extra`, which
/// replaces an environment channel of the same kind) and explainer settings, on the
/// store that the configuration and `WATCHDOG_STORAGE` name.
///
/// # Errors
/// Invalid explainer or storage settings, or the store or engine failing to start.
pub async fn start(config: ServerConfig, extra: Vec<Channel>) -> anyhow::Result<Server> {
    let store = super::compat::open_store(&config).await?;
    start_on(config, store, extra).await
}

/// [`start`] on a store already opened (with [`super::compat::open_store`]).
///
/// # Errors
/// Invalid explainer settings, or the engine failing to start.
pub async fn start_on(
    config: ServerConfig,
    store: std::sync::Arc<dyn crate::store::Store>,
    extra: Vec<Channel>,
) -> anyhow::Result<Server> {
    let mut channels = crate::alerts::channels_from_env();
    channels.retain(|c| !extra.iter().any(|e| e.name() == c.name()));
    channels.extend(extra);
    for c in &channels {
        tracing::info!(channel = c.name(), target = %c.target(), "alert channel");
    }
    let explainer = crate::explainer::Explainer::from_env().map_err(anyhow::Error::msg)?;
    Server::start_with_store(config, store, channels, explainer).await
}

/// Serves until SIGTERM or ctrl-c, then finishes accepted work.
///
/// # Errors
/// Configuration, store or socket failures.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let (mut config, legacy) = super::compat::load_config(&args.server)?;
    // The original's `webhook_url` alerts from the server too; its `log_file` is only
    // followed by `watchdog run`, which is said rather than silently ignored.
    let mut extra = Vec::new();
    if let Some(legacy) = &legacy {
        if let Some(url) = &legacy.webhook_url {
            extra.push(super::compat::webhook_channel(url)?);
        }
        if let Some(log) = &legacy.log_file {
            eprintln!(
                "note: the config's log_file ({}) is followed by `watchdog run --state-dir`, not by `serve`",
                log.display()
            );
        }
    }
    if let Some(port) = args.port {
        let default_url = format!("http://{}", config.listen);
        config.listen.set_port(port);
        if args.server.public_url.is_none() && config.public_url == default_url {
            config.public_url = format!("http://{}", config.listen);
        }
    }
    check_auth(&config);
    runtime()?.block_on(async move {
        let server = start(config.clone(), extra).await?;
        serve_http(&server, &config).await?;
        server.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Binds the listener and serves `app(state)` until a shutdown signal.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_http(server: &Server, config: &ServerConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, state_dir = %config.state_dir.display(), "listening");
    // Tests and scripts read the bound address (useful with port 0) from this line.
    println!("watchdog listening on http://{addr}");
    let app = crate::app::app(server.state.clone());
    let begin = server.shutdown_sender();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing accepted work");
            // Event streams end now; in-flight requests complete before serve returns.
            let _ = begin.send(true);
        })
        .await
        .context("serving HTTP")?;
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
