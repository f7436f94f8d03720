//! Adapters that turn outside formats into engine records: HTTP bodies, webhooks, files.

pub mod accept;
pub mod body;
pub mod files;
pub mod hooks;
pub mod limits;
pub mod metric_record;
pub mod prometheus;
