//! Alert payloads and their delivery: Slack (Block Kit), PagerDuty (Events API v2) and a
//! generic JSON webhook shaped like Alertmanager's.
//!
//! This module builds and sends one alert; it does not queue. The durable outbox (one row
//! per incident change and channel, retries with backoff) lives in the store and calls
//! [`deliver`], using [`DeliveryError::is_retryable`] to choose between retrying later and
//! giving up.
//!
//! Dependencies this module needs in `server/Cargo.toml`:
//!
//! ```toml
//! reqwest = { version = "0.12", default-features = false, features = ["json", "rustls-tls"] }
//! hmac = "0.12"
//! sha2 = "0.10"
//! hex = "0.4"
//! serde = { workspace = true }
//! serde_json = { workspace = true }
//! thiserror = { workspace = true }
//! watchdog-core = { workspace = true }
//! # tests (server/tests/alerts_*.rs) also use tokio (macros, rt-multi-thread, net, time)
//! # and axum 0.8 for the loopback receivers.
//! ```

#[path = "alerts/pagerduty.rs"]
mod pagerduty;
#[path = "alerts/slack.rs"]
mod slack;
#[path = "alerts/text.rs"]
mod text;
#[path = "alerts/webhook.rs"]
mod webhook;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use watchdog_core::explain::{Explanation, Severity};
use watchdog_core::{DeployVerdict, Timestamp};

pub use webhook::{sign, verify_signature, SIGNATURE_HEADER};

/// PagerDuty's Events API v2 endpoint, used unless `WATCHDOG_PAGERDUTY_EVENTS_URL` says
/// otherwise.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// How long one delivery may take, connection to last byte, in [`deliver`].
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Header carrying the delivery's idempotency key ([`AlertEvent::delivery_id`]) to
/// webhook receivers, so a retried delivery can be recognised.
pub const DELIVERY_HEADER: &str = "X-WatchDog-Delivery";

/// Where alerts go. The URLs and keys are secrets: `Debug` and errors never show them.
#[derive(Clone, PartialEq, Eq)]
pub enum Channel {
    /// A Slack incoming webhook.
    Slack {
        /// `https://hooks.slack.com/services/…` (the path is the credential).
        webhook_url: String,
    },
    /// A PagerDuty service's Events API v2 integration.
    PagerDuty {
        /// The integration's routing key.
        routing_key: String,
        /// Events endpoint, [`PAGERDUTY_EVENTS_URL`] by default.
        events_url: String,
    },
    /// Any HTTP endpoint that takes an Alertmanager-style JSON body.
    Webhook {
        /// Where to POST.
        url: String,
        /// When set, the body is signed with HMAC-SHA256 in [`SIGNATURE_HEADER`].
        secret: Option<String>,
    },
    /// Any HTTP endpoint that takes the alert as plain text (`text/plain` body), as the
    /// original WatchDog's `webhook_url` did for URLs that are not Slack's.
    Text {
        /// Where to POST.
        url: String,
    },
}

impl Channel {
    /// Short stable name (`slack`, `pagerduty`, `webhook`), as stored in the outbox.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Slack { .. } => "slack",
            Channel::PagerDuty { .. } => "pagerduty",
            Channel::Webhook { .. } => "webhook",
            Channel::Text { .. } => "text",
        }
    }

    /// The URL a delivery is POSTed to.
    fn url(&self) -> &str {
        match self {
            Channel::Slack { webhook_url } => webhook_url,
            Channel::PagerDuty { events_url, .. } => events_url,
            Channel::Webhook { url, .. } => url,
            Channel::Text { url } => url,
        }
    }

    /// Scheme, host and port of the target, safe to log.
    pub fn target(&self) -> String {
        redact_url(self.url())
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Webhook { secret, .. } => f
                .debug_struct("Webhook")
                .field("target", &self.target())
                .field("signed", &secret.is_some())
                .finish(),
            _ => f
                .debug_struct(self.name())
                .field("target", &self.target())
                .finish_non_exhaustive(),
        }
    }
}

/// `https://hooks.slack.com/services/T0/B0/XXX` → `https://hooks.slack.com`.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

/// The channels configured in the process environment: see [`channels_from`].
pub fn channels_from_env() -> Vec<Channel> {
    channels_from(|k| std::env::var(k).ok())
}

/// The channels configured by these variables, read through `var` (empty values count as
/// unset), in the order Slack, PagerDuty, webhook:
///
/// - `WATCHDOG_SLACK_WEBHOOK_URL`: a Slack incoming webhook.
/// - `WATCHDOG_PAGERDUTY_ROUTING_KEY`, optionally `WATCHDOG_PAGERDUTY_EVENTS_URL`.
/// - `WATCHDOG_WEBHOOK_URL`, optionally `WATCHDOG_WEBHOOK_SECRET` to sign the body.
pub fn channels_from(var: impl Fn(&str) -> Option<String>) -> Vec<Channel> {
    let get = |k: &str| {
        var(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut out = Vec::new();
    if let Some(webhook_url) = get("WATCHDOG_SLACK_WEBHOOK_URL") {
        out.push(Channel::Slack { webhook_url });
    }
    if let Some(routing_key) = get("WATCHDOG_PAGERDUTY_ROUTING_KEY") {
        out.push(Channel::PagerDuty {
            routing_key,
            events_url: get("WATCHDOG_PAGERDUTY_EVENTS_URL")
                .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string()),
        });
    }
    if let Some(url) = get("WATCHDOG_WEBHOOK_URL") {
        out.push(Channel::Webhook {
            url,
            secret: get("WATCHDOG_WEBHOOK_SECRET"),
        });
    }
    out
}

/// What happened to the incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A regression opened an incident.
    Opened,
    /// The incident was resolved (or marked a false positive).
    Resolved,
    /// Something else changed (acknowledged, severity, explanation).
    Updated,
}

impl AlertKind {
    /// Lowercase name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Opened => "opened",
            AlertKind::Resolved => "resolved",
            AlertKind::Updated => "updated",
        }
    }
}

/// Everything an alert says. Serializable so the outbox can store it as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// What happened.
    pub kind: AlertKind,
    /// Incident id; PagerDuty's `dedup_key` and the webhook's fingerprint source.
    pub incident_id: String,
    /// Incident title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Incident status (`open`, `acknowledged`, `resolved`, `false_positive`).
    pub status: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Deploy id.
    pub deploy_id: String,
    /// When the incident was opened.
    pub opened_at: Timestamp,
    /// When it was resolved, for [`AlertKind::Resolved`].
    #[serde(default)]
    pub resolved_at: Option<Timestamp>,
    /// The verdict behind the incident.
    pub verdict: DeployVerdict,
    /// Its explanation.
    pub explanation: Explanation,
    /// Link back to the incident in the dashboard.
    pub link: String,
    /// Idempotency key of this delivery (the outbox row id), sent to webhook receivers in
    /// [`DELIVERY_HEADER`] and in the body, so that a retry can be told from a new alert.
    #[serde(default)]
    pub delivery_id: Option<String>,
    /// PagerDuty's `dedup_key`: the incident id made unique per installation
    /// (`watchdog-<installation>-<incident>`); the bare incident id when unset.
    #[serde(default)]
    pub dedup_key: Option<String>,
}

/// The HTTP client alert deliveries use: redirects are not followed (a 301 would turn the
/// POST into a GET that "succeeds" without the alert being delivered); a redirect is a
/// failed delivery naming its status instead.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a TLS backend is compiled in")
}

/// The JSON body `channel` receives for `ev`.
pub fn payload(channel: &Channel, ev: &AlertEvent) -> serde_json::Value {
    match channel {
        Channel::Slack { .. } => slack::payload(ev),
        Channel::PagerDuty { routing_key, .. } => pagerduty::payload(routing_key, ev),
        Channel::Webhook { .. } => webhook::payload(ev),
        Channel::Text { .. } => serde_json::Value::String(text::body(ev)),
    }
}

/// Why a delivery failed, and whether trying again later can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{channel} alert to {target} failed{}: {detail}", status.map(|s| format!(" with HTTP {s}")).unwrap_or_default())]
pub struct DeliveryError {
    /// Channel name (`slack`, `pagerduty`, `webhook`).
    pub channel: &'static str,
    /// Scheme and host of the receiver (never the path, which may hold a credential).
    pub target: String,
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// What went wrong: the start of the receiver's answer, or the transport error.
    pub detail: String,
    /// Timeouts, connection failures, 408, 429 and 5xx are retryable; other 4xx,
    /// redirects left unfollowed and invalid URLs are not.
    pub retryable: bool,
    /// The receiver's `Retry-After`, in seconds, when it sent one.
    pub retry_after_secs: Option<u64>,
}

impl DeliveryError {
    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Longest excerpt of a receiver's answer kept in a [`DeliveryError`].
const EXCERPT_CHARS: usize = 200;

/// Sends `ev` to `channel` with [`DELIVERY_TIMEOUT`].
///
/// # Errors
/// A [`DeliveryError`] when the receiver could not be reached in time or answered with
/// anything but 2xx, saying whether a retry can help.
pub async fn deliver(
    client: &reqwest::Client,
    channel: &Channel,
    ev: &AlertEvent,
) -> Result<(), DeliveryError> {
    deliver_with_timeout(client, channel, ev, DELIVERY_TIMEOUT).await
}

/// [`deliver`] with its own time limit.
///
/// # Errors
/// As [`deliver`].
pub async fn deliver_with_timeout(
    client: &reqwest::Client,
    channel: &Channel,
    ev: &AlertEvent,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let fail = |status: Option<u16>, detail: String, retryable: bool| DeliveryError {
        channel: channel.name(),
        target: channel.target(),
        status,
        detail,
        retryable,
        retry_after_secs: None,
    };
    // Serialized once: a signature must cover exactly the bytes sent.
    let (body, content_type) = match channel {
        Channel::Text { .. } => (text::body(ev).into_bytes(), "text/plain; charset=utf-8"),
        _ => (
            serde_json::to_vec(&payload(channel, ev))
                .map_err(|e| fail(None, format!("payload did not serialize: {e}"), false))?,
            "application/json",
        ),
    };
    let mut req = client
        .post(channel.url())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(reqwest::header::USER_AGENT, "WatchDog-alerts");
    if let Channel::Webhook { secret, .. } = channel {
        if let Some(secret) = secret {
            req = req.header(SIGNATURE_HEADER, sign(secret.as_bytes(), &body));
        }
        if let Some(id) = &ev.delivery_id {
            req = req.header(DELIVERY_HEADER, id.as_str());
        }
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            // Builder errors (a malformed URL) will not fix themselves; everything else
            // (timeouts, refused connections, resets) may.
            let retryable = !e.is_builder();
            let detail = if e.is_timeout() {
                format!("no answer within {} ms", timeout.as_millis())
            } else {
                error_chain(&e.without_url())
            };
            return Err(fail(None, detail, retryable));
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after_secs = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = body_excerpt(resp).await.unwrap_or_default();
    let code = status.as_u16();
    let retryable = code == 408 || code == 429 || status.is_server_error();
    let mut err = fail(
        Some(code),
        if text.is_empty() {
            status.canonical_reason().unwrap_or("no body").to_string()
        } else {
            text
        },
        retryable,
    );
    err.retry_after_secs = retry_after_secs;
    Err(err)
}

/// The first [`EXCERPT_CHARS`] characters of a response body, on one line.
async fn body_excerpt(resp: reqwest::Response) -> Option<String> {
    let bytes = resp.bytes().await.ok()?;
    let head = &bytes[..bytes.len().min(EXCERPT_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    if text.chars().count() > EXCERPT_CHARS || bytes.len() > head.len() {
        out.push('…');
    }
    Some(out.trim().to_string())
}

/// An error and its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Text for Slack `mrkdwn` and other markup-sensitive places: `&`, `<`, `>` escaped.
pub(crate) fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
