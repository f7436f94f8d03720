//! One module per resource, each returning a `Router<AppState>`.

pub mod deploys;
pub mod events;
pub mod hooks;
pub mod incidents;
pub mod ingest;
pub mod openapi;
pub mod ops;
pub mod otlp;
pub mod remote_write;
pub mod rollouts;
pub mod traces;
