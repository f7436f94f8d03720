//! The generic webhook: an Alertmanager-style JSON body (version 4), so receivers built
//! for Alertmanager (and tools that route its webhooks) take WatchDog alerts as they are,
//! plus a `watchdog` object with the full verdict and explanation. Optionally signed.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{AlertEvent, AlertKind};

/// Header with the body's HMAC-SHA256 when a webhook secret is set:
/// `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "X-WatchDog-Signature";

/// What Alertmanager writes for "not ended yet".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`: the value of
/// [`SIGNATURE_HEADER`].
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret`, compared in constant time.
/// What a receiver does; here for tests and for Rust receivers.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

pub(super) fn payload(ev: &AlertEvent) -> Value {
    let v = &ev.verdict;
    let status = if ev.kind == AlertKind::Resolved
        || ev.status == "resolved"
        || ev.status == "false_positive"
    {
        "resolved"
    } else {
        "firing"
    };
    let labels = json!({
        "alertname": "DeployRegression",
        "service": ev.service,
        "environment": ev.environment,
        "deploy_id": ev.deploy_id,
        "severity": ev.severity,
        "incident_id": ev.incident_id,
    });
    let group_labels = json!({
        "alertname": "DeployRegression",
        "service": ev.service,
        "environment": ev.environment,
    });
    let ends_at = match (status, ev.resolved_at) {
        ("resolved", Some(t)) => t.to_rfc3339(),
        _ => ZERO_TIME.to_string(),
    };
    // Alertmanager's fingerprint is a hash of the label set; the incident id identifies
    // the alert here, so it is hashed instead.
    let fingerprint = hex::encode(&Sha256::digest(ev.incident_id.as_bytes())[..8]);
    json!({
        "version": "4",
        "groupKey": format!(
            "{{}}:{{alertname=\"DeployRegression\", environment=\"{}\", service=\"{}\"}}",
            ev.environment, ev.service
        ),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "watchdog",
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": {
            "summary": ev.explanation.headline,
            "description": ev.explanation.summary,
        },
        "externalURL": ev.link,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": {
                "summary": ev.explanation.headline,
                "description": ev.explanation.summary,
                "title": ev.title,
            },
            "startsAt": ev.opened_at,
            "endsAt": ends_at,
            "generatorURL": ev.link,
            "fingerprint": fingerprint,
        }],
        "watchdog": {
            "event": ev.kind,
            "delivery_id": ev.delivery_id,
            "incident_id": ev.incident_id,
            "status": ev.status,
            "severity": ev.severity,
            "deployed_at": v.deployed_at,
            "verdict": v,
            "explanation": ev.explanation,
        },
    })
}
