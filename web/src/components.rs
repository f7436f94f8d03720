//! Reusable pieces of the pages.

pub mod canary;
pub mod chart;
pub mod download;
pub mod error;
pub mod verdict;
