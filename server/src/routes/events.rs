//! `GET /api/v1/events`: server-sent events for new verdicts, incident changes and notes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut shutdown = state.shutdown.clone();
    let stream = BroadcastStream::new(state.events.subscribe()).filter_map(|msg| {
        // A client too slow to keep up misses updates rather than slowing the server; the
        // dashboard re-reads lists when it reconnects.
        let ev = msg.ok()?;
        Some(Ok(Event::default()
            .event(ev.kind)
            .data(ev.data.to_string())))
    });
    // Streams end at shutdown, so that graceful shutdown does not wait for clients.
    let stream = futures_util::StreamExt::take_until(stream, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
