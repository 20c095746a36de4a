//! True line numbers for messages about text read through a parser: a [`Read`] wrapper that
//! notes where every newline is, so a byte offset (what the `csv` crate reports) maps to the
//! 1-based line a text editor shows. The `csv` crate's own line count leaves out blank lines,
//! and the position it gives a record is where the blank lines before it begin.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

/// One `\n` of the input: its byte offset, and whether the line it ends is empty (nothing but
/// an optional `\r`).
#[derive(Debug, Clone, Copy)]
struct Newline {
    offset: u64,
    blank: bool,
}

/// The newlines seen so far, shared between a [`CountLines`] reader (which the parser owns) and
/// whoever builds the messages.
#[derive(Debug, Clone, Default)]
pub struct LineIndex(Arc<Mutex<Vec<Newline>>>);

impl LineIndex {
    /// A fresh index; wrap the input with [`LineIndex::wrap`].
    pub fn new() -> Self {
        Self::default()
    }

    /// `inner` with every `\n` it yields recorded in this index.
    pub fn wrap<R: Read>(&self, inner: R) -> CountLines<R> {
        CountLines {
            inner,
            index: self.clone(),
            offset: 0,
            has_content: false,
        }
    }

    /// The 1-based line holding byte `offset` of the input (lines end at `\n`; `\r\n` counts
    /// once). Exact for every byte the wrapped reader has already yielded.
    pub fn line_at(&self, offset: u64) -> u64 {
        let newlines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        newlines.partition_point(|n| n.offset < offset) as u64 + 1
    }

    /// The line of a record that a parser says starts at byte `offset`: the first line from
    /// there that is not empty (parsers skip empty lines as part of the record that follows).
    pub fn record_line(&self, offset: u64) -> u64 {
        let newlines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut k = newlines.partition_point(|n| n.offset < offset);
        while k < newlines.len() && newlines[k].blank {
            k += 1;
        }
        k as u64 + 1
    }
}

/// A reader that records every newline it passes on (see [`LineIndex`]).
#[derive(Debug)]
pub struct CountLines<R> {
    inner: R,
    index: LineIndex,
    offset: u64,
    has_content: bool,
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut newlines = self.index.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                b'\n' => {
                    newlines.push(Newline {
                        offset: self.offset + i as u64,
                        blank: !self.has_content,
                    });
                    self.has_content = false;
                }
                b'\r' => {}
                _ => self.has_content = true,
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// [`LineIndex::record_line`] over text already in memory.
pub fn record_line_in(bytes: &[u8], offset: u64) -> u64 {
    let mut at = (offset as usize).min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_editor_lines_across_blank_lines_and_crlf() {
        let text = b"age\r\n1\n\r\n\nx\n";
        let index = LineIndex::new();
        let mut r = index.wrap(&text[..]);
        let mut sink = Vec::new();
        // Small reads, as a buffered parser would do them.
        let mut chunk = [0u8; 3];
        loop {
            let n = r.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            sink.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(sink, text);
        assert_eq!(index.line_at(0), 1);
        assert_eq!(index.line_at(5), 2); // "1"
        // The parser reports the record "x" at the start of the blank lines before it (byte 7).
        assert_eq!(index.line_at(7), 3);
        assert_eq!(index.record_line(7), 5);
        assert_eq!(index.record_line(10), 5);
        assert_eq!(record_line_in(text, 7), 5);
        assert_eq!(record_line_in(text, 5), 2);
    }
}
