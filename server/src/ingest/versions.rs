//! Deploys seen from the data: when a service's version (OTLP `service.version`, or a
//! configured remote-write label) changes, the new version was deployed at the first
//! sample that carries it, unless a deploy event for that version already arrived.
//!
//! The rule, per service and environment:
//! - the first version ever seen is the running one, not a deploy (WatchDog cannot know
//!   when it started; its data is the baseline of the next deploy);
//! - a version that is neither the current one nor among the last [`REMEMBERED`]
//!   versions is a deploy at the earliest timestamp of the data that carries it;
//! - a version already stored as a deploy of that service and environment (announced by
//!   CI, a webhook or `watchdog notify`) is not announced again;
//! - while old and new instances run side by side (a rolling deploy), data of the old
//!   version is not a second deploy: it is among the remembered versions. A rollback to
//!   a remembered version is therefore not seen from the data; announce it.
//!
//! After a restart the tracker starts from the deploys in the store, so a version that
//! changed while WatchDog was down is a deploy at the first sample after the restart.

use std::collections::{HashMap, VecDeque};

use watchdog_core::{Deploy, Timestamp};

use crate::store::{DeployQuery, Store, StoreResult};

/// How many earlier versions per service count as known.
pub const REMEMBERED: usize = 16;

/// One sighting: this service and environment ran `version` at `ts_ms` (the earliest
/// timestamp among the request's data of that version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Version as reported.
    pub version: String,
    /// Earliest event time carrying it, in ms.
    pub ts_ms: i64,
}

/// Adds a sighting to a list, keeping only the earliest per version.
pub fn note(
    sightings: &mut Vec<Sighting>,
    service: &str,
    environment: &str,
    version: &str,
    ts_ms: i64,
) {
    if version.is_empty() {
        return;
    }
    match sightings
        .iter_mut()
        .find(|s| s.service == service && s.environment == environment && s.version == version)
    {
        Some(s) => s.ts_ms = s.ts_ms.min(ts_ms),
        None => sightings.push(Sighting {
            service: service.to_string(),
            environment: environment.to_string(),
            version: version.to_string(),
            ts_ms,
        }),
    }
}

#[derive(Debug, Default)]
struct Known {
    /// Most recent first.
    versions: VecDeque<String>,
}

impl Known {
    fn remember(&mut self, version: &str) {
        self.versions.retain(|v| v != version);
        self.versions.push_front(version.to_string());
        self.versions.truncate(REMEMBERED);
    }
}

/// The versions seen per service and environment.
#[derive(Debug, Default)]
pub struct VersionTracker {
    known: HashMap<(String, String), Known>,
}

impl VersionTracker {
    /// The deploys the sightings imply, in the order of the sightings (earliest first
    /// within one service). Reads the store the first time a service is seen and when a
    /// version is new, so that announced deploys are not repeated.
    ///
    /// # Errors
    /// A store failure.
    pub async fn deploys(
        &mut self,
        store: &dyn Store,
        mut sightings: Vec<Sighting>,
    ) -> StoreResult<Vec<Deploy>> {
        sightings.sort_by_key(|s| s.ts_ms);
        let mut out = Vec::new();
        for s in sightings {
            let k = (s.service.clone(), s.environment.clone());
            if !self.known.contains_key(&k) {
                let stored = stored_versions(store, &s.service, &s.environment).await?;
                let mut known = Known::default();
                for v in stored.iter().rev() {
                    known.remember(v);
                }
                if known.versions.is_empty() {
                    // First sight of the service: its running version, not a deploy.
                    known.remember(&s.version);
                }
                self.known.insert(k.clone(), known);
            }
            let known = self.known.get_mut(&k).expect("inserted above");
            // Current, or an old instance still reporting (left where it is, so the
            // newest version stays the current one).
            if known.versions.contains(&s.version) {
                continue;
            }
            let stored = stored_versions(store, &s.service, &s.environment).await?;
            known.remember(&s.version);
            if stored.contains(&s.version) {
                continue;
            }
            out.push(Deploy {
                timestamp: Timestamp(s.ts_ms),
                deploy_id: s.version,
                service: s.service,
                environment: s.environment,
            });
        }
        Ok(out)
    }
}

/// Deploy ids stored for a service and environment, newest first.
async fn stored_versions(
    store: &dyn Store,
    service: &str,
    environment: &str,
) -> StoreResult<Vec<String>> {
    let (rows, _) = store
        .list_deploys(&DeployQuery {
            service: Some(service.to_string()),
            environment: Some(environment.to_string()),
            verdict: None,
            limit: 200,
            offset: 0,
        })
        .await?;
    let mut rows = rows;
    rows.sort_by_key(|r| std::cmp::Reverse(r.deployed_at.millis()));
    Ok(rows.into_iter().map(|r| r.deploy_id).collect())
}
