//! Deployment statuses posted back to GitHub, against a loopback HTTP server standing in
//! for GitHub's REST API that checks what GitHub checks: the path
//! `POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses`, the bearer token, the
//! `Accept: application/vnd.github+json` and `X-GitHub-Api-Version` headers, a
//! `User-Agent`, and a JSON body with `state` and `log_url`
//! (<https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status>).
//! Deploys arrive as signed `deployment_status` webhooks
//! (<https://docs.github.com/en/webhooks/webhook-events-and-payloads#deployment_status>).

mod common;

use common::loopback::get_json;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::feedback::github::{post_status, GithubStatusConfig};
use watchdog_core::scenarios::{self, ScenarioParams, DEPLOY_AT};

const GITHUB_TOKEN: &str = "ghp_loopbackTestToken123";
const HOOK_SECRET: &str = "It's a Secret to Everybody";

#[derive(Clone, Debug)]
struct Posted {
    owner: String,
    repo: String,
    id: u64,
    body: Value,
}

type Log = Arc<Mutex<Vec<Posted>>>;

async fn statuses(
    State(log): State<Log>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if h("authorization") != format!("Bearer {GITHUB_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        );
    }
    if h("accept") != "application/vnd.github+json"
        || h("x-github-api-version") != "2022-11-28"
        || h("user-agent").is_empty()
        || !h("content-type").starts_with("application/json")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "bad headers"})),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Problems parsing JSON"})),
        );
    };
    let state_ok = [
        "error",
        "failure",
        "inactive",
        "in_progress",
        "queued",
        "pending",
        "success",
    ]
    .contains(&body["state"].as_str().unwrap_or(""));
    if !state_ok
        || body["description"]
            .as_str()
            .is_some_and(|d| d.chars().count() > 140)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed"})),
        );
    }
    log.lock().unwrap().push(Posted {
        owner,
        repo,
        id,
        body: body.clone(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": 1, "state": body["state"]})),
    )
}

async fn fake_github() -> (String, Log) {
    let log: Log = Arc::default();
    let app = Router::new()
        .route(
            "/repos/{owner}/{repo}/deployments/{id}/statuses",
            post(statuses),
        )
        .with_state(log.clone());
    let url = common::loopback::serve_url(app).await;
    (url, log)
}

fn deployment_status_event(id: u64, deploy_id: &str, service: &str, at: &str) -> String {
    json!({
        "action": "created",
        "deployment_status": {
            "id": id * 10,
            "state": "success",
            "environment": "production",
            "created_at": at,
            "updated_at": at
        },
        "deployment": {
            "id": id,
            "sha": "7638417db6d59f3c431d3e1f261cc637155684cd",
            "ref": "main",
            "environment": "production",
            "payload": {"deploy_id": deploy_id, "service": service}
        },
        "repository": {"name": service, "full_name": format!("octo-org/{service}")}
    })
    .to_string()
}

fn signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    m.update(body.as_bytes());
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_posts_failure_with_the_incident_and_a_healthy_watch_success() {
    let (github, log) = fake_github().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = ServerConfig::for_state_dir(dir.path());
    c.clock = Clock::Data;
    c.api_token = Secret::new("api-token");
    c.github_secret = Secret::new(HOOK_SECRET);
    c.public_url = "http://watchdog.example".into();
    c.detector.monitoring_window_secs = 600;
    c.github_status = Some(
        toml::from_str::<GithubStatusConfig>(&format!(
            "token = \"{GITHUB_TOKEN}\"\napi_url = \"{github}\"\n"
        ))
        .unwrap(),
    );
    let (_server, base) = common::app::listen(c, Vec::new()).await;
    let http = reqwest::Client::new();

    // checkout's release raises its error rate; search's, two minutes later, is healthy.
    let data = scenarios::generate(
        "overlapping_deploys",
        &ScenarioParams {
            after_mins: 40,
            ..ScenarioParams::default()
        },
    )
    .unwrap();
    for (id, d) in [(42, &data.deploys[0]), (43, &data.deploys[1])] {
        let body = deployment_status_event(id, &d.deploy_id, &d.service, &d.timestamp.to_rfc3339());
        let r = http
            .post(format!("{base}/api/v1/hooks/github"))
            .header("x-github-event", "deployment_status")
            .header("x-hub-signature-256", signature(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let lines: String = data
        .samples
        .iter()
        .map(|s| {
            let mut v = json!({
                "timestamp": s.timestamp.to_rfc3339(),
                "service": s.service,
                "environment": s.environment,
            });
            for (k, x) in &s.metrics {
                v[k] = json!(x);
            }
            format!("{v}\n")
        })
        .collect();
    let r = http
        .post(format!("{base}/api/v1/metrics"))
        .bearer_auth("api-token")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted = log.lock().unwrap().clone();
    assert_eq!(posted.len(), 2, "one status per verdict: {posted:?}");
    let failure = posted
        .iter()
        .find(|p| p.id == 42)
        .expect("checkout's status");
    assert_eq!(
        (failure.owner.as_str(), failure.repo.as_str()),
        ("octo-org", "checkout")
    );
    assert_eq!(failure.body["state"], "failure", "{:?}", failure.body);
    let link = failure.body["log_url"].as_str().unwrap();
    assert!(
        link.starts_with("http://watchdog.example/incidents/"),
        "{link}"
    );
    // The link is the incident the verdict opened.
    let incidents: Value = get_json(&http, format!("{base}/api/v1/incidents")).await;
    let incident_id = incidents["items"][0]["id"].as_i64().unwrap();
    assert!(
        link.ends_with(&format!("/incidents/{incident_id}")),
        "{link} {incidents}"
    );
    let success = posted.iter().find(|p| p.id == 43).expect("search's status");
    assert_eq!(success.repo, "search");
    assert_eq!(success.body["state"], "success", "{:?}", success.body);
    assert!(success.body["log_url"]
        .as_str()
        .unwrap()
        .contains("/deploys/"));
    // Stored with where it came from.
    let deploys: Value = get_json(&http, format!("{base}/api/v1/deploys?service=checkout")).await;
    assert_eq!(deploys["items"][0]["source"], "github:octo-org/checkout#42");
    let _ = DEPLOY_AT;
}

#[tokio::test]
async fn a_refused_status_says_what_github_answered() {
    let (github, log) = fake_github().await;
    let cfg: GithubStatusConfig =
        toml::from_str(&format!("token = \"wrong\"\napi_url = \"{github}/\"\n")).unwrap();
    let err = post_status(
        &reqwest::Client::new(),
        &cfg,
        "octo-org/checkout",
        42,
        &json!({"state": "success", "log_url": "http://x"}),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("401") && err.contains("Bad credentials"),
        "{err}"
    );
    assert!(log.lock().unwrap().is_empty());
    // An empty token is a configuration error naming the field.
    let e = toml::from_str::<GithubStatusConfig>("token = \"\"\n").unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");
}
