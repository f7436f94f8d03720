//! The progressive-delivery gates over real HTTP on loopback, driven the way Argo Rollouts
//! and Flagger drive them, on a real SQLite file, with canary scenarios pushed as data.
//!
//! Argo Rollouts: the request is built from the shipped `docs/rollouts/analysis-template.yaml`
//! the way the web metric provider documents it (method, url, headers, body, `jsonPath`
//! read into `result`, then `successCondition`/`failureCondition`):
//! <https://argo-rollouts.readthedocs.io/en/stable/analysis/web/> and, for what a
//! measurement that matches neither condition does (Inconclusive; an Inconclusive run
//! pauses the rollout), <https://argo-rollouts.readthedocs.io/en/stable/features/analysis/#inconclusive-runs>.
//!
//! Flagger: the webhook payload is the one in Flagger's documentation, verbatim
//! (`{"name":"podinfo","namespace":"test","phase":"Progressing","metadata":{"test":"all","token":"16688eb5e9f289f1991c"}}`),
//! and its rule "200-202 advance, timeout or non-2xx halt":
//! <https://docs.flagger.app/usage/webhooks>.

mod common;

use common::loopback::get_json;

use std::time::Duration;

use serde_json::{json, Value};
use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::server::Server;
use watchdog_core::scenarios::{self, ScenarioParams, DEPLOY_AT};
use watchdog_core::Sample;

/// The token in Flagger's documented payload; the server is started with it.
const FLAGGER_DOC_TOKEN: &str = "16688eb5e9f289f1991c";

async fn start(dir: &std::path::Path) -> (Server, String) {
    let mut c = ServerConfig::for_state_dir(dir);
    c.clock = Clock::Data;
    c.api_token = Secret::new(FLAGGER_DOC_TOKEN);
    c.max_future_skew_secs = 6 * 3600;
    common::app::listen(c, Vec::new()).await
}

/// A canary scenario moved so that its deploy is `secs_ahead` seconds from now, with its
/// version labels renamed, split at the deploy.
fn scenario(
    name: &str,
    service: &str,
    environment: &str,
    labels: (&str, &str),
    secs_ahead: i64,
) -> (Vec<Value>, Vec<Value>) {
    let p = ScenarioParams {
        after_mins: 40,
        ..ScenarioParams::default()
    };
    let data = scenarios::generate(name, &p).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let offset = now_ms + secs_ahead * 1000 - DEPLOY_AT.millis();
    let line = |s: &Sample| {
        let mut v = json!({
            "timestamp": watchdog_core::Timestamp(s.timestamp.millis() + offset).to_rfc3339(),
            "service": service,
            "environment": environment,
            "version": match s.version.as_deref() {
                Some("v1.4.2") => labels.1,
                _ => labels.0,
            },
        });
        for (k, x) in &s.metrics {
            v[k] = json!(x);
        }
        v
    };
    let (before, after): (Vec<&Sample>, Vec<&Sample>) =
        data.samples.iter().partition(|s| s.timestamp < DEPLOY_AT);
    (
        before.into_iter().map(line).collect(),
        after.into_iter().map(line).collect(),
    )
}

async fn push(http: &reqwest::Client, base: &str, lines: &[Value]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = http
        .post(format!("{base}/api/v1/metrics"))
        .bearer_auth(FLAGGER_DOC_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{v}");
    assert_eq!(v["accepted"], lines.len(), "{v}");
}

/// The web provider of the shipped AnalysisTemplate, read field by field.
struct WebMetric {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    json_path: String,
    success: String,
    failure: String,
}

fn field(yaml: &str, key: &str) -> String {
    let line = yaml
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("the template has no {key}"));
    let v = line[key.len() + 1..].trim();
    let unquoted = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v);
    unquoted.to_string()
}

fn template(args: &[(&str, &str)]) -> WebMetric {
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/rollouts/analysis-template.yaml"),
    )
    .unwrap();
    let subst = |s: String| {
        let mut s = s;
        for (k, v) in args {
            s = s.replace(&format!("{{{{ args.{k} }}}}"), v);
        }
        assert!(!s.contains("{{"), "unsubstituted argument in {s}");
        s
    };
    let lines: Vec<&str> = yaml.lines().collect();
    let mut headers = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(k) = l.trim().strip_prefix("- key: ") {
            let v = field(lines[i + 1], "value");
            headers.push((k.to_string(), subst(v)));
        }
    }
    WebMetric {
        method: field(&yaml, "method"),
        url: subst(field(&yaml, "url")),
        headers,
        body: subst(field(&yaml, "body")),
        json_path: field(&yaml, "jsonPath"),
        success: field(&yaml, "successCondition"),
        failure: field(&yaml, "failureCondition"),
    }
}

/// Argo's outcome of one measurement: Successful, Failed or Inconclusive.
async fn measure(http: &reqwest::Client, m: &WebMetric) -> (&'static str, Value) {
    let mut req = match m.method.as_str() {
        "POST" => http.post(&m.url),
        "GET" => http.get(&m.url),
        other => panic!("method {other}"),
    };
    for (k, v) in &m.headers {
        req = req.header(k, v);
    }
    let resp = req.body(m.body.clone()).send().await.unwrap();
    // Argo's web provider errors on a non-2xx answer; a gate must always answer 200.
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // `{$.verdict}`: the only jsonPath form the template uses.
    let key = m
        .json_path
        .strip_prefix("{$.")
        .and_then(|p| p.strip_suffix('}'))
        .expect("jsonPath of the form {$.field}");
    let result = body[key].as_str().expect("a string result").to_string();
    let holds = |cond: &str| {
        let want = cond
            .strip_prefix("result == \"")
            .and_then(|c| c.strip_suffix('"'))
            .expect("conditions of the form result == \"...\"");
        result == want
    };
    let phase = if holds(&m.failure) {
        "Failed"
    } else if holds(&m.success) {
        "Successful"
    } else {
        "Inconclusive"
    };
    (phase, body)
}

async fn until<F, Fut>(secs: u64, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_rollouts_fails_a_bad_canary_and_passes_one_hit_by_a_shared_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = start(dir.path()).await;
    let http = reqwest::Client::new();

    // A bad canary: 6c54544bf9 next to stable 5f7d8c9b4a.
    let (before, after) = scenario(
        "canary_bad",
        "checkout",
        "production",
        ("5f7d8c9b4a", "6c54544bf9"),
        3,
    );
    push(&http, &base, &before).await;
    let metric = template(&[
        ("watchdog-url", &base),
        ("watchdog-token", FLAGGER_DOC_TOKEN),
        ("service", "checkout"),
        ("environment", "production"),
        ("canary-hash", "6c54544bf9"),
    ]);
    assert_eq!(metric.method, "POST");
    // The first measurement registers the version and is inconclusive: the run goes on.
    let (phase, body) = measure(&http, &metric).await;
    assert_eq!(phase, "Inconclusive", "{body}");
    assert_eq!(body["verdict"], "watching", "{body}");
    assert_eq!(body["registered"], true, "{body}");
    let (_, again) = measure(&http, &metric).await;
    assert_eq!(again["registered"], false, "registered once: {again}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    push(&http, &base, &after).await;
    let failed = until(30, || async {
        let (phase, body) = measure(&http, &metric).await;
        (phase != "Inconclusive").then_some(json!({"phase": phase, "body": body}))
    })
    .await;
    assert_eq!(failed["phase"], "Failed", "{failed}");
    let body = &failed["body"];
    assert_eq!(body["canary"]["outcome"], "worse", "{body}");
    assert_eq!(body["canary"]["stable_version"], "5f7d8c9b4a", "{body}");
    assert!(
        body["incident_url"]
            .as_str()
            .unwrap()
            .contains("/incidents/"),
        "{body}"
    );
    // The incident's charts follow one version at a time: stable before the deploy, the
    // canary after it (both are side by side in the canary comparison), never both
    // interleaved at the same instants.
    let incident = body["incident_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let series: Value = get_json(&http, format!("{base}/api/v1/incidents/{incident}/series")).await;
    let metrics = series["metrics"].as_array().unwrap();
    assert!(!metrics.is_empty(), "{series}");
    for m in metrics {
        let ts: Vec<&str> = m["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap())
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "{} has two points at one instant",
            m["metric"]
        );
    }

    // A healthy canary through a shared dependency outage: before/after alone would
    // fail it; against the concurrent stable version it passes. (A server of its own:
    // event time is the data's, and the first scenario's data ran 40 minutes ahead.)
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = start(dir.path()).await;
    let (before, after) = scenario(
        "canary_shared_outage",
        "search",
        "production",
        ("aa11", "bb22"),
        3,
    );
    push(&http, &base, &before).await;
    let metric = template(&[
        ("watchdog-url", &base),
        ("watchdog-token", FLAGGER_DOC_TOKEN),
        ("service", "search"),
        ("environment", "production"),
        ("canary-hash", "bb22"),
    ]);
    assert_eq!(measure(&http, &metric).await.0, "Inconclusive");
    tokio::time::sleep(Duration::from_secs(3)).await;
    push(&http, &base, &after).await;
    let passed = until(30, || async {
        let (phase, body) = measure(&http, &metric).await;
        (phase != "Inconclusive").then_some(json!({"phase": phase, "body": body}))
    })
    .await;
    assert_eq!(passed["phase"], "Successful", "{passed}");
    assert_eq!(
        passed["body"]["canary"]["outcome"], "shared_shift",
        "{passed}"
    );

    // A version nobody registered, asked read-only: unknown, neither condition.
    let r: Value = get_json(
        &http,
        format!("{base}/api/v1/rollouts/analysis?service=search&version=nope"),
    )
    .await;
    assert_eq!(r["verdict"], "unknown", "{r}");
    // Bad input names the field.
    let r = http
        .post(format!("{base}/api/v1/rollouts/analysis"))
        .bearer_auth(FLAGGER_DOC_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"service":"search"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("version"), "{v}");
}

/// Flagger's documented webhook payload, verbatim.
fn flagger_doc_payload() -> Value {
    json!({
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "metadata": {
            "test": "all",
            "token": "16688eb5e9f289f1991c"
        }
    })
}

async fn hook(http: &reqwest::Client, base: &str, kind: &str, payload: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{base}/api/v1/rollouts/flagger/{kind}"))
        .json(payload)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagger_halts_a_bad_canary_and_holds_promotion_while_undecided() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = start(dir.path()).await;
    let http = reqwest::Client::new();
    // Flagger's workloads: podinfo-primary (stable) and podinfo-canary.
    let (before, after) = scenario("canary_bad", "podinfo", "test", ("primary", "canary"), 3);
    push(&http, &base, &before).await;
    let payload = flagger_doc_payload();

    // Undecided: the rollout hook lets the canary advance, promotion waits.
    let (s, v) = hook(&http, &base, "rollout", &payload).await;
    assert!((200..=202).contains(&s), "{s} {v}");
    assert_eq!(v["verdict"], "watching", "{v}");
    assert_eq!(v["registered"], true, "{v}");
    let (s, v) = hook(&http, &base, "confirm-promotion", &payload).await;
    assert!(!(200..=299).contains(&s), "promotion must wait: {s} {v}");
    assert_eq!(v["registered"], false, "the same rollout: {v}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    push(&http, &base, &after).await;
    let halted = until(30, || async {
        let (s, v) = hook(&http, &base, "rollout", &payload).await;
        (s != 200).then_some(json!({"status": s, "body": v}))
    })
    .await;
    assert_eq!(halted["status"], 409, "{halted}");
    assert_eq!(halted["body"]["verdict"], "regression", "{halted}");
    // Like every error answer of the API: `error` and `code` beside the gate's fields.
    assert_eq!(halted["body"]["code"], "error", "{halted}");
    assert!(
        halted["body"]["error"]
            .as_str()
            .unwrap()
            .starts_with("regression"),
        "{halted}"
    );
    assert_eq!(
        halted["body"]["canary"]["canary_version"], "canary",
        "{halted}"
    );
    assert_eq!(
        halted["body"]["canary"]["stable_version"], "primary",
        "{halted}"
    );
    let (s, _) = hook(&http, &base, "confirm-promotion", &payload).await;
    assert_eq!(s, 409);

    // The token in metadata is checked; a wrong one is refused before anything else.
    let mut wrong = flagger_doc_payload();
    wrong["metadata"]["token"] = json!("nope");
    let (s, v) = hook(&http, &base, "rollout", &wrong).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = hook(&http, &base, "pre-rollout", &payload).await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("confirm-promotion"),
        "{v}"
    );
}
