//! The digit-skeleton memo: a line that differs from a recent one only in the values of
//! its numbers is placed without masking it.
//!
//! Most lines of a template differ from each other only in their numbers: counters,
//! ports, ids, durations, addresses (`Receiving block blk_-1608… src: /10.250.19.102:54106
//! …`). The recent-message memo in front of masking answers a message repeated byte for
//! byte; this one answers a message whose *skeleton* (the message with every run of
//! ASCII digits replaced by a marker for its length class) was seen recently. On the
//! Loghub samples it answers about four in five of the lines the recent-message memo
//! misses, in the first pass over a sample as much as in later ones.
//!
//! # Why it changes no result
//!
//! Masking looks at digits only through these facts: whether a token or run has one,
//! whether a token starts with one, whether a run is letters followed by one or two digits
//! (`en0`, `ssh2`: a name with a small index), and whether a token is a three-digit
//! number from 100 to 599 (an outcome code after `status`, `returned`, …). A run of digits
//! of one, two or four and more digits, or of three digits starting with 1–5 or not, is
//! one marker each, so two messages with the same skeleton get the same masking
//! decisions at every token and run. Where masking keeps a digit, the digits of the two
//! messages could still differ (`en0` and `en1`), so an entry is stored only for a line
//! whose masked text has no digit: then every digit of both messages was inside a part
//! masked to `<*>` (or dropped with a quoted phrase), every other byte is the same, and
//! the two masked texts are equal, so they belong to the same cluster. As in the
//! recent-message memo, an entry names the cluster by slot and generation, so a slot freed
//! since is recognised and the line is masked as usual.
//!
//! The markers are bytes that never occur in UTF-8 (0xF8–0xFC), so a skeleton cannot be
//! mistaken for the text of another message.
//!
//! # Size
//!
//! [`SETS`] sets of [`WAYS`] entries (the older one of a set replaced), each holding a
//! skeleton of at most [`MAX_BYTES`] bytes: at most 256 KiB. Small on purpose: the bench
//! repeats its 16,000 Loghub lines, which have about 1,600 distinct skeletons, and a memo
//! that held them all would answer later passes from the first one, which real logs do
//! not repeat; with 512 entries a pass over the samples is answered as often the first
//! time as the eighth.

use crate::hash::sampled_hash;

/// Sets of the memo (a power of two).
const SETS: usize = 256;
/// Entries per set.
const WAYS: usize = 2;
/// Longest message whose skeleton is kept (as for the recent-message memo).
pub(super) const MAX_BYTES: usize = 512;

/// Markers for a run of ASCII digits, by length class: one digit, two digits, three
/// digits starting with 1–5 (the shape of an outcome code), three other digits, four or
/// more. None of them occurs in UTF-8.
const ONE: u8 = 0xf8;
const TWO: u8 = 0xf9;
const CODE: u8 = 0xfa;
const THREE: u8 = 0xfb;
const MORE: u8 = 0xfc;

#[derive(Debug, Default)]
struct Entry {
    hash: u64,
    level: u8,
    skeleton: Vec<u8>,
    slot: u32,
    generation: u32,
    /// The miner's tick when the entry was last stored or hit.
    used: u64,
}

/// The memo, and the skeleton of the line being placed (between [`SkeletonMemo::find`]
/// and [`SkeletonMemo::store`]).
#[derive(Debug, Default)]
pub(super) struct SkeletonMemo {
    entries: Vec<Entry>,
    key: Vec<u8>,
    hash: u64,
    level: u8,
}

/// The skeleton of `message` into `out` (cleared first): every run of ASCII digits
/// replaced by the marker of its length class.
fn skeleton(message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(message.len());
    let mut i = 0;
    loop {
        // The bytes up to the next digit are copied as one slice.
        let text = find_run_end(&message[i..], false);
        let segment = &message[i..i + text];
        // Most pieces between numbers are a byte or two (`.` and `:` of an address):
        // pushed one at a time, they cost less than a call to copy them.
        if segment.len() <= 8 {
            segment.iter().for_each(|&c| out.push(c));
        } else {
            out.extend_from_slice(segment);
        }
        i += text;
        let Some(&first) = message.get(i) else {
            return;
        };
        let digits = find_run_end(&message[i..], true);
        i += digits;
        out.push(match digits {
            1 => ONE,
            2 => TWO,
            3 if (b'1'..=b'5').contains(&first) => CODE,
            3 => THREE,
            _ => MORE,
        });
    }
}

/// The length of the run at the start of `b` of bytes that are ASCII digits (`digits`)
/// or are not (`!digits`): eight bytes at a time, with a test that sets the high bit of
/// exactly the bytes from `0` to `9`.
#[inline]
fn find_run_end(b: &[u8], digits: bool) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Added to a byte under 0x80, these set its high bit exactly when it is at least
    // `0` (0x30), and at least one past `9` (0x3a); neither carries into the next byte.
    const FROM_0: u64 = 0x5050_5050_5050_5050;
    const PAST_9: u64 = 0x4646_4646_4646_4646;
    let mut j = 0;
    while let Some(chunk) = b.get(j..j + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let t = w & LOW7;
        let is_digit = (t + FROM_0) & !(t + PAST_9) & !w & HIGH;
        let ends = if digits { !is_digit & HIGH } else { is_digit };
        if ends != 0 {
            return j + (ends.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    j + b[j..]
        .iter()
        .position(|c| c.is_ascii_digit() != digits)
        .unwrap_or(b.len() - j)
}

impl SkeletonMemo {
    /// Computes the skeleton of `message` (at level byte `level`) and returns the
    /// `(slot, generation)` stored for it, if any, that `live` accepts; the skeleton is
    /// kept for a [`store`](Self::store) that follows.
    pub(super) fn find(
        &mut self,
        level: u8,
        message: &str,
        tick: u64,
        live: impl Fn(u32, u32) -> bool,
    ) -> Option<u32> {
        skeleton(message.as_bytes(), &mut self.key);
        self.level = level;
        self.hash = sampled_hash(&self.key) ^ u64::from(level);
        let set = ((self.hash as usize) & (SETS - 1)) * WAYS;
        let ways = self.entries.get_mut(set..set + WAYS)?;
        for e in ways {
            if e.hash == self.hash
                && e.level == level
                && e.skeleton == self.key
                && live(e.slot, e.generation)
            {
                e.used = tick;
                return Some(e.slot);
            }
        }
        None
    }

    /// Stores the skeleton of the last [`find`](Self::find) for the cluster in `slot`.
    /// The caller stores only a line whose masked text has no ASCII digit (see the
    /// module docs).
    pub(super) fn store(&mut self, slot: u32, generation: u32, tick: u64) {
        if self.entries.is_empty() {
            self.entries.resize_with(SETS * WAYS, Entry::default);
        }
        let set = ((self.hash as usize) & (SETS - 1)) * WAYS;
        let e = self.entries[set..set + WAYS]
            .iter_mut()
            .min_by_key(|e| e.used)
            .expect("a set has entries");
        e.hash = self.hash;
        e.level = self.level;
        e.skeleton.clear();
        e.skeleton.extend_from_slice(&self.key);
        e.slot = slot;
        e.generation = generation;
        e.used = tick;
    }

    /// Number of entries allocated (for the memory bound's test).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skel(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        skeleton(s.as_bytes(), &mut out);
        out
    }

    #[test]
    fn digit_runs_become_length_class_markers() {
        assert_eq!(skel("port 22 from 10.0.0.1"), skel("port 80 from 20.9.9.7"));
        assert_eq!(skel("took 1234ms"), skel("took 98765ms"));
        // The classes that masking tells apart stay apart.
        assert_ne!(skel("on en0"), skel("on en123"));
        assert_ne!(skel("on en1"), skel("on en12"));
        assert_ne!(skel("returned 503"), skel("returned 603"));
        assert_ne!(skel("returned 503"), skel("returned 5030"));
        assert_eq!(skel("returned 503"), skel("returned 404"));
        assert_eq!(
            skel("x\u{e9}9 a1b22c333d4444"),
            skel("x\u{e9}0 a7b00c100d9999")[..]
        );
        for (text, at) in [
            ("", 0),
            ("abc", 3),
            ("abcdefgh9", 8),
            ("abcdefghijk0", 11),
            ("0", 0),
        ] {
            assert_eq!(find_run_end(text.as_bytes(), false), at, "{text}");
        }
        for (text, at) in [("", 0), ("1x", 1), ("123456789", 9), ("1234567890123a", 13)] {
            assert_eq!(find_run_end(text.as_bytes(), true), at, "{text}");
        }
        for i in 0u8..=255 {
            let letters = [b'a', b'b', b'c', i, b'x', b'y', b'z', b'w', b'v'];
            let digits = [b'1', b'2', b'3', i, b'4', b'5', b'6', b'7', b'8'];
            let d = i.is_ascii_digit();
            assert_eq!(find_run_end(&letters, false), if d { 3 } else { 9 }, "{i}");
            assert_eq!(find_run_end(&digits, true), if d { 9 } else { 3 }, "{i}");
        }
        // No digits: the message itself.
        assert_eq!(skel("no digits here"), b"no digits here");
    }
}
