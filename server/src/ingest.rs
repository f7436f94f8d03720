//! Adapters that turn outside formats into engine records: HTTP bodies, webhooks, files,
//! OTLP and Prometheus remote write.

pub mod accept;
pub mod body;
pub mod files;
pub mod histogram;
pub mod hooks;
pub mod limits;
pub mod metric_record;
pub mod otlp;
pub mod prometheus;
pub mod receivers;
pub mod remote_write;
pub mod versions;
