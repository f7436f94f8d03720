//! Prometheus pull (in progress).

use serde::Deserialize;

/// `[prometheus]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API.
    pub url: String,
}
