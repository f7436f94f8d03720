//! Following files as they grow, like `tail -F`: complete lines only, a truncated or
//! replaced file is read again from its start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One followed file.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    /// Identity of the open file (device, inode) to notice replacement.
    ident: Option<(u64, u64)>,
    offset: u64,
    /// Bytes after the last newline, waiting for the rest of their line.
    partial: Vec<u8>,
    /// Lines read so far (1-based numbering of the next line is `line + 1`).
    line: usize,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

impl Follower {
    /// Follows `path` from byte `offset` (0 for the start); a missing file is waited for.
    pub fn new(path: &Path, offset: u64, line: usize) -> Follower {
        Follower {
            path: path.to_path_buf(),
            file: None,
            ident: None,
            offset,
            partial: Vec::new(),
            line,
        }
    }

    /// Byte offset of the end of the last complete line read.
    pub fn offset(&self) -> u64 {
        self.offset - self.partial.len() as u64
    }

    /// Lines read so far.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Complete new lines with their 1-based line numbers (at most `max_bytes` read).
    ///
    /// # Errors
    /// Read errors other than the file not existing (yet).
    pub fn poll(&mut self, max_bytes: usize) -> std::io::Result<Vec<(usize, String)>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let ident = identity(&meta);
        let replaced = self.ident.is_some_and(|i| i != ident);
        if replaced || meta.len() < self.offset {
            // Rotated or truncated: start over on the new content.
            self.file = None;
            self.offset = 0;
            self.partial.clear();
            self.line = 0;
        }
        if self.file.is_none() {
            let mut f = File::open(&self.path)?;
            f.seek(SeekFrom::Start(self.offset))?;
            self.file = Some(f);
            self.ident = Some(ident);
        }
        let f = self.file.as_mut().expect("opened above");
        let mut buf = Vec::new();
        f.take(max_bytes as u64).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(out);
        };
        let rest = self.partial.split_off(last_nl + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for raw in complete.split(|&b| b == b'\n') {
            self.line += 1;
            out.push((
                self.line,
                String::from_utf8_lossy(raw)
                    .trim_end_matches('\r')
                    .to_string(),
            ));
        }
        // `split` yields one empty element after the final newline: not a line.
        out.pop();
        self.line -= 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_growth_partial_lines_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let mut f = Follower::new(&p, 0, 0);
        assert!(f.poll(1 << 20).unwrap().is_empty(), "missing file waits");
        let mut w = std::fs::File::create(&p).unwrap();
        write!(w, "a\nb\npar").unwrap();
        w.flush().unwrap();
        assert_eq!(
            f.poll(1 << 20).unwrap(),
            vec![(1, "a".into()), (2, "b".into())]
        );
        write!(w, "tial\n\nc\n").unwrap();
        w.flush().unwrap();
        assert_eq!(
            f.poll(1 << 20).unwrap(),
            vec![(3, "partial".into()), (4, "".into()), (5, "c".into())]
        );
        assert_eq!(f.offset(), 15);
        std::fs::write(&p, "x\n").unwrap();
        assert_eq!(f.poll(1 << 20).unwrap(), vec![(1, "x".into())]);
    }
}
