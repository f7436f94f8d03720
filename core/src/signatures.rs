//! Log signatures: a streaming template miner that turns each log message into a stable
//! signature id and a template with `<*>` for its variables, the parsing of raw log lines,
//! and the post-deploy evidence built from signature counts.
//!
//! ```
//! use watchdog_core::signatures::TemplateMiner;
//!
//! let mut miner = TemplateMiner::default();
//! let a = miner.add("Connection refused to 10.0.3.17:5432 (attempt 2)");
//! let b = miner.add("Connection refused to 10.0.9.201:5432 (attempt 5)");
//! assert_eq!(a.signature, b.signature);
//! assert_eq!(b.template, "Connection refused to <*>:<*> (attempt <*>)");
//! ```
//!
//! See `docs/signatures.md` for the design, the masking rules and measured figures.

mod evidence;
mod mask;
mod memo;
mod miner;
mod parse;
mod retired;
mod skeleton;

pub use evidence::{signature_evidence, LogHistory, MAX_EXAMPLE_BYTES, MIN_COUNT_AFTER};
pub use miner::{Match, MatchRef, MinerConfig, SignatureId, TemplateMiner, TemplateRecord};
pub use parse::{parse_log_line, parse_log_line_ref, ParsedLine, ParsedLineRef};
