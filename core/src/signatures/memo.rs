//! The table behind the miner's two memos (the recent-message memo in `miner.rs`, the
//! skeleton memo in `skeleton.rs`): a fixed number of sets of a few entries, each entry
//! a key (the bytes of a message or of its skeleton, and a level byte) and the cluster
//! a line with that key was placed in.
//!
//! A hash of the key picks a set; a hit is a compare per entry of the set, and a store
//! replaces the entry of the set used least recently. An entry names its cluster by
//! slot and generation, so an entry whose slot has been freed since (by eviction) is
//! recognised by the caller's test and not used. A memo changes no result: an entry is
//! only a shorter way to the cluster that masking the line would find.

/// One entry: a key and the cluster it was placed in.
#[derive(Debug, Default)]
struct Entry {
    hash: u64,
    level: u8,
    key: Vec<u8>,
    slot: u32,
    generation: u32,
    /// The miner's tick when the entry was last stored or hit: the entry of a set with
    /// the oldest one is the one replaced.
    used: u64,
}

/// `SETS` sets (a power of two) of `WAYS` entries. No entry is allocated before the
/// first store, and none after the table has grown (a key's buffer is reused).
#[derive(Debug, Default)]
pub(super) struct Memo<const SETS: usize, const WAYS: usize> {
    entries: Vec<Entry>,
}

impl<const SETS: usize, const WAYS: usize> Memo<SETS, WAYS> {
    /// The entries of the set of `hash`.
    fn set(hash: u64) -> std::ops::Range<usize> {
        let first = ((hash as usize) & (SETS - 1)) * WAYS;
        first..first + WAYS
    }

    /// The slot stored for `key` (at level byte `level`, with `hash` its hash), if any,
    /// that `live` accepts given the slot and the generation stored with it.
    #[inline]
    pub(super) fn find(
        &mut self,
        hash: u64,
        level: u8,
        key: &[u8],
        tick: u64,
        live: impl Fn(u32, u32) -> bool,
    ) -> Option<u32> {
        let ways = self.entries.get_mut(Self::set(hash))?;
        for e in ways {
            if e.hash == hash && e.level == level && e.key == key && live(e.slot, e.generation) {
                e.used = tick;
                return Some(e.slot);
            }
        }
        None
    }

    /// Stores `key` for the cluster in `slot` (of `generation`), in place of the entry
    /// of its set used least recently.
    pub(super) fn store(
        &mut self,
        hash: u64,
        level: u8,
        key: &[u8],
        (slot, generation): (u32, u32),
        tick: u64,
    ) {
        if self.entries.is_empty() {
            self.entries.resize_with(SETS * WAYS, Entry::default);
        }
        let e = self.entries[Self::set(hash)]
            .iter_mut()
            .min_by_key(|e| e.used)
            .expect("a set has entries");
        e.hash = hash;
        e.level = level;
        e.key.clear();
        e.key.extend_from_slice(key);
        e.slot = slot;
        e.generation = generation;
        e.used = tick;
    }

    /// Number of entries allocated (for the memory bounds' tests).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.entries.len()
    }
}
