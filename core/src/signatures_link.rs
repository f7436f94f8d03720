//! Bridges the engine and the log signature evidence (filled in when the miner lands).

use crate::config::Config;
use crate::samples::LogEvent;
use crate::verdict::DeployVerdict;
use crate::watch::Watch;

pub(crate) fn attach(
    _v: &mut DeployVerdict,
    _logs: &[LogEvent],
    _w: &Watch,
    _until_ms: i64,
    _c: &Config,
) {
}
