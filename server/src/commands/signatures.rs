//! `watchdog signatures [FILE|-]`: one JSON object per input line, in order, with the
//! line's stable signature id and its template (DESIGN.md, "Command-line contracts").
//!
//! Each line is read as a raw log line ([`parse_log_line_ref`]): a JSON record uses its
//! message field, a plain line loses a leading timestamp and level, anything else is the
//! message as it is. Lines are mined in order by one [`TemplateMiner`], so the template
//! printed for a line is the template as it stood after that line (it can still
//! generalise later), while the signature id of a template never changes. Blank lines get
//! the signature of the empty message, so output line N always answers input line N.
//! Invalid UTF-8 is replaced, not fatal.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use watchdog_core::signatures::{parse_log_line_ref, SignatureId, TemplateMiner};

use crate::cli::SignaturesArgs;

/// Runs the command.
///
/// # Errors
/// An input that cannot be opened or read (naming it and the line), or stdout failing
/// for a reason other than a closed pipe.
pub fn run(args: &SignaturesArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.as_deref().unwrap_or("-");
    let input: Box<dyn Read> = if name == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(name).with_context(|| format!("cannot open {name}"))?)
    };
    let mut out = io::stdout().lock();
    match mine(input, &mut out, name) {
        Ok(()) => {}
        Err(Failure::Output(e)) if e.kind() == ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS)
        }
        Err(Failure::Output(e)) => return Err(e).context("cannot write to stdout"),
        Err(Failure::Input(e)) => return Err(e),
    }
    match out.flush() {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

enum Failure {
    Input(anyhow::Error),
    Output(io::Error),
}

/// Bytes read from the input at a time, and the output written at a time.
const CHUNK: usize = 1 << 18;

/// Reads the input in large chunks and mines each complete line where it lies in the
/// buffer (no copy per line), writing the records into one output buffer that goes to
/// `out` whenever it holds a chunk: two copies fewer per line than a line reader and a
/// buffered writer, and memory that does not grow with the input (one chunk, plus the
/// longest line).
fn mine(mut input: impl Read, out: &mut impl Write, name: &str) -> Result<(), Failure> {
    let mut miner = TemplateMiner::default();
    let mut buf = vec![0u8; CHUNK];
    // Bytes of `buf` that hold data, where the next line starts, and how far past it
    // no newline was found (so that a long line arriving in small reads is scanned
    // once, not once per read).
    let (mut filled, mut start, mut scanned) = (0usize, 0usize, 0usize);
    let mut records = Vec::with_capacity(CHUNK + 4096);
    let mut line_no = 0usize;
    let mut eof = false;
    loop {
        // Every complete line in `buf[start..filled]` (none ends before `scanned`).
        while let Some(nl) = memchr(b'\n', &buf[scanned..filled]) {
            let end = scanned + nl + 1;
            line_no += 1;
            mine_line(&mut miner, &buf[start..end], &mut records);
            start = end;
            scanned = end;
            if records.len() >= CHUNK {
                out.write_all(&records).map_err(Failure::Output)?;
                records.clear();
            }
        }
        scanned = filled;
        if eof {
            // A last line without a newline.
            if start < filled {
                mine_line(&mut miner, &buf[start..filled], &mut records);
            }
            return out.write_all(&records).map_err(Failure::Output);
        }
        // Read into the free tail; when there is none, move the partial line to the
        // front, and grow the buffer only for a line longer than it.
        if filled == buf.len() {
            if start > 0 {
                buf.copy_within(start..filled, 0);
                filled -= start;
                scanned -= start;
                start = 0;
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let read = loop {
            match input.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::Input(
                        anyhow::Error::new(e)
                            .context(format!("cannot read {name} at line {}", line_no + 1)),
                    ))
                }
            }
        };
        filled += read;
        eof = read == 0;
    }
}

/// The position of the first `byte` in `hay`, a word at a time.
fn memchr(byte: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(byte);
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ pattern;
        // A zero byte of `w` is a match (the classic has-zero-byte test; the lowest set
        // bit is exact, which is the one taken).
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|p| at + p)
}

/// Mines one raw line (with or without its newline) and appends its record.
fn mine_line(miner: &mut TemplateMiner, raw: &[u8], records: &mut Vec<u8>) {
    // Valid UTF-8 (nearly every line) is checked by the fast validator and borrowed.
    let text = match std::str::from_utf8(raw) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(raw),
    };
    let parsed = parse_log_line_ref(&text);
    // The level, when the line names one, is part of the signature.
    let m = miner.add_leveled(parsed.level, &parsed.message);
    write_record(records, m.signature, m.template);
}

/// `{"signature":"<16 hex>","template":"<escaped>"}` and a newline.
fn write_record(buf: &mut Vec<u8>, id: SignatureId, template: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.extend_from_slice(b"{\"signature\":\"");
    for shift in (0..16).rev() {
        buf.push(HEX[((id.0 >> (shift * 4)) & 0xf) as usize]);
    }
    buf.extend_from_slice(b"\",\"template\":\"");
    let bytes = template.as_bytes();
    // Most templates need no escape: one vectorisable check, one copy.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        buf.extend_from_slice(bytes);
        buf.extend_from_slice(b"\"}\n");
        return;
    }
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[copied..i]);
        if escape.is_empty() {
            buf.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            buf.extend_from_slice(escape);
        }
        copied = i + 1;
    }
    buf.extend_from_slice(&bytes[copied..]);
    buf.extend_from_slice(b"\"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, as a pipe may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_across_reads_and_longer_than_a_chunk_are_each_one_record() {
        let long = format!("payload {} end", "x".repeat(3 * CHUNK));
        let lines = [
            "Connection refused to 10.0.3.17:5432 (attempt 2)",
            "",
            long.as_str(),
            "2026-03-30T19:30:00Z ERROR db timeout",
            "caf\u{e9} \"quoted\"",
            "last line without a newline",
        ];
        let input = lines.join("\n");
        let mut expected = Vec::new();
        let mut miner = TemplateMiner::default();
        for l in lines {
            let p = parse_log_line_ref(l);
            let m = miner.add_leveled(p.level, &p.message);
            write_record(&mut expected, m.signature, m.template);
        }
        for step in [1, 7, 4096, CHUNK + 1] {
            let mut out = Vec::new();
            assert!(mine(Trickle(input.as_bytes(), step), &mut out, "t").is_ok());
            assert_eq!(out.len(), expected.len(), "step {step}");
            assert!(out == expected, "step {step}");
        }
    }

    #[test]
    fn memchr_finds_the_first_match() {
        let hay = b"abcdefghijklmnop\nqrs\n";
        assert_eq!(memchr(b'\n', hay), Some(16));
        assert_eq!(memchr(b'\n', &hay[17..]), Some(3));
        assert_eq!(memchr(b'z', hay), None);
        for i in 0..40 {
            let mut v = vec![b'\x01'; 40];
            v[i] = 0;
            assert_eq!(memchr(0, &v), Some(i));
            v[i] = b'\x81';
            assert_eq!(memchr(0x81, &v), Some(i));
        }
    }

    #[test]
    fn records_are_valid_json_with_escapes() {
        let mut buf = Vec::new();
        write_record(&mut buf, SignatureId(0xab), "a \"q\" \\ \t\u{1}é <*>");
        let text = String::from_utf8(buf).unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["signature"], "00000000000000ab");
        assert_eq!(v["template"], "a \"q\" \\ \t\u{1}é <*>");
    }
}
