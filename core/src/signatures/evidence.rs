//! Post-deploy log evidence: which signatures are new after a deploy, and which known
//! ones rose significantly against the baseline.
//!
//! # The test
//!
//! For one signature with `n_b` occurrences in the baseline window (length `T_b`) and
//! `n_a` after the deploy (length `T_a`), the question is whether the rate after is
//! higher than before. Conditioning on the total `n = n_b + n_a` removes the unknown
//! common rate: if the two rates were equal, each occurrence would fall after the deploy
//! independently with probability `p0 = T_a / (T_b + T_a)`, so `n_a ~ Binomial(n, p0)`
//! and the p-value is its upper tail `P(X >= n_a)`. This is exact at any count, which a
//! fixed ratio or a normal approximation is not: three occurrences of a line never seen
//! in a long baseline are strong evidence, three against a baseline of thousands are
//! nothing. A brand-new signature is the same test with `n_b = 0` (p-value `p0^n_a`).
//!
//! Every signature with at least [`MIN_COUNT_AFTER`] occurrences after the deploy is
//! tested; one-off lines are not. The p-values are compared with `alpha / m`
//! (Bonferroni over the `m` signatures tested), so the chance of reporting any signature
//! when no rate changed stays below `alpha`. A signature is `New` when neither the history
//! nor the miner (which remembers each template's first sighting) knows an occurrence of
//! it before the deploy, `Surging` otherwise. Results are ranked by
//! score `-log10(p)`, then by count after, then by id.

use std::collections::VecDeque;

use crate::samples::{LogEvent, LogLevel};
use crate::stats::ln_gamma;
use crate::time::Timestamp;
use crate::verdict::{SignatureChange, SignatureEvidence};

use super::hash::FnvMap;
use super::miner::{SignatureId, TemplateMiner};

/// Fewest occurrences after the deploy for a signature to be tested at all.
pub const MIN_COUNT_AFTER: u64 = 3;

/// Longest example message kept per event, in bytes (longer ones are cut at a character
/// boundary), so a history of `max_events` stays bounded in memory.
pub const MAX_EXAMPLE_BYTES: usize = 1024;

/// Shortest post-deploy window used when finding when a count became significant, in
/// milliseconds: log timestamps often have one-second resolution, so a burst "at" the
/// deploy instant is judged over at least one second.
const MIN_WINDOW_MS: i64 = 1000;

#[derive(Clone, Debug)]
struct Entry {
    at: Timestamp,
    signature: SignatureId,
    level: LogLevel,
    message: Box<str>,
}

/// The recent log events of one service in one environment, as signatures: what
/// [`signature_evidence`] counts. Holds at most `max_events` events, dropping the oldest
/// pushed first.
#[derive(Clone, Debug)]
pub struct LogHistory {
    max_events: usize,
    events: VecDeque<Entry>,
    /// Latest timestamp among dropped events: counts are complete only after it.
    dropped_until: Option<Timestamp>,
}

impl LogHistory {
    /// An empty history keeping at most `max_events` events (at least 1).
    pub fn new(max_events: usize) -> Self {
        LogHistory {
            max_events: max_events.max(1),
            events: VecDeque::new(),
            dropped_until: None,
        }
    }

    /// Mines `event`'s message with `miner` and records it; returns its signature.
    pub fn push(&mut self, miner: &mut TemplateMiner, event: &LogEvent) -> SignatureId {
        let signature = miner
            .add_event(event.level, &event.message, event.timestamp)
            .signature;
        if self.events.len() >= self.max_events {
            if let Some(old) = self.events.pop_front() {
                self.dropped_until = Some(self.dropped_until.map_or(old.at, |d| d.max(old.at)));
            }
        }
        let mut cut = event.message.len().min(MAX_EXAMPLE_BYTES);
        while !event.message.is_char_boundary(cut) {
            cut -= 1;
        }
        self.events.push_back(Entry {
            at: event.timestamp,
            signature,
            level: event.level,
            message: Box::from(&event.message[..cut]),
        });
        signature
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// No event held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The instant after which the history is complete (events at or before it may have
    /// been dropped); `None` while nothing was dropped.
    pub fn complete_after(&self) -> Option<Timestamp> {
        self.dropped_until
    }
}

#[derive(Debug, Default)]
struct Tally {
    before: u64,
    seen_before: bool,
    after: Vec<Timestamp>,
    level: Option<LogLevel>,
    first: Option<(Timestamp, usize)>,
}

/// Signatures new after the deploy, or significantly more frequent than in the baseline,
/// ranked strongest first (see the module docs for the test).
///
/// The baseline window is `[baseline_from, deployed_at)`, shortened to the part the
/// history still holds completely; the post-deploy window is `[deployed_at, until]`.
/// `alpha` is the family-wise false-alarm rate. Returns nothing when either window is
/// empty. Templates come from `miner` (the signature id when it evicted the template).
pub fn signature_evidence(
    history: &LogHistory,
    miner: &TemplateMiner,
    baseline_from: Timestamp,
    deployed_at: Timestamp,
    until: Timestamp,
    alpha: f64,
) -> Vec<SignatureEvidence> {
    let base_start = match history.dropped_until {
        Some(d) => baseline_from.max(Timestamp(d.0 + 1)),
        None => baseline_from,
    };
    let before_ms = deployed_at.0 - base_start.0;
    let after_ms = until.0 - deployed_at.0;
    if before_ms <= 0 || after_ms <= 0 || alpha.is_nan() || alpha <= 0.0 {
        return Vec::new();
    }
    let mut tallies: FnvMap<u64, Tally> = FnvMap::default();
    for (i, e) in history.events.iter().enumerate() {
        if e.at > until {
            continue;
        }
        let t = tallies.entry(e.signature.0).or_default();
        if e.at < deployed_at {
            t.seen_before = true;
            if e.at >= base_start {
                t.before += 1;
            }
        } else {
            t.after.push(e.at);
            t.level = Some(t.level.map_or(e.level, |l| l.max(e.level)));
            if t.first.is_none_or(|(at, _)| e.at < at) {
                t.first = Some((e.at, i));
            }
        }
    }
    let tested = tallies
        .values()
        .filter(|t| t.after.len() as u64 >= MIN_COUNT_AFTER)
        .count();
    if tested == 0 {
        return Vec::new();
    }
    let ln_threshold = alpha.ln() - (tested as f64).ln();
    let minutes = |ms: i64| ms as f64 / 60_000.0;
    let mut out = Vec::new();
    for (&id, tally) in &mut tallies {
        let n_after = tally.after.len() as u64;
        if n_after < MIN_COUNT_AFTER {
            continue;
        }
        let ln_p = ln_rate_rise_p(tally.before, n_after, before_ms, after_ms);
        if ln_p > ln_threshold {
            continue;
        }
        tally.after.sort_unstable();
        let significant_at = tally.after.iter().enumerate().find_map(|(k, &at)| {
            let window = (at.0 - deployed_at.0).max(MIN_WINDOW_MS).min(after_ms);
            let ln_p = ln_rate_rise_p(tally.before, k as u64 + 1, before_ms, window);
            (ln_p <= ln_threshold).then_some(at)
        });
        let (first_seen, index) = tally.first.expect("a tested signature occurred after");
        let signature = SignatureId(id);
        out.push(SignatureEvidence {
            signature: signature.to_string(),
            template: miner
                .template(signature)
                .map_or_else(|| signature.to_string(), str::to_string),
            // `New` means never seen before the deploy for this miner's service, not
            // merely absent from the (bounded) history: the miner remembers each
            // template's first sighting, restored across restarts by the server.
            change: if tally.seen_before
                || miner.first_seen(signature).is_some_and(|f| f < deployed_at)
            {
                SignatureChange::Surging
            } else {
                SignatureChange::New
            },
            level: tally.level.unwrap_or(LogLevel::Info),
            count_before: tally.before,
            count_after: n_after,
            rate_before_per_min: tally.before as f64 / minutes(before_ms),
            rate_after_per_min: n_after as f64 / minutes(after_ms),
            first_seen,
            example: history.events[index].message.to_string(),
            score: -ln_p / std::f64::consts::LN_10,
            significant_at,
        });
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.count_after.cmp(&a.count_after))
            .then(a.signature.cmp(&b.signature))
    });
    out
}

/// Natural log of the conditional binomial p-value for `after` occurrences in a window
/// of `after_ms` against `before` in `before_ms`.
fn ln_rate_rise_p(before: u64, after: u64, before_ms: i64, after_ms: i64) -> f64 {
    let p0 = after_ms as f64 / (before_ms + after_ms) as f64;
    ln_binomial_upper_tail(after, before + after, p0)
}

/// `ln P(X >= k)` for `X ~ Binomial(n, p)`, computed in log space so that tiny p-values
/// keep their size (a score of 400 is still 400, not infinity). When `k` is at or below
/// the mean the tail is at least about one half and is reported as 1 (log 0): such a count
/// is never evidence of a rise, and skipping the sum keeps the cost bounded.
pub(crate) fn ln_binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 0.0;
    }
    if k > n || p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let (nf, kf) = (n as f64, k as f64);
    if kf <= nf * p {
        return 0.0;
    }
    let (ln_p, ln_q) = (p.ln(), (-p).ln_1p());
    let ln_first = ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0)
        + kf * ln_p
        + (nf - kf) * ln_q;
    // Above the mean the terms only shrink: sum their ratios to the first one.
    let odds = p / (1.0 - p);
    let (mut sum, mut term, mut i) = (1.0f64, 1.0f64, k);
    while i < n {
        term *= (n - i) as f64 / (i + 1) as f64 * odds;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
        i += 1;
    }
    (ln_first + sum.ln()).min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::binomial_sf;

    #[test]
    fn log_tail_matches_the_direct_sum() {
        for &(k, n, p) in &[
            (3u64, 3u64, 0.25f64),
            (7, 20, 0.1),
            (40, 100, 0.3),
            (5, 5, 0.5),
        ] {
            let direct = binomial_sf(k, n, p).ln();
            let ours = ln_binomial_upper_tail(k, n, p);
            assert!(
                (direct - ours).abs() < 1e-9,
                "{k} {n} {p}: {direct} vs {ours}"
            );
        }
        // Far beyond f64's range, the log stays finite.
        let tiny = ln_binomial_upper_tail(2000, 2000, 0.01);
        assert!((tiny - 2000.0 * 0.01f64.ln()).abs() < 1e-6);
        assert_eq!(ln_binomial_upper_tail(2, 100, 0.5), 0.0);
    }
}
