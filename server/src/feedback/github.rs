//! GitHub deployment statuses: when a deploy that came from a GitHub `deployment_status`
//! webhook gets its verdict, WatchDog posts a deployment status back to that deployment:
//! `failure` with a link to the incident on a regression, `success` when the watch ended
//! healthy. Inconclusive verdicts post nothing (GitHub has no state for "could not tell").
//!
//! Off unless `[github_status]` is in the config file with a `token` (a fine-grained token
//! with "Deployments: write" on the repository, or a classic token with `repo_deployment`).
//! The call is GitHub's REST API
//! `POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses`
//! (<https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status>).

use serde::Deserialize;
use serde_json::{json, Value};
use watchdog_core::VerdictKind;

use crate::config::Secret;
use crate::state::AppState;
use crate::store::RecordedVerdict;

/// `[github_status]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubStatusConfig {
    /// API token, sent as `Authorization: Bearer`.
    #[serde(deserialize_with = "secret")]
    pub token: Secret,
    /// API base URL; `https://api.github.com` unless GitHub Enterprise
    /// (`https://HOST/api/v3`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
}

fn default_api_url() -> String {
    "https://api.github.com".into()
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    let s = String::deserialize(d)?;
    Secret::new(s).ok_or_else(|| serde::de::Error::custom("token is empty"))
}

/// The deploy `source` a GitHub deployment is stored with: `github:OWNER/REPO#ID`.
pub fn source_for(full_name: &str, deployment_id: u64) -> String {
    format!("github:{full_name}#{deployment_id}")
}

/// The repository and deployment id of a deploy stored by [`source_for`].
pub fn parse_source(source: &str) -> Option<(&str, u64)> {
    let rest = source.strip_prefix("github:")?;
    let (repo, id) = rest.rsplit_once('#')?;
    let (owner, name) = repo.split_once('/')?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (valid(owner) && valid(name)).then_some(())?;
    Some((repo, id.parse().ok()?))
}

/// The status body for a verdict; `None` for verdicts that post nothing.
pub fn status_body(
    verdict: VerdictKind,
    reason: &str,
    incident_url: Option<&str>,
    deploy_url: &str,
) -> Option<Value> {
    // GitHub caps the description at 140 characters.
    let short: String = reason.chars().take(137).collect();
    let description = if short.len() < reason.len() {
        format!("{short}...")
    } else {
        short
    };
    match verdict {
        VerdictKind::Regression => Some(json!({
            "state": "failure",
            "log_url": incident_url.unwrap_or(deploy_url),
            "description": description,
            "auto_inactive": false,
        })),
        VerdictKind::Healthy => Some(json!({
            "state": "success",
            "log_url": deploy_url,
            "description": description,
            "auto_inactive": false,
        })),
        VerdictKind::Inconclusive => None,
    }
}

/// Posts one deployment status.
///
/// # Errors
/// A message with GitHub's status and body when the call fails.
pub async fn post_status(
    http: &reqwest::Client,
    cfg: &GithubStatusConfig,
    repo: &str,
    deployment_id: u64,
    body: &Value,
) -> Result<(), String> {
    let url = format!(
        "{}/repos/{repo}/deployments/{deployment_id}/statuses",
        cfg.api_url.trim_end_matches('/')
    );
    let token = String::from_utf8_lossy(cfg.token.expose()).into_owned();
    let resp = http
        .post(&url)
        .bearer_auth(token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header(
            "User-Agent",
            concat!("watchdog/", env!("CARGO_PKG_VERSION")),
        )
        .json(body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(format!(
        "POST {url}: GitHub answered {status}: {}",
        text.chars().take(300).collect::<String>()
    ))
}

/// Called once per newly recorded verdict: posts its status in the background when the
/// deploy came from GitHub and `[github_status]` is configured.
pub fn on_verdict(state: &AppState, rec: &RecordedVerdict) {
    let Some(cfg) = state.config.github_status.clone() else {
        return;
    };
    let Some((repo, id)) = parse_source(&rec.deploy.source) else {
        return;
    };
    let Some(v) = rec.deploy.verdict.as_ref() else {
        return;
    };
    let base = state.config.public_url.trim_end_matches('/');
    let incident_url = rec
        .incident
        .as_ref()
        .map(|i| format!("{base}/incidents/{}", i.id));
    let deploy_url = format!("{base}/deploys/{}", rec.deploy.id);
    let Some(body) = status_body(v.verdict, &v.reason, incident_url.as_deref(), &deploy_url) else {
        return;
    };
    let http = state.http.clone();
    let repo = repo.to_string();
    tokio::spawn(async move {
        // Logged here and nowhere else: a status GitHub refused must not hold up verdicts.
        match post_status(&http, &cfg, &repo, id, &body).await {
            Ok(()) => tracing::info!(repo, deployment_id = id, "posted GitHub deployment status"),
            Err(e) => tracing::warn!(error = %e, "GitHub deployment status failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_and_refuse_odd_names() {
        let s = source_for("octo-org/checkout", 42);
        assert_eq!(parse_source(&s), Some(("octo-org/checkout", 42)));
        assert_eq!(parse_source("github"), None);
        assert_eq!(parse_source("github:octo/../x#1"), None);
        assert_eq!(parse_source("github:octo/x#notanumber"), None);
    }

    #[test]
    fn inconclusive_posts_nothing_and_descriptions_fit() {
        assert!(status_body(VerdictKind::Inconclusive, "x", None, "u").is_none());
        let long = "a".repeat(300);
        let b = status_body(VerdictKind::Regression, &long, Some("i"), "u").unwrap();
        assert_eq!(b["description"].as_str().unwrap().chars().count(), 140);
        assert_eq!(b["log_url"], "i");
    }
}
