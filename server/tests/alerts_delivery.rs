//! Alert payloads delivered to real HTTP receivers on loopback: shape of each channel's
//! body, the webhook signature, and which failures are worth a retry.

mod common;

#[allow(dead_code)]
#[path = "../src/alerts.rs"]
mod alerts;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alerts::{
    channels_from, deliver, deliver_with_timeout, payload, verify_signature, AlertEvent, AlertKind,
    Channel, DELIVERY_HEADER, SIGNATURE_HEADER,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use watchdog_core::explain::{explain, severity, Severity};
use watchdog_core::{DeployVerdict, Timestamp};

/// What a receiver got: path, headers, raw body.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Answers by the first path segment: `ok`, `accepted`, `e500`, `e503`, `e429`, `e400`,
/// `e404`, `slow`.
async fn receive(
    State(log): State<Log>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    match path.split('/').next().unwrap_or("") {
        "accepted" => (
            StatusCode::ACCEPTED,
            r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
        )
            .into_response(),
        "e500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom: database is down").into_response(),
        "e503" => (StatusCode::SERVICE_UNAVAILABLE, "").into_response(),
        "e429" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            "slow down",
        )
            .into_response(),
        "e400" => (
            StatusCode::BAD_REQUEST,
            "invalid_payload: blocks[2] is not valid",
        )
            .into_response(),
        "e404" => (StatusCode::NOT_FOUND, "no_service").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late".into_response()
        }
        _ => "ok".into_response(),
    }
}

async fn receiver() -> (String, Log) {
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/{*path}", post(receive))
        .with_state(log.clone());
    let addr = common::loopback::serve(app).await;
    (format!("http://{addr}"), log)
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// [`common::regression_verdict_json`] with a p95 latency that stayed ok and a new error
/// signature.
fn verdict() -> DeployVerdict {
    let mut v = common::regression_verdict_json();
    v["evidence"].as_array_mut().unwrap().push(json!({
        "metric": "p95_latency_ms", "direction": "up", "status": "ok", "test": "cusum",
        "baseline": {"n": 60, "median": 190.0, "mean": 190.0, "spread": 10.0},
        "observed": {"n": 6, "median": 192.0, "mean": 192.0, "spread": 10.0},
        "effect_absolute": 2.0, "effect_relative": 0.0105, "effect_sigmas": 0.2,
        "min_effect": 19.0, "change_started_at": null, "detected_at": null,
        "statistic": 1.1, "threshold": 5.3, "autocorrelation": 0.1, "counts": null, "note": null
    }));
    v["signatures"] = json!([{
        "signature": "a1b2c3d4", "template": "Timeout connecting to <*> & retrying",
        "change": "new", "level": "error", "count_before": 0, "count_after": 1234,
        "rate_before_per_min": 0.0, "rate_after_per_min": 41.0,
        "first_seen": "2026-03-30T19:30:45Z",
        "example": "Timeout connecting to db-1:5432 & retrying", "score": 30.0
    }]);
    serde_json::from_value(v).unwrap()
}

fn event(kind: AlertKind) -> AlertEvent {
    let v = verdict();
    AlertEvent {
        kind,
        incident_id: "42".into(),
        title: "checkout v1.4.2: error rate up".into(),
        severity: severity(&v),
        status: if kind == AlertKind::Resolved {
            "resolved"
        } else {
            "open"
        }
        .into(),
        service: v.service.clone(),
        environment: v.environment.clone(),
        deploy_id: v.deploy_id.clone(),
        opened_at: t("2026-03-30T19:33:00Z"),
        resolved_at: (kind == AlertKind::Resolved).then(|| t("2026-03-30T19:50:00Z")),
        explanation: explain(&v),
        verdict: v,
        link: "http://dash.example/incidents/42".into(),
        delivery_id: Some("outbox-7".into()),
        dedup_key: None,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn slack_gets_block_kit_with_deltas_signature_timeline_and_link() {
    let (base, log) = receiver().await;
    let ch = Channel::Slack {
        webhook_url: format!("{base}/ok/services/T0/B0/SLACKSECRET"),
    };
    deliver(&client(), &ch, &event(AlertKind::Opened))
        .await
        .unwrap();
    let got = log.lock().unwrap()[0].clone();
    assert_eq!(got.path, "ok/services/T0/B0/SLACKSECRET");
    assert_eq!(got.headers["content-type"], "application/json");
    let body = got.json();
    assert_eq!(body, payload(&ch, &event(AlertKind::Opened)));
    let blocks = body["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["header", "section", "section", "section", "section", "context", "actions"]
    );
    assert_eq!(severity(&verdict()), Severity::Critical);
    assert_eq!(
        blocks[0]["text"]["text"],
        "🔴 CRITICAL regression: checkout v1.4.2 (production)"
    );
    let summary = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        summary.starts_with(
            "*checkout v1.4.2 (production): regression, error rate 0.5% → 6.2% (12.4x)*\n"
        ),
        "{summary}"
    );
    // Markup characters from logs are escaped, never interpreted as Slack links.
    assert!(
        summary.contains("Timeout connecting to &lt;*&gt; &amp; retrying"),
        "{summary}"
    );
    assert!(!summary.contains("<*>"));
    let fields = blocks[2]["fields"].as_array().unwrap();
    assert_eq!(
        fields[0]["text"],
        "*error rate* (regressed)\n0.5% → 6.2% (12.4x, +5.7 pp)"
    );
    assert_eq!(
        fields[1]["text"],
        "*p95 latency*\n190 ms → 192 ms (+1.05%, +2 ms)"
    );
    let sig = blocks[3]["text"]["text"].as_str().unwrap();
    assert!(
        sig.contains("(new, error, 1234× after the deploy, first 45 s after the deploy)"),
        "{sig}"
    );
    let timeline = blocks[4]["text"]["text"].as_str().unwrap();
    assert!(
        timeline.contains("`2026-03-30T19:30:00Z` deploy v1.4.2 of checkout to production"),
        "{timeline}"
    );
    assert!(
        timeline.contains("`2026-03-30T19:33:00Z` incident 42 opened"),
        "{timeline}"
    );
    let button = &blocks[6]["elements"][0];
    assert_eq!(button["url"], "http://dash.example/incidents/42");
    assert_eq!(button["style"], "danger");
    assert_eq!(
        body["text"],
        "🔴 CRITICAL: checkout v1.4.2 (production): regression, error rate 0.5% → 6.2% (12.4x)"
    );
}

/// Delivers the incident's `opened` and then its `resolved` alert on `ch`; both succeed.
async fn open_and_resolve(ch: &Channel) {
    for kind in [AlertKind::Opened, AlertKind::Resolved] {
        deliver(&client(), ch, &event(kind)).await.unwrap();
    }
}

#[tokio::test]
async fn pagerduty_triggers_on_open_and_resolves_by_the_same_dedup_key() {
    let (base, log) = receiver().await;
    let ch = Channel::PagerDuty {
        routing_key: "R0UTINGKEY".into(),
        events_url: format!("{base}/accepted/v2/enqueue"),
    };
    open_and_resolve(&ch).await;
    let got = log.lock().unwrap().clone();
    let trigger = got[0].json();
    assert_eq!(trigger["routing_key"], "R0UTINGKEY");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "42");
    let p = &trigger["payload"];
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "checkout/production");
    assert_eq!(p["component"], "checkout");
    assert_eq!(p["group"], "production");
    assert_eq!(p["timestamp"], "2026-03-30T19:33:00Z");
    assert_eq!(
        p["summary"],
        "[critical] checkout v1.4.2 (production): regression, error rate 0.5% → 6.2% (12.4x)"
    );
    assert_eq!(p["custom_details"]["deploy_id"], "v1.4.2");
    assert_eq!(
        p["custom_details"]["metrics"]["error_rate"],
        "0.5% → 6.2% (12.4x), regressed"
    );
    assert_eq!(
        p["custom_details"]["dominant_signature"]["count_after"],
        1234
    );
    assert_eq!(
        trigger["links"][0]["href"],
        "http://dash.example/incidents/42"
    );

    let resolve = got[1].json();
    assert_eq!(
        resolve,
        json!({"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": "42"})
    );

    let mut ack = event(AlertKind::Updated);
    ack.status = "acknowledged".into();
    assert_eq!(payload(&ch, &ack)["event_action"], "acknowledge");
}

#[tokio::test]
async fn webhook_is_alertmanager_shaped_and_signed_over_the_exact_body() {
    let (base, log) = receiver().await;
    let ch = Channel::Webhook {
        url: format!("{base}/ok/hook"),
        secret: Some("s3cret".into()),
    };
    open_and_resolve(&ch).await;
    let got = log.lock().unwrap().clone();

    let sig = got[0].headers[SIGNATURE_HEADER].to_str().unwrap();
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    assert!(verify_signature(b"s3cret", &got[0].body, sig));
    assert!(!verify_signature(b"wrong", &got[0].body, sig));
    let mut tampered = got[0].body.clone();
    tampered[10] ^= 1;
    assert!(!verify_signature(b"s3cret", &tampered, sig));
    assert_eq!(got[0].headers[DELIVERY_HEADER], "outbox-7");

    let firing = got[0].json();
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["receiver"], "watchdog");
    assert_eq!(
        firing["groupKey"],
        "{}:{alertname=\"DeployRegression\", environment=\"production\", service=\"checkout\"}"
    );
    let a = &firing["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["service"], "checkout");
    assert_eq!(a["labels"]["deploy_id"], "v1.4.2");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["startsAt"], "2026-03-30T19:33:00Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["generatorURL"], "http://dash.example/incidents/42");
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("0.5% → 6.2%"));
    assert_eq!(firing["watchdog"]["verdict"]["deploy_id"], "v1.4.2");

    let resolved = got[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["endsAt"], "2026-03-30T19:50:00Z");
    assert_eq!(resolved["alerts"][0]["fingerprint"], a["fingerprint"]);

    // Without a secret there is no signature header.
    let unsigned = Channel::Webhook {
        url: format!("{base}/ok/plain"),
        secret: None,
    };
    deliver(&client(), &unsigned, &event(AlertKind::Opened))
        .await
        .unwrap();
    assert!(log.lock().unwrap()[2]
        .headers
        .get(SIGNATURE_HEADER)
        .is_none());
}

#[tokio::test]
async fn failures_are_classified_retryable_or_permanent_without_leaking_secrets() {
    let (base, _log) = receiver().await;
    let ev = event(AlertKind::Opened);
    let slack = |p: &str| Channel::Slack {
        webhook_url: format!("{base}/{p}/services/T0/B0/SLACKSECRET"),
    };

    let e = deliver(&client(), &slack("e500"), &ev).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.status, Some(500));
    assert_eq!(e.detail, "boom: database is down");

    let e = deliver(&client(), &slack("e503"), &ev).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.detail, "Service Unavailable");

    let e = deliver(&client(), &slack("e429"), &ev).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!((e.status, e.retry_after_secs), (Some(429), Some(7)));

    let e = deliver(&client(), &slack("e400"), &ev).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.status, Some(400));
    assert_eq!(e.detail, "invalid_payload: blocks[2] is not valid");

    let pd = Channel::PagerDuty {
        routing_key: "R0UTINGKEY".into(),
        events_url: format!("{base}/e404/v2/enqueue"),
    };
    let e = deliver(&client(), &pd, &ev).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.status, Some(404));

    let e = deliver_with_timeout(&client(), &slack("slow"), &ev, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.status, None);
    assert_eq!(e.detail, "no answer within 300 ms");

    // A port nobody listens on: connection refused, worth retrying.
    let port = common::cli::free_port();
    let refused = Channel::Slack {
        webhook_url: format!("http://127.0.0.1:{port}/services/T0/B0/SLACKSECRET"),
    };
    let e = deliver(&client(), &refused, &ev).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let shown = format!("{e} {e:?} {refused:?}");
    assert!(!shown.contains("SLACKSECRET"), "{shown}");

    let bad = Channel::Webhook {
        url: "not a url".into(),
        secret: Some("s3cret".into()),
    };
    let e = deliver(&client(), &bad, &ev).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");

    // The message names the channel and host, never the path or the key.
    let e = deliver(&client(), &slack("e500"), &ev).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("slack alert to {base} failed with HTTP 500: boom: database is down")
    );
    let e = deliver(&client(), &pd, &ev).await.unwrap_err();
    assert!(!format!("{e} {e:?} {pd:?}").contains("R0UTINGKEY"));
}

#[test]
fn channels_come_from_the_environment_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert!(channels_from(vars(&[])).is_empty());
    let all = channels_from(vars(&[
        (
            "WATCHDOG_SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/X",
        ),
        ("WATCHDOG_PAGERDUTY_ROUTING_KEY", "key"),
        ("WATCHDOG_WEBHOOK_URL", "https://example.invalid/hook"),
        ("WATCHDOG_WEBHOOK_SECRET", " "),
    ]));
    assert_eq!(
        all,
        vec![
            Channel::Slack {
                webhook_url: "https://hooks.slack.com/services/T/B/X".into()
            },
            Channel::PagerDuty {
                routing_key: "key".into(),
                events_url: "https://events.pagerduty.com/v2/enqueue".into()
            },
            Channel::Webhook {
                url: "https://example.invalid/hook".into(),
                secret: None
            },
        ]
    );
    let pd = channels_from(vars(&[
        ("WATCHDOG_PAGERDUTY_ROUTING_KEY", "key"),
        (
            "WATCHDOG_PAGERDUTY_EVENTS_URL",
            "http://127.0.0.1:9/v2/enqueue",
        ),
    ]));
    assert_eq!(pd[0].target(), "http://127.0.0.1:9");
    assert_eq!(
        format!("{:?}", all[0]),
        "slack { target: \"https://hooks.slack.com\", .. }"
    );
}

#[test]
fn alert_events_round_trip_through_json_for_the_outbox() {
    let ev = event(AlertKind::Opened);
    let stored = serde_json::to_string(&ev).unwrap();
    let back: AlertEvent = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, ev);
    let v: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(v["kind"], "opened");
    assert_eq!(v["severity"], "critical");
}
