//! Webhook payloads of deploy tools, turned into deploy records. Pure functions: the
//! routes verify the sender and store the result.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use watchdog_core::{Deploy, Timestamp};

/// What a webhook delivery means.
#[derive(Debug, PartialEq)]
pub enum HookOutcome {
    /// A successful deployment.
    Deploy(Deploy),
    /// Something else (pending, failed, a ping); the reason is returned to the sender.
    Ignored(String),
}

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
pub fn verify_github_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn time_at(v: &Value, paths: &[&[&str]], now_ms: i64) -> Timestamp {
    paths
        .iter()
        .filter_map(|p| str_at(v, p))
        .find_map(parse_time)
        .unwrap_or(Timestamp(now_ms))
}

/// RFC 3339, or GitLab's `2021-04-28 21:50:00 +0200` / `2021-04-28 19:50:00 UTC`.
fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = Timestamp::parse(s) {
        return Some(t);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z") {
        return Some(Timestamp(dt.timestamp_millis()));
    }
    let without_utc = s.strip_suffix(" UTC")?;
    Timestamp::parse(without_utc).ok()
}

/// A GitHub `deployment_status` event: `success` becomes a deploy of the repository (or
/// `deployment.payload.service`) to the status's environment, identified by
/// `deployment.payload.deploy_id`, else the deployment's ref when it is a tag-like
/// version, else the commit sha.
///
/// # Errors
/// A message naming the missing field.
pub fn github_deploy(v: &Value, now_ms: i64) -> Result<HookOutcome, String> {
    let state =
        str_at(v, &["deployment_status", "state"]).ok_or("deployment_status.state is missing")?;
    if state != "success" {
        return Ok(HookOutcome::Ignored(format!("deployment state {state:?}")));
    }
    let dep = v.get("deployment").ok_or("deployment is missing")?;
    let deploy_id = str_at(dep, &["payload", "deploy_id"])
        .or_else(|| str_at(dep, &["ref"]).filter(|r| looks_like_version(r)))
        .or_else(|| str_at(dep, &["sha"]))
        .ok_or("deployment.sha is missing")?;
    let service = str_at(dep, &["payload", "service"])
        .or_else(|| str_at(v, &["repository", "name"]))
        .ok_or("repository.name is missing")?;
    let environment = str_at(v, &["deployment_status", "environment"])
        .or_else(|| str_at(dep, &["environment"]))
        .unwrap_or("");
    Ok(HookOutcome::Deploy(Deploy {
        timestamp: time_at(
            v,
            &[
                &["deployment_status", "updated_at"],
                &["deployment_status", "created_at"],
            ],
            now_ms,
        ),
        deploy_id: deploy_id.to_string(),
        service: service.to_string(),
        environment: environment.to_string(),
    }))
}

fn looks_like_version(r: &str) -> bool {
    let r = r.strip_prefix("refs/tags/").unwrap_or(r);
    r.starts_with('v') && r[1..].starts_with(|c: char| c.is_ascii_digit())
}

/// A GitLab deployment hook (`object_kind: deployment`): `success` becomes a deploy of
/// the project to `environment`, identified by the short sha.
///
/// # Errors
/// A message naming the missing field.
pub fn gitlab_deploy(v: &Value, now_ms: i64) -> Result<HookOutcome, String> {
    let kind = str_at(v, &["object_kind"]).unwrap_or("");
    if kind != "deployment" {
        return Ok(HookOutcome::Ignored(format!(
            "object_kind {kind:?} is not deployment"
        )));
    }
    let status = str_at(v, &["status"]).ok_or("status is missing")?;
    if status != "success" {
        return Ok(HookOutcome::Ignored(format!(
            "deployment status {status:?}"
        )));
    }
    let deploy_id = str_at(v, &["short_sha"])
        .or_else(|| str_at(v, &["sha"]))
        .ok_or("short_sha is missing")?;
    let service = str_at(v, &["project", "name"])
        .or_else(|| str_at(v, &["project", "path_with_namespace"]))
        .ok_or("project.name is missing")?;
    let environment = str_at(v, &["environment"]).unwrap_or("");
    Ok(HookOutcome::Deploy(Deploy {
        timestamp: time_at(v, &[&["status_changed_at"]], now_ms),
        deploy_id: deploy_id.to_string(),
        service: service.to_string(),
        environment: environment.to_string(),
    }))
}

/// The body of WatchDog's Argo CD Notifications template (docs/server.md): a deploy
/// record; a missing or empty timestamp means now, and a `phase` other than `Succeeded`
/// is ignored.
///
/// # Errors
/// A message naming the missing field.
pub fn argocd_deploy(v: &Value, now_ms: i64) -> Result<HookOutcome, String> {
    if let Some(phase) = str_at(v, &["phase"]) {
        if phase != "Succeeded" {
            return Ok(HookOutcome::Ignored(format!("sync phase {phase:?}")));
        }
    }
    let deploy_id = str_at(v, &["deploy_id"])
        .or_else(|| str_at(v, &["revision"]))
        .ok_or("deploy_id is missing")?;
    let service = str_at(v, &["service"])
        .or_else(|| str_at(v, &["app"]))
        .ok_or("service is missing")?;
    Ok(HookOutcome::Deploy(Deploy {
        timestamp: time_at(v, &[&["timestamp"]], now_ms),
        deploy_id: deploy_id.to_string(),
        service: service.to_string(),
        environment: str_at(v, &["environment"]).unwrap_or("").to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn githubs_published_example_verifies() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_github_signature(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            sig
        ));
        assert!(!verify_github_signature(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            sig
        ));
        assert!(!verify_github_signature(b"wrong", b"Hello, World!", sig));
        assert!(!verify_github_signature(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "sha1=757107ea"
        ));
    }

    #[test]
    fn github_success_is_a_deploy_and_pending_is_ignored() {
        let mut v = json!({
            "deployment_status": {"state": "success", "environment": "production", "updated_at": "2026-03-30T19:30:00Z"},
            "deployment": {"sha": "abc123", "ref": "v1.4.2", "environment": "production"},
            "repository": {"name": "checkout"}
        });
        let HookOutcome::Deploy(d) = github_deploy(&v, 0).unwrap() else {
            panic!("not a deploy")
        };
        assert_eq!(
            (
                d.deploy_id.as_str(),
                d.service.as_str(),
                d.environment.as_str()
            ),
            ("v1.4.2", "checkout", "production")
        );
        assert_eq!(d.timestamp.to_rfc3339(), "2026-03-30T19:30:00Z");
        v["deployment_status"]["state"] = json!("pending");
        assert!(matches!(
            github_deploy(&v, 0).unwrap(),
            HookOutcome::Ignored(_)
        ));
    }

    #[test]
    fn gitlab_time_format_parses() {
        let v = json!({
            "object_kind": "deployment", "status": "success", "short_sha": "279484c0",
            "environment": "staging", "project": {"name": "checkout"},
            "status_changed_at": "2021-04-28 21:50:00 +0200"
        });
        let HookOutcome::Deploy(d) = gitlab_deploy(&v, 0).unwrap() else {
            panic!("not a deploy")
        };
        assert_eq!(d.timestamp.to_rfc3339(), "2021-04-28T19:50:00Z");
        assert_eq!(d.deploy_id, "279484c0");
    }
}
