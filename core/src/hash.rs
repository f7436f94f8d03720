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

/// A deterministic [`BuildHasher`] for the core's maps (the miner's, the engine's): a
/// folded wide multiply per sixteen bytes of the key, with a final avalanche so that keys which are already hashes
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

/// One 64 × 64 → 128-bit multiply, folded to 64 bits (the wyhash round): every bit of
/// both words reaches the middle bits of the product.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Two odd constants with mixed bits (from wyhash), xored into the words so that a zero
/// word does not zero the product.
const K1: u64 = 0xa076_1d64_78bd_642f;
const K2: u64 = 0xe703_7ed1_a0b4_28db;

#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Map keys only (ids use `fnv1a`). Sixteen bytes per round, one wide multiply
        // each: the masked lines the exact-match cache is keyed by are hashed at about
        // twice the speed of a multiply-xor round per eight bytes, whose rounds form one
        // long dependency chain.
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(16);
        for c in &mut chunks {
            h = fold_mul(word(&c[..8]) ^ K1, word(&c[8..]) ^ h);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let (a, b) = rest.split_at(rest.len().min(8));
            h = fold_mul(word(a) ^ K1, word(b) ^ h ^ K2 ^ rest.len() as u64);
        }
        self.0 = h;
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

/// A hash of a byte string from its length and three of its words (the first, the
/// middle and the last eight bytes), for the slot of a table that compares the whole
/// key anyway, such as the miner's recent-message memo: two wide multiplies whatever
/// the length. Keys that differ only elsewhere share a slot, which costs such a table a miss,
/// never a wrong answer.
pub(crate) fn sampled_hash(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let (first, middle, last) = if n <= 8 {
        (word(bytes), 0, 0)
    } else {
        let mid = n / 2 - 4;
        (
            word(&bytes[..8]),
            word(&bytes[mid..mid + 8]),
            word(&bytes[n - 8..]),
        )
    };
    let h = fold_mul(first ^ K1, middle ^ K2 ^ n as u64);
    // No finaliser: the folded product already carries every input bit into its low
    // bits (through the high half), which is all a slot index needs, and the hash is
    // on the path of every line the miner sees.
    fold_mul(last ^ K1, h ^ K2)
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
