//! The series ids a store has resolved lately, shared by both backends: samples are stored
//! under the id of their (service, environment) row in `series`, and a batch of 5,000
//! samples names a few thousand pairs, so resolving each by query (or joining the batch
//! with `series` in the insert) would cost more than storing the samples.
//!
//! # When a cached id may be wrong
//! Series rows are only ever deleted by retention, once they hold no samples, and that
//! deletion runs under the same lock as sample inserts. A cache is therefore right as
//! long as no deletion happened since its ids were resolved:
//! - one process (SQLite) calls [`SeriesIds::forget`] in the deleting transaction;
//! - several processes sharing PostgreSQL cannot see each other's caches, so the deleting
//!   transaction also counts up `series_state.generation`, and an insert reads it under
//!   the insert lock and empties its cache when it moved ([`SeriesIds::at_generation`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::NewRecord;

/// Label pairs remembered at most; the map is emptied when it would grow past this (the
/// `series` table keeps every pair, so a forgotten one costs one query the next time).
/// Churning names (pods) would otherwise grow it for as long as the server runs.
const MAX_CACHED_SERIES: usize = 100_000;

/// The series id of each label pair seen lately, by environment and then service: two
/// levels so that a lookup borrows the row's strings instead of building a key.
#[derive(Debug, Default, Clone)]
pub(super) struct SeriesIds(Arc<Mutex<Known>>);

#[derive(Debug, Default)]
struct Known {
    by_env: HashMap<String, HashMap<String, i64>>,
    len: usize,
    /// Counts [`SeriesIds::forget`]s (or is the store's generation, see
    /// [`SeriesIds::at_generation`]): pairs resolved before a change are not cached
    /// after it.
    generation: i64,
}

/// The `series` rows a transaction resolved by query, to [`SeriesIds::remember`] once it
/// commits.
#[derive(Debug)]
pub(super) struct NewSeries {
    pairs: Vec<((String, String), i64)>,
    generation: i64,
}

impl NewSeries {
    /// Adds a pair resolved by query.
    pub(super) fn add(&mut self, service: &str, environment: &str, id: i64) {
        self.pairs
            .push(((service.to_string(), environment.to_string()), id));
    }
}

/// What the cache knew of a batch.
pub(super) struct Lookup<'a> {
    /// The id of every row, 0 where it is missing.
    pub ids: Vec<i64>,
    /// The pairs the cache does not know, with the rows that name them.
    pub missing: HashMap<(&'a str, &'a str), Vec<usize>>,
    /// Where to record the pairs resolved by query.
    pub found: NewSeries,
}

impl SeriesIds {
    /// The ids of the rows' pairs that the cache knows.
    pub(super) fn lookup<'a>(&self, rows: &'a [NewRecord]) -> Lookup<'a> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut missing: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (i, r) in rows.iter().enumerate() {
            match known
                .by_env
                .get(r.environment.as_str())
                .and_then(|m| m.get(r.service.as_str()))
            {
                Some(&id) => ids.push(id),
                None => {
                    ids.push(0);
                    missing
                        .entry((r.service.as_str(), r.environment.as_str()))
                        .or_default()
                        .push(i);
                }
            }
        }
        Lookup {
            ids,
            missing,
            found: NewSeries {
                pairs: Vec::new(),
                generation: known.generation,
            },
        }
    }

    /// Caches pairs whose rows are committed, unless series rows were deleted since they
    /// were resolved (retention may have deleted theirs).
    pub(super) fn remember(&self, found: NewSeries) {
        let NewSeries {
            pairs: found,
            generation,
        } = found;
        if found.is_empty() {
            return;
        }
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.generation != generation {
            return;
        }
        if known.len + found.len() > MAX_CACHED_SERIES {
            *known = Known {
                generation,
                ..Known::default()
            };
        }
        for ((service, environment), id) in found {
            if known
                .by_env
                .entry(environment)
                .or_default()
                .insert(service, id)
                .is_none()
            {
                known.len += 1;
            }
        }
    }

    /// Forgets every pair: called while series rows are being deleted, under the insert
    /// lock, so no insert resolves a pair in between.
    pub(super) fn forget(&self) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *known = Known {
            generation: known.generation.wrapping_add(1),
            ..Known::default()
        };
    }

    /// Takes the store's series generation, read under the insert lock: when it is not the
    /// one the cache was filled at, some process deleted series rows since, and every pair
    /// is forgotten.
    pub(super) fn at_generation(&self, generation: i64) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.generation != generation {
            *known = Known {
                generation,
                ..Known::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str) -> NewRecord {
        NewRecord {
            ts_ms: 0,
            service: service.to_string(),
            environment: "prod".to_string(),
            body: String::new(),
        }
    }

    #[test]
    fn a_moved_generation_forgets_and_a_stale_resolution_is_not_cached() {
        let cache = SeriesIds::default();
        let rows = [row("a"), row("b"), row("a")];
        let mut l = cache.lookup(&rows);
        assert_eq!(l.ids, [0, 0, 0]);
        assert_eq!(l.missing[&("a", "prod")], [0, 2]);
        l.found.add("a", "prod", 7);
        l.found.add("b", "prod", 8);
        cache.remember(l.found);
        assert_eq!(cache.lookup(&rows).ids, [7, 8, 7]);
        // the same generation keeps the pairs, another one drops them
        cache.at_generation(0);
        assert_eq!(cache.lookup(&rows).ids, [7, 8, 7]);
        cache.at_generation(3);
        assert_eq!(cache.lookup(&rows).ids, [0, 0, 0]);
        // pairs resolved before a deletion are not remembered after it
        let mut l = cache.lookup(&rows);
        l.found.add("a", "prod", 9);
        cache.forget();
        cache.remember(l.found);
        assert_eq!(cache.lookup(&rows).ids, [0, 0, 0]);
    }
}
