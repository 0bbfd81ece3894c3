//! A directory of topic JSON lines (`OUT/<topic>.jsonl`, as `replay`, `demo` and `tail --out`
//! write them), read to its end and then followed as the files grow.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A line longer than this is skipped (fitstream's records stay below 1 MB).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// What one poll of the directory found.
#[derive(Debug, Default)]
pub struct Polled {
    /// A file shrank or vanished (a new run into the same directory): everything read
    /// before is stale, and the lines are the directory read again from the start.
    pub reset: bool,
    /// Complete new lines, parsed.
    pub lines: Vec<Value>,
    /// New lines that are not JSON or are too long.
    pub bad: u64,
}

#[derive(Default)]
struct Tail {
    offset: u64,
    partial: Vec<u8>,
    /// Skipping the rest of a line that grew past [`MAX_LINE_BYTES`].
    skipping: bool,
}

/// The followed directory.
pub struct Directory {
    dir: PathBuf,
    wants: Box<dyn Fn(&str) -> bool + Send>,
    files: HashMap<PathBuf, Tail>,
}

impl Directory {
    /// Follows the files of `dir` whose topic (`<topic>.jsonl`) `wants` accepts.
    pub fn new(dir: &Path, wants: impl Fn(&str) -> bool + Send + 'static) -> Directory {
        Directory {
            dir: dir.to_owned(),
            wants: Box::new(wants),
            files: HashMap::new(),
        }
    }

    /// Reads what was appended since the last poll.
    pub fn poll(&mut self) -> std::io::Result<Polled> {
        let mut polled = Polled::default();
        let mut present = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            // Not there yet (a demo about to start): nothing to read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(polled),
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(topic) = name.strip_suffix(".jsonl")
                && (self.wants)(topic)
            {
                present.push(entry.path());
            }
        }
        present.sort();
        let shrank = self
            .files
            .iter()
            .any(|(path, tail)| std::fs::metadata(path).map_or(true, |m| m.len() < tail.offset));
        if shrank {
            self.files.clear();
            polled.reset = true;
        }
        for path in present {
            let tail = self.files.entry(path.clone()).or_default();
            read_new(&path, tail, &mut polled)?;
        }
        Ok(polled)
    }
}

fn read_new(path: &Path, tail: &mut Tail, polled: &mut Polled) -> std::io::Result<()> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(tail.offset))?;
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        tail.offset += n as u64;
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = (&rest[..end], &rest[end + 1..]);
            rest = after;
            if tail.skipping {
                tail.skipping = false;
                continue;
            }
            let line: &[u8] = if tail.partial.is_empty() {
                piece
            } else {
                tail.partial.extend_from_slice(piece);
                &tail.partial
            };
            if !line.is_empty() {
                match serde_json::from_slice::<Value>(line) {
                    Ok(v) => polled.lines.push(v),
                    Err(_) => polled.bad += 1,
                }
            }
            tail.partial.clear();
        }
        if !tail.skipping {
            tail.partial.extend_from_slice(rest);
            if tail.partial.len() > MAX_LINE_BYTES {
                tail.partial = Vec::new();
                tail.skipping = true;
                polled.bad += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_are_read_once_whole_and_a_rewritten_file_resets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        let mut f = File::create(&path).expect("create");
        std::fs::write(dir.path().join("other.jsonl"), "{\"x\":1}\n").expect("write");
        let mut d = Directory::new(dir.path(), |t| t == "a");
        // A half-written line waits for its end.
        write!(f, "{{\"n\":1}}\n{{\"n\":").expect("write");
        f.flush().expect("flush");
        let p = d.poll().expect("poll");
        assert_eq!((p.lines.len(), p.bad, p.reset), (1, 0, false));
        write!(f, "2}}\nnot json\n").expect("write");
        f.flush().expect("flush");
        let p = d.poll().expect("poll");
        assert_eq!(p.lines, vec![serde_json::json!({"n": 2})]);
        assert_eq!(p.bad, 1);
        assert!(d.poll().expect("poll").lines.is_empty());
        // A new run rewrites the file: read again from the start.
        std::fs::write(&path, "{\"n\":3}\n").expect("rewrite");
        let p = d.poll().expect("poll");
        assert!(p.reset);
        assert_eq!(p.lines, vec![serde_json::json!({"n": 3})]);
    }

    #[test]
    fn an_endless_line_is_skipped_without_holding_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        let mut f = File::create(&path).expect("create");
        let mut d = Directory::new(dir.path(), |_| true);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(MAX_LINE_BYTES >> 20) + 2 {
            f.write_all(&chunk).expect("write");
            let p = d.poll().expect("poll");
            assert!(p.lines.is_empty());
        }
        f.write_all(b"\n{\"n\":1}\n").expect("write");
        let p = d.poll().expect("poll");
        assert_eq!(p.lines, vec![serde_json::json!({"n": 1})]);
        assert_eq!(
            d.files.values().map(|t| t.partial.capacity()).max(),
            Some(0)
        );
    }
}
