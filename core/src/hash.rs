//! Hashing that gives the same answer on every run and platform, for every part of the
//! core: signature ids, the miner's and the engine's maps, scenario seeds.
//!
//! Signature ids are persisted and compared across processes, so they cannot come from
//! `std`'s randomly keyed SipHash. FNV-1a (64-bit) is tiny, has no state besides the
//! running value, is byte-order independent and spreads short ASCII strings well enough
//! for ids and hash-map keys; it is not meant to resist adversarial collisions.

use std::hash::{BuildHasher, Hasher};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`, starting from `seed` (use [`fnv1a`] for the standard offset).
pub(crate) fn fnv1a_from(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Standard FNV-1a 64 of `bytes`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV_OFFSET, bytes)
}

/// A deterministic [`BuildHasher`] for the core's maps (the miner's, the engine's): a multiply-xor round per
/// eight bytes of the key, with a final avalanche so that keys which are already hashes
/// (u64) still spread over the buckets.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FnvBuild;

/// Hasher state for [`FnvBuild`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct FnvHasher(u64);

impl BuildHasher for FnvBuild {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(FNV_OFFSET)
    }
}

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Map keys only (ids use `fnv1a`): eight bytes per round is several times faster
        // than FNV's byte rounds on the masked lines the exact-match cache is keyed by.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.write_u64(word);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // One multiply-xor round per word instead of eight byte rounds.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        // splitmix64 finaliser: cheap and mixes every input bit into the low bits that
        // hashbrown uses to pick a bucket.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The [`FnvBuild`] hash of `bytes` (eight bytes per round, then the finaliser): for keys
/// of tables the core manages itself, such as the miner's recent-message memo.
pub(crate) fn fast_hash(bytes: &[u8]) -> u64 {
    let mut h = FnvBuild.build_hasher();
    h.write(bytes);
    h.finish()
}

/// A `HashMap` with the deterministic hasher.
pub(crate) type FnvMap<K, V> = std::collections::HashMap<K, V, FnvBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
