//! The engine (placeholder).
use crate::{Config, DeployVerdict, Error};
/// Engine.
#[derive(Debug)]
pub struct Engine {
    _c: Config,
}
/// Stats.
#[derive(Debug)]
pub struct EngineStats;
/// Trace.
#[derive(Debug)]
pub struct MetricTrace;
impl Engine {
    /// New.
    ///
    /// # Errors
    /// Bad config.
    pub fn new(c: Config) -> Result<Self, Error> {
        c.validate()?;
        Ok(Engine { _c: c })
    }
    /// Ingest.
    ///
    /// # Errors
    /// Never yet.
    pub fn ingest_sample(&mut self, _s: &crate::Sample) -> Result<(), Error> {
        Ok(())
    }
    /// Ingest.
    ///
    /// # Errors
    /// Never yet.
    pub fn ingest_deploy(&mut self, _s: &crate::Deploy) -> Result<(), Error> {
        Ok(())
    }
    /// Finish.
    pub fn finish(&mut self) {}
    /// Take.
    pub fn take_verdicts(&mut self) -> Vec<DeployVerdict> {
        vec![]
    }
}
