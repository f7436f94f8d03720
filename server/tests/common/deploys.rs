//! Reading the deploy list (`GET /api/v1/deploys`) the way the end-to-end tests do:
//! waiting for verdicts, finding one service's deploy and one metric's evidence.

use std::time::Duration;

use serde_json::Value;

use super::loopback::get_json;

/// The deploy of `service` in a deploy list, if there is one.
pub fn deploy_of<'a>(list: &'a Value, service: &str) -> Option<&'a Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["service"] == service)
}

/// The deploy of `service` in a deploy list; the test fails without one.
pub fn deploy<'a>(list: &'a Value, service: &str) -> &'a Value {
    deploy_of(list, service).unwrap_or_else(|| panic!("no deploy of {service}: {list}"))
}

/// The evidence a verdict gives for `metric`, if any.
pub fn evidence<'a>(verdict: &'a Value, metric: &str) -> Option<&'a Value> {
    verdict["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == metric)
}

/// Polls `{base}/api/v1/deploys` (no token) every `every`, at most `tries` times, until
/// every given service has a decided deploy: the last list it got, decided or not.
pub async fn decided(base: &str, services: &[&str], tries: usize, every: Duration) -> Value {
    let client = reqwest::Client::new();
    let mut last = Value::Null;
    for _ in 0..tries {
        last = get_json(&client, format!("{base}/api/v1/deploys")).await;
        let items = last["items"].as_array().cloned().unwrap_or_default();
        if services.iter().all(|s| {
            items
                .iter()
                .any(|d| d["service"] == *s && d["status"] == "decided")
        }) {
            break;
        }
        tokio::time::sleep(every).await;
    }
    last
}

/// The log signature (of a verdict, or of a deploy's traces answer) whose template
/// contains `text`, if any.
pub fn signature<'a>(v: &'a Value, text: &str) -> Option<&'a Value> {
    v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"].as_str().unwrap().contains(text))
}

/// The verdict of the simulated service's bad version (payment gateway timeouts, 500s):
/// a regression, the error rate regressed, the new signature among the evidence.
pub fn assert_payment_timeout_regression(service: &str, v: &Value) {
    assert_eq!(v["verdict"], "regression", "{service}: {v}");
    let error_rate = evidence(v, "error_rate")
        .unwrap_or_else(|| panic!("{service}: no error_rate evidence: {v}"));
    assert_eq!(error_rate["status"], "regressed", "{service}: {error_rate}");
    assert!(
        signature(v, "payment gateway timeout").is_some(),
        "{service}: {v}"
    );
}
