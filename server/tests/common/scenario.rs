//! A scenario served live on loopback `/metrics` (`simulate --serve-metrics`), for the
//! tests that run it through a real Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use watchdog::commands::simulate_serve::{router, Replay};
use watchdog_core::scenarios::{generate, ScenarioParams};
use watchdog_core::Timestamp;

/// The wall clock in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A scenario being served.
pub struct Target {
    /// Where its `/metrics` is.
    pub addr: SocketAddr,
    /// When, on the wall clock, its deploy happens.
    pub deploy_wall_ms: i64,
}

/// The `error_spike` scenario, 20 minutes of baseline and 10 after the deploy, played
/// from now `speed` times faster than real time on a free loopback port.
pub async fn error_spike(speed: f64) -> Target {
    let params = ScenarioParams {
        baseline_mins: 20,
        after_mins: 10,
        ..ScenarioParams::default()
    };
    let data = generate("error_spike", &params).unwrap();
    let replay = Arc::new(Replay::new(&data, speed, now_ms()).unwrap());
    let deploy_wall_ms = replay.wall_ms(data.deploys[0].timestamp);
    let addr = super::loopback::serve(router(replay)).await;
    Target {
        addr,
        deploy_wall_ms,
    }
}

/// Waits until the deploy happens on the wall clock, then announces it (`v1.4.2` of
/// `checkout` in `production`) to the server at `base`, which must accept it.
pub async fn announce_deploy(base: &str, token: &str, deploy_wall_ms: i64) {
    let wait = (deploy_wall_ms - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let deploy = json!([{"timestamp": Timestamp(deploy_wall_ms), "deploy_id": "v1.4.2", "service": "checkout", "environment": "production"}]);
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/deploys"))
        .bearer_auth(token)
        .body(deploy.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
