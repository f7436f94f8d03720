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
use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
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
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    match mine(BufReader::with_capacity(1 << 16, input), &mut out, name) {
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

fn mine(mut input: impl BufRead, out: &mut impl Write, name: &str) -> Result<(), Failure> {
    let mut miner = TemplateMiner::default();
    let mut raw = Vec::with_capacity(1024);
    let mut record = Vec::with_capacity(1024);
    let mut line_no = 0usize;
    loop {
        raw.clear();
        let read = input.read_until(b'\n', &mut raw).map_err(|e| {
            Failure::Input(
                anyhow::Error::new(e)
                    .context(format!("cannot read {name} at line {}", line_no + 1)),
            )
        })?;
        if read == 0 {
            return Ok(());
        }
        line_no += 1;
        // Valid UTF-8 (nearly every line) is checked by the fast validator and borrowed.
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(&raw),
        };
        let parsed = parse_log_line_ref(&text);
        // The level, when the line names one, is part of the signature.
        let m = miner.add_leveled(parsed.level, &parsed.message);
        record.clear();
        write_record(&mut record, m.signature, m.template);
        out.write_all(&record).map_err(Failure::Output)?;
    }
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
