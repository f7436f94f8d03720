//! Live updates from the server's event stream (`GET /api/v1/events`, server-sent events).

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;

/// The state of the event stream, for the indicator in the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// Connecting or reconnecting.
    Connecting,
    /// Receiving events.
    Open,
    /// The browser gave up (the server is not there, or is not a WatchDog server).
    Closed,
}

/// Live updates for the current page: `changes` counts the `verdict`, `incident` and
/// `note` events received, so a resource that reads it refetches on each one. The stream
/// is closed when the page goes away.
#[derive(Clone, Copy, Debug)]
pub struct Live {
    /// Bumped on every event.
    pub changes: RwSignal<u64>,
    /// Connection state.
    pub state: RwSignal<LiveState>,
}

/// Opens the event stream for the calling component.
pub fn subscribe() -> Live {
    let live = Live {
        changes: RwSignal::new(0),
        state: RwSignal::new(LiveState::Connecting),
    };
    // EventSource cannot send an Authorization header: a read token goes in the query,
    // which the server accepts for this stream only.
    let url = match crate::state::load_token().filter(|t| !t.trim().is_empty()) {
        Some(t) => format!(
            "{}/events?token={}",
            crate::api::BASE,
            crate::state::encode(t.trim())
        ),
        None => format!("{}/events", crate::api::BASE),
    };
    let Ok(es) = web_sys::EventSource::new(&url) else {
        live.state.set(LiveState::Closed);
        return live;
    };
    let on_event =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |_e: web_sys::MessageEvent| {
            live.changes.update(|n| *n += 1);
            live.state.set(LiveState::Open);
        });
    for kind in ["verdict", "incident", "note"] {
        let _ = es.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
    }
    let on_open = Closure::<dyn Fn()>::new(move || live.state.set(LiveState::Open));
    es.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    let es_for_error = es.clone();
    let on_error = Closure::<dyn Fn()>::new(move || {
        // readyState 2 = CLOSED: the browser will not retry by itself.
        live.state.set(if es_for_error.ready_state() == 2 {
            LiveState::Closed
        } else {
            LiveState::Connecting
        });
    });
    es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let held = SendWrapper::new((es, on_event, on_open, on_error));
    on_cleanup(move || {
        let (es, ..) = &*held;
        es.close();
        drop(held);
    });
    live
}

/// A small indicator of the live connection.
#[component]
pub fn LiveIndicator(live: Live) -> impl IntoView {
    let text = move || match live.state.get() {
        LiveState::Connecting => "connecting to live updates…",
        LiveState::Open => "live",
        LiveState::Closed => "live updates unavailable (is the server running?)",
    };
    view! {
        <span class=move || format!("live live-{:?}", live.state.get()).to_lowercase()
            role="status">{text}</span>
    }
}
