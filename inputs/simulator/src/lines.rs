//! The lines of a history file, one at a time and bounded, and one CSV row per line.
//!
//! Every history format fitstream reads (REES46 and Taobao CSV, its own JSON lines) has one
//! record per line, so a line is the unit of damage: a stray `"` or a truncated row costs
//! that row and no other (a CSV reader that let a quote span lines swallowed the next 99 good
//! rows), and a line longer than the format's bound is an error item of its own, read past
//! without being held in memory (a 100 MB field would otherwise be buffered whole).

use std::io::{self, BufRead};

use crate::error::ReplayError;

/// The longest CSV line read (a REES46 or Taobao row is about 150 bytes; every string field
/// is bounded far below this by validation).
pub const MAX_CSV_LINE_BYTES: usize = 64 * 1_024;
/// The longest JSON line read: a record's raw bytes as hex, up to the codec's value limit,
/// with room for the rest of the line.
pub const MAX_JSON_LINE_BYTES: usize = 4 * 1_024 * 1_024;

/// A line read: its text (without the line end), or only its size when it was too long.
#[derive(Debug)]
pub enum Line<'a> {
    /// A line within the bound, without `\n` or `\r\n`.
    Text(&'a [u8]),
    /// A line longer than the bound: how many bytes it had (its text was not kept).
    TooLong(u64),
}

/// Reads the lines of a file, each within a bound; numbers them from 1.
pub struct Lines<R> {
    reader: R,
    max: usize,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader` of at most `max` bytes each.
    pub fn new(reader: R, max: usize) -> Lines<R> {
        Lines {
            reader,
            max,
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next line and its 1-based number; `None` at the end of the file; an I/O error is
    /// a [`ReplayError::Io`] (reading should stop after it).
    pub fn next_line(&mut self) -> Option<Result<(u64, Line<'_>), ReplayError>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut read_any = false;
        let mut ended = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Some(Err(ReplayError::Io {
                        line: self.line + 1,
                        source,
                    }));
                }
            };
            if chunk.is_empty() {
                if !read_any {
                    return None;
                }
                break;
            }
            read_any = true;
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            total += take as u64;
            if self.buf.len() <= self.max {
                let room = self.max + 1 - self.buf.len();
                self.buf.extend_from_slice(&chunk[..take.min(room)]);
            }
            self.reader.consume(take);
            if end {
                ended = true;
                break;
            }
        }
        self.line += 1;
        if ended {
            total -= 1;
        }
        if total > self.max as u64 {
            return Some(Ok((self.line, Line::TooLong(total))));
        }
        let mut text: &[u8] = &self.buf;
        if ended {
            text = &text[..text.len() - 1];
        }
        if let Some(t) = text.strip_suffix(b"\r") {
            text = t;
        }
        Some(Ok((self.line, Line::Text(text))))
    }

    /// The first bytes of the last line read (all of it within the bound; the first `max`
    /// bytes of a line that was too long), without its line end.
    pub fn kept(&self) -> &[u8] {
        let kept = &self.buf[..self.buf.len().min(self.max)];
        let kept = kept.strip_suffix(b"\n").unwrap_or(kept);
        kept.strip_suffix(b"\r").unwrap_or(kept)
    }
}

/// One CSV row parsed from one line (RFC 4180 quoting within the line; a quote left open
/// ends at the end of the line). The parser and its buffers are reused from row to row.
pub struct CsvLine {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    fields: usize,
}

impl Default for CsvLine {
    fn default() -> Self {
        CsvLine {
            reader: csv_core::Reader::new(),
            out: Vec::new(),
            ends: vec![0; 16],
            fields: 0,
        }
    }
}

impl CsvLine {
    /// Parses `line` into fields; `Err` when they are not UTF-8.
    pub fn parse(&mut self, line: &[u8]) -> Result<(), &'static str> {
        use csv_core::ReadRecordResult as R;
        self.reader.reset();
        // Unquoting never makes a field longer.
        if self.out.len() < line.len() + 1 {
            self.out.resize(line.len() + 1, 0);
        }
        let (mut input, mut o, mut e) = (line, 0, 0);
        loop {
            let (result, nin, nout, nend) =
                self.reader
                    .read_record(input, &mut self.out[o..], &mut self.ends[e..]);
            input = &input[nin..];
            o += nout;
            e += nend;
            match result {
                // The whole line was given: the empty input that follows is its end.
                R::InputEmpty => {}
                R::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                R::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                R::Record | R::End => break,
            }
        }
        self.fields = e;
        std::str::from_utf8(&self.out[..o]).map_err(|_| "not UTF-8")?;
        Ok(())
    }

    /// How many fields the row has.
    pub fn len(&self) -> usize {
        self.fields
    }

    /// Whether the row has no field (an empty line).
    pub fn is_empty(&self) -> bool {
        self.fields == 0
    }

    /// Field `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        if i >= self.fields {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        std::str::from_utf8(&self.out[start..self.ends[i]]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], max: usize) -> Vec<(u64, Result<Vec<u8>, u64>)> {
        let mut l = Lines::new(text, max);
        let mut got = Vec::new();
        while let Some(item) = l.next_line() {
            let (n, line) = item.expect("no I/O error");
            got.push((
                n,
                match line {
                    Line::Text(t) => Ok(t.to_vec()),
                    Line::TooLong(n) => Err(n),
                },
            ));
        }
        got
    }

    #[test]
    fn lines_are_numbered_and_a_long_one_is_only_measured() {
        let long = vec![b'x'; 100];
        let mut text = b"a,b\r\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\n\nlast");
        assert_eq!(
            lines(&text, 10),
            vec![
                (1, Ok(b"a,b".to_vec())),
                (2, Err(100)),
                (3, Ok(Vec::new())),
                (4, Ok(b"last".to_vec())),
            ]
        );
        // At the bound exactly, a line is kept.
        assert_eq!(
            lines(b"0123456789\n", 10),
            vec![(1, Ok(b"0123456789".to_vec()))]
        );
        assert_eq!(lines(b"", 10), vec![]);
    }

    #[test]
    fn a_long_line_is_not_held_in_memory() {
        // A 1 MiB line through a 64 KiB reader buffer: the line buffer stays at the bound.
        let mut text = vec![b'y'; 1 << 20];
        text.push(b'\n');
        text.extend_from_slice(b"next\n");
        let mut l = Lines::new(std::io::BufReader::with_capacity(1 << 16, &text[..]), 1_000);
        assert!(matches!(
            l.next_line(),
            Some(Ok((1, Line::TooLong(n)))) if n == 1 << 20
        ));
        assert!(l.buf.capacity() < 1 << 16, "{}", l.buf.capacity());
        assert_eq!(l.kept(), &[b'y'; 1_000][..]);
        assert!(matches!(l.next_line(), Some(Ok((2, Line::Text(b"next"))))));
    }

    fn fields(line: &str) -> Vec<String> {
        let mut row = CsvLine::default();
        row.parse(line.as_bytes()).expect("UTF-8");
        (0..row.len())
            .map(|i| row.get(i).expect("field").to_owned())
            .collect()
    }

    #[test]
    fn a_row_is_one_line_and_a_stray_quote_stays_in_it() {
        assert_eq!(fields("a,\"b,c\",d"), ["a", "b,c", "d"]);
        assert_eq!(fields("a,,\"x\"\"y\""), ["a", "", "x\"y"]);
        // An open quote runs to the end of its line, not into the next rows.
        assert_eq!(fields("1,\"2,3"), ["1", "2,3"]);
        assert_eq!(fields(""), Vec::<String>::new());
        let many: String = (0..40).map(|i| format!("{i},")).collect();
        assert_eq!(fields(&many).len(), 41);
        let mut row = CsvLine::default();
        assert!(row.parse(b"a,\xff").is_err());
    }
}
