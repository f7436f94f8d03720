//! The digit-skeleton memo: a line that differs from a recent one only in the values of
//! its numbers is placed without masking it.
//!
//! Most lines of a template differ from each other only in their numbers: counters,
//! ports, ids, durations, addresses (`Receiving block blk_-1608… src: /10.250.19.102:54106
//! …`). The recent-message memo in front of masking answers a message repeated byte for
//! byte; this one answers a message whose *skeleton* (the message with every run of
//! ASCII digits replaced by a marker for its length class) was seen recently. On the
//! Loghub samples it answers three in four of the lines the recent-message memo misses,
//! in the first pass over a sample as much as in later ones.
//!
//! # Why it changes no result
//!
//! Masking looks at digits only through these facts: whether a token or run has one,
//! whether a token starts with one, whether a run is letters followed by one or two digits
//! (`en0`, `ssh2`: a name with a small index), and whether a token is a three-digit
//! number from 100 to 599 (an outcome code after `status`, `returned`, …). Those last two
//! are also the only digits it keeps: every other digit ends up inside a `<*>` (or in a
//! quoted phrase, which becomes one). So the skeleton spells out the digits that may be
//! kept (one or two digits after a letter at the end of a run; three digits from 100 to
//! 599 that make a token, with one `,` `.` `;` or `)` after them at most) and replaces
//! every other run of digits by a marker of its length (one, two, three, four or more,
//! which is all that the small-index rule asks of them). Two messages with the same
//! skeleton then get the same masking decisions at every token and run, keep the same
//! digits and the same other bytes, and so have the same masked text and the same
//! cluster. As in the recent-message memo, an entry names the cluster by slot and
//! generation, so a slot freed since is recognised and the line is masked as usual.
//!
//! The markers are bytes that never occur in UTF-8 (0xF8–0xFB), so a skeleton cannot be
//! mistaken for the text of another message.
//!
//! # Size
//!
//! [`SETS`] sets of [`WAYS`] entries (the one of a set used least recently replaced),
//! each holding a
//! skeleton of at most [`MAX_BYTES`] bytes: at most 256 KiB. Small on purpose: the bench
//! repeats its 16,000 Loghub lines, which have about 1,600 distinct skeletons, and a memo
//! that held them all would answer later passes from the first one, which real logs do
//! not repeat; with 512 entries a pass over the samples is answered as often the first
//! time as the eighth.
//!
//! Eight entries per set rather than two, for the same 512: with two, skeletons that
//! are both in use but share a set push each other out long before the memo is full
//! (the same lines then take the skeleton and the whole masking pass). With eight, the
//! memo comes close to keeping the 512 skeletons used most recently, whatever their
//! hashes: on the bench's lines 12 % fewer lines are masked and a cold pass runs 4 %
//! fewer instructions (160.0 → 153.4 million), for one extra compare of a stored hash
//! per way on a miss. The capacity, and so the argument above, is unchanged; which
//! entry answers a line never changes its cluster.

use super::mask::is_run_byte;
use super::memo::Memo;
use crate::hash::sampled_hash;

/// Sets of the memo (a power of two).
const SETS: usize = 64;
/// Entries per set.
const WAYS: usize = 8;
/// Longest message whose skeleton is kept (as for the recent-message memo).
pub(super) const MAX_BYTES: usize = 512;

/// Markers for a run of ASCII digits, by length: one digit, two, three, four or more.
/// None of them occurs in UTF-8.
const ONE: u8 = 0xf8;
const TWO: u8 = 0xf9;
const THREE: u8 = 0xfa;
const MORE: u8 = 0xfb;

/// The memo, and the skeleton of the line being placed (between [`SkeletonMemo::find`]
/// and [`SkeletonMemo::store`]).
#[derive(Debug, Default)]
pub(super) struct SkeletonMemo {
    table: Memo<SETS, WAYS>,
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
        let run = &message[i..i + digits];
        if may_be_kept(message, i, i + digits, first) {
            out.extend_from_slice(run);
        } else {
            out.push(match digits {
                1 => ONE,
                2 => TWO,
                3 => THREE,
                _ => MORE,
            });
        }
        i += digits;
    }
}

/// Whether masking may keep the digits `message[start..end]` (a whole run of digits):
/// the only digits it keeps are those of a name with a small index (`en0`, `ssh2`:
/// a run of letters ending in one or two digits, before a `.` or `-` that ends a
/// sentence at most) and of an outcome code (a token of three digits from 100 to 599,
/// with one `,` `.` `;` or `)` after it at most). These are spelled out in the skeleton,
/// so that two messages of one skeleton keep the same digits. The test is wider than
/// the masking rules (it does not look at the word before an outcome code, or count the
/// letters before an index), which only spells out a few more digits than needed.
fn may_be_kept(message: &[u8], start: usize, end: usize, first: u8) -> bool {
    let before = start.checked_sub(1).map(|p| message[p]);
    match end - start {
        1 | 2 => {
            if !before.is_some_and(|c| c.is_ascii_alphabetic()) {
                return false;
            }
            let after = message[end..]
                .iter()
                .position(|&c| c != b'.' && c != b'-')
                .map(|p| message[end + p]);
            !after.is_some_and(is_run_byte)
        }
        3 => {
            let space = |c: Option<&u8>| {
                c.is_none_or(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c))
            };
            (b'1'..=b'5').contains(&first)
                && space(before.as_ref())
                && (space(message.get(end))
                    || (matches!(message[end], b',' | b'.' | b';' | b')')
                        && space(message.get(end + 1))))
        }
        _ => false,
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
        self.table.find(self.hash, level, &self.key, tick, live)
    }

    /// Stores the skeleton of the last [`find`](Self::find) for the cluster in `slot`.
    pub(super) fn store(&mut self, slot: u32, generation: u32, tick: u64) {
        self.table
            .store(self.hash, self.level, &self.key, (slot, generation), tick);
    }

    /// Number of entries allocated (for the memory bound's test).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.table.capacity()
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
        assert_ne!(skel("returned 503"), skel("returned 404"));
        assert_eq!(skel("returned 503"), b"returned 503");
        assert_eq!(skel("returned 503)"), b"returned 503)");
        assert_eq!(skel("sent 503 bytes."), b"sent 503 bytes.");
        assert_eq!(skel("at 10.200.1.503:503x"), skel("at 10.250.9.999:100x"));
        assert_eq!(skel("returned 5039"), skel("returned 1234"));
        assert_eq!(skel("returned 603"), skel("returned 999"));
        // Small indexes at the end of a word are spelled out; inside ids they are not.
        assert_eq!(skel("on en0."), b"on en0.");
        assert_eq!(skel("on en0-x"), skel("on en1-x"));
        assert_eq!(skel("id 7f8efa7d"), skel("id 1f2efa3d"));
        assert_ne!(skel("id 7f8efa7d"), skel("id 7f8efa7d12"));
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
