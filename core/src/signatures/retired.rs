//! Templates the miner evicted, kept so that a template keeps its id after eviction.
//!
//! The miner keeps at most `max_templates` live clusters and evicts the least recently
//! used ones beyond that. Without this list, the next line of an evicted template starts
//! a fresh cluster whose id is the hash of *that* line's masked text: the same id only
//! when the template's first line had no word variable. `Invalid user alice from <*>`,
//! evicted and met again as `Invalid user carol from <*>`, would come back under a new
//! id, and the engine would report it as a "New" signature after a deploy: the false
//! alarm a deploy check must not raise. So an evicted cluster is retired here, whole
//! (id, template, first sighting, count); a line that matches no live cluster is compared
//! with the retired ones of its branch by the same similarity rule, and a match brings the
//! retired cluster back with its id and first sighting.
//!
//! The list is bounded too (at most as many templates as the live set, oldest retirement
//! forgotten first), so memory stays fixed; only a template evicted *and* pushed out of
//! this list by as many newer retirements loses its id, and the server's persisted
//! templates (`log_templates`) still give it back at the next start.

use std::collections::VecDeque;

use super::miner::Cluster;
use crate::hash::FnvMap;

/// Retired clusters by branch, with their retirement order for the bound.
#[derive(Debug, Default)]
pub(super) struct Retired {
    by_branch: FnvMap<u64, Vec<Cluster>>,
    /// Id → (branch, retirement number) of every retired cluster.
    ids: FnvMap<u64, (u64, u64)>,
    /// (id, retirement number) in retirement order; entries whose number no longer
    /// matches `ids` were revived and are skipped.
    order: VecDeque<(u64, u64)>,
    next: u64,
    cap: usize,
    /// Most retired clusters of one branch (the miner's `max_branch`), so that the
    /// search on a new line's branch stays as bounded as the live one.
    branch_cap: usize,
}

impl Retired {
    /// An empty list holding at most `cap` clusters, `branch_cap` per branch.
    pub(super) fn new(cap: usize, branch_cap: usize) -> Self {
        Retired {
            cap: cap.max(1),
            branch_cap: branch_cap.max(1),
            ..Retired::default()
        }
    }

    /// Number of retired clusters.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether `id` is retired.
    pub(super) fn contains(&self, id: u64) -> bool {
        self.ids.contains_key(&id)
    }

    /// The retired cluster with `id`.
    pub(super) fn get(&self, id: u64) -> Option<&Cluster> {
        let &(branch, _) = self.ids.get(&id)?;
        self.by_branch.get(&branch)?.iter().find(|c| c.id.0 == id)
    }

    /// The retired cluster with `id`, to update.
    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut Cluster> {
        let &(branch, _) = self.ids.get(&id)?;
        self.by_branch
            .get_mut(&branch)?
            .iter_mut()
            .find(|c| c.id.0 == id)
    }

    /// Keeps an evicted cluster, forgetting the oldest retirement when full.
    pub(super) fn retire(&mut self, cluster: Cluster) {
        while self.ids.len() >= self.cap {
            let Some((id, number)) = self.order.pop_front() else {
                break;
            };
            if self.ids.get(&id).is_some_and(|&(_, n)| n == number) {
                self.take_id(id);
            }
        }
        let number = self.next;
        self.next += 1;
        self.ids.insert(cluster.id.0, (cluster.branch, number));
        self.order.push_back((cluster.id.0, number));
        // Revived clusters leave stale entries in `order`; drop them before they
        // outnumber the live ones, so the queue stays within twice the cap.
        if self.order.len() > 2 * self.cap {
            let ids = &self.ids;
            self.order
                .retain(|(id, n)| ids.get(id).is_some_and(|&(_, m)| m == *n));
        }
        let members = self.by_branch.entry(cluster.branch).or_default();
        if members.len() >= self.branch_cap {
            // Members are in retirement order: the first is the oldest.
            let oldest = members.remove(0);
            self.ids.remove(&oldest.id.0);
        }
        members.push(cluster);
    }

    /// The retired clusters of `branch`.
    pub(super) fn branch(&self, branch: u64) -> &[Cluster] {
        self.by_branch.get(&branch).map_or(&[], Vec::as_slice)
    }

    /// Takes the `index`-th retired cluster of `branch` out of the list.
    pub(super) fn revive(&mut self, branch: u64, index: usize) -> Cluster {
        let members = self
            .by_branch
            .get_mut(&branch)
            .expect("revived branch has retired clusters");
        // `remove`, not `swap_remove`: members stay in retirement order.
        let cluster = members.remove(index);
        if members.is_empty() {
            self.by_branch.remove(&branch);
        }
        self.ids.remove(&cluster.id.0);
        cluster
    }

    fn take_id(&mut self, id: u64) {
        let Some((branch, _)) = self.ids.remove(&id) else {
            return;
        };
        if let Some(members) = self.by_branch.get_mut(&branch) {
            members.retain(|c| c.id.0 != id);
            if members.is_empty() {
                self.by_branch.remove(&branch);
            }
        }
    }
}
