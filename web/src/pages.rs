//! One page per route.

pub mod deploys;
pub mod incident;
pub mod incidents;
pub mod playground;
