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
//!
//! Memory is bounded: at most `capacity` services and environments are held (the
//! engine's `limits.max_series` by default), the ones sighted least recently forgotten
//! first, and a version longer than `limits.max_label_bytes` is never held (the deploy
//! it implies is refused by the limits, with its reason). A forgotten service is read
//! back from the store when it is sighted again, like after a restart; only a service
//! that never had a deploy stored loses its running version then, and the version it
//! reports on its return is taken as running, not as a deploy.

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
    /// When it was last sighted, in the tracker's own count of sightings.
    touched: u64,
}

impl Known {
    fn remember(&mut self, version: &str) {
        self.versions.retain(|v| v != version);
        self.versions.push_front(version.to_string());
        self.versions.truncate(REMEMBERED);
    }
}

/// The versions seen per service and environment.
#[derive(Debug)]
pub struct VersionTracker {
    known: HashMap<(String, String), Known>,
    /// Most services and environments held.
    capacity: usize,
    /// Longest version held, in bytes.
    max_version_bytes: usize,
    /// Sightings so far (the clock of `Known::touched`).
    ticks: u64,
}

impl Default for VersionTracker {
    fn default() -> Self {
        let limits = crate::ingest::limits::Limits::default();
        VersionTracker::new(limits.max_series, limits.max_label_bytes)
    }
}

impl VersionTracker {
    /// A tracker holding at most `capacity` services and environments (at least one) and
    /// versions of at most `max_version_bytes`.
    pub fn new(capacity: usize, max_version_bytes: usize) -> VersionTracker {
        VersionTracker {
            known: HashMap::new(),
            capacity: capacity.max(1),
            max_version_bytes,
            ticks: 0,
        }
    }

    /// Services and environments held now.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Forgets the least recently sighted entries once there are more than `capacity`,
    /// down to nine tenths of it, so that the sort is paid once per many new services.
    fn bound(&mut self) {
        if self.known.len() <= self.capacity {
            return;
        }
        let keep = self.capacity - self.capacity / 10;
        let mut ages: Vec<u64> = self.known.values().map(|k| k.touched).collect();
        let cut = ages.len() - keep;
        let (_, &mut oldest_kept, _) = ages.select_nth_unstable(cut);
        self.known.retain(|_, k| k.touched >= oldest_kept);
    }

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
            if s.version.len() > self.max_version_bytes {
                // Refused downstream by the label limit; holding it would let one client
                // put megabytes per service in memory.
                out.push(Deploy {
                    timestamp: Timestamp(s.ts_ms),
                    deploy_id: s.version,
                    service: s.service,
                    environment: s.environment,
                });
                continue;
            }
            self.ticks += 1;
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
            known.touched = self.ticks;
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
        self.bound();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore};
    use crate::store::NewDeploy;

    fn seen(version: &str, ts_ms: i64) -> Vec<Sighting> {
        vec![Sighting {
            service: "checkout".into(),
            environment: "production".into(),
            version: version.into(),
            ts_ms,
        }]
    }

    async fn ids(
        tracker: &mut VersionTracker,
        store: &dyn Store,
        version: &str,
        ts_ms: i64,
    ) -> Vec<String> {
        let deploys = tracker.deploys(store, seen(version, ts_ms)).await.unwrap();
        let out = deploys.iter().map(|d| d.deploy_id.clone()).collect();
        let rows: Vec<NewDeploy> = deploys
            .into_iter()
            .map(|deploy| NewDeploy {
                deploy,
                source: "otlp".into(),
            })
            .collect();
        store.insert_deploys(&rows, ts_ms).await.unwrap();
        out
    }

    #[tokio::test]
    async fn the_rules_of_docs_otlp_md() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal)
            .await
            .unwrap();
        let mut t = VersionTracker::default();
        // The first version seen is the running one.
        assert!(ids(&mut t, &store, "v1", 1_000).await.is_empty());
        assert!(ids(&mut t, &store, "v1", 2_000).await.is_empty());
        // A new one is a deploy at its first sample.
        assert_eq!(ids(&mut t, &store, "v2", 3_000).await, ["v2"]);
        let (rows, _) = store
            .list_deploys(&DeployQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows[0].deployed_at, Timestamp(3_000));
        // Old instances still reporting v1, then v2 again: nothing.
        assert!(ids(&mut t, &store, "v1", 4_000).await.is_empty());
        assert!(ids(&mut t, &store, "v2", 5_000).await.is_empty());
        // A deploy announced before its data (by CI) is not announced again.
        let announced = NewDeploy {
            deploy: Deploy {
                timestamp: Timestamp(5_500),
                deploy_id: "v3".into(),
                service: "checkout".into(),
                environment: "production".into(),
            },
            source: "api".into(),
        };
        store.insert_deploys(&[announced], 5_500).await.unwrap();
        assert!(ids(&mut t, &store, "v3", 6_000).await.is_empty());
        // After a restart the stored deploys are known: v3 is running, v4 is new.
        let mut t = VersionTracker::default();
        assert!(ids(&mut t, &store, "v3", 7_000).await.is_empty());
        assert_eq!(ids(&mut t, &store, "v4", 8_000).await, ["v4"]);
        // Another environment has its own versions.
        let mut other = seen("v9", 9_000);
        other[0].environment = "staging".into();
        assert!(t.deploys(&store, other).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn memory_is_bounded_by_services_and_by_version_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal)
            .await
            .unwrap();
        let mut t = VersionTracker::new(100, 64);
        // A client putting pod names in `service`: ten times the capacity.
        for i in 0..1_000 {
            let mut s = seen("v1", i);
            s[0].service = format!("pod-{i}");
            assert!(t.deploys(&store, s).await.unwrap().is_empty());
            assert!(t.len() <= 100, "{} held after {i}", t.len());
        }
        // The service sighted most recently is still known: its new version is a deploy.
        let mut s = seen("v2", 2_000);
        s[0].service = "pod-999".into();
        assert_eq!(t.deploys(&store, s).await.unwrap().len(), 1);
        // A 1 MB version is not held (the label limit refuses the deploy it implies).
        let huge = "x".repeat(1 << 20);
        let mut s = seen(&huge, 3_000);
        s[0].service = "pod-999".into();
        let d = t.deploys(&store, s).await.unwrap();
        assert_eq!(d.len(), 1);
        assert!(t
            .known
            .values()
            .all(|k| k.versions.iter().all(|v| v.len() <= 64)));
    }
}
