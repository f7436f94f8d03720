//! One page per route.

pub mod deploy;
pub mod deploys;
pub mod incident;
pub mod incidents;
pub mod playground;
