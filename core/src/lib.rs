#![doc = include_str!("../README.md")]

pub mod baseline;
pub mod canary;
pub mod config;
pub mod detector;
pub mod engine;
pub mod error;
pub mod explain;
pub mod export;
mod hash;
pub mod samples;
pub mod scenarios;
pub mod season;
pub mod signatures;
mod signatures_link;
pub mod stats;
pub mod time;
pub mod verdict;
mod watch;

pub use canary::{
    CanaryConfig, CanaryEvidence, CanaryMetric, CanaryOutcome, CanaryPoint, CanaryTest,
};
pub use config::{Config, Direction, MetricConfig, SignaturePolicy};
pub use engine::{
    Engine, EngineStats, LateAfterVerdict, MetricKey, MetricTrace, SeriesKey, TracePoint,
    WatchStatus,
};
pub use error::Error;
pub use samples::{Deploy, LogEvent, LogLevel, Sample};
pub use time::Timestamp;
pub use verdict::{
    CountEvidence, DeployVerdict, InconclusiveCause, MetricEvidence, MetricStatus, SignatureChange,
    SignatureEvidence, Summary, TestKind, VerdictKind, WatchEnd, WatchWindow,
};
