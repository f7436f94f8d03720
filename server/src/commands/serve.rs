//! `watchdog serve`: the HTTP server.

use std::process::ExitCode;

use anyhow::Context;

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

/// Refuses to start an open-to-the-world write API by accident.
///
/// # Errors
/// When no API token is set and unauthenticated writes were not asked for.
pub fn check_auth(config: &ServerConfig) -> anyhow::Result<()> {
    if config.api_token.is_none() && !config.allow_unauthenticated {
        anyhow::bail!(
            "no API token: set WATCHDOG_API_TOKEN (or --api-token) so that ingestion and changes need it, or pass --allow-unauthenticated for a local experiment"
        );
    }
    Ok(())
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

/// Builds the server core from the environment's alert channels and explainer settings.
///
/// # Errors
/// Invalid explainer settings, or the store or engine failing to start.
pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
    let channels = crate::alerts::channels_from_env();
    for c in &channels {
        tracing::info!(channel = c.name(), target = %c.target(), "alert channel");
    }
    let explainer = crate::explainer::Explainer::from_env().map_err(anyhow::Error::msg)?;
    Server::start(config, channels, explainer).await
}

/// Serves until SIGTERM or ctrl-c, then finishes accepted work.
///
/// # Errors
/// Configuration, store or socket failures.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = ServerConfig::load(&args.server)?;
    check_auth(&config)?;
    runtime()?.block_on(async move {
        let server = start(config.clone()).await?;
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

async fn shutdown_signal() {
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
