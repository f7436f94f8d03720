//! Sequential change detection.
