//! Reading records from files and stdin: NDJSON, a JSON array, or either
//! inside gzip (told by content, not by file name).
//!
//! Lines longer than the record limit are not buffered whole: the reader
//! keeps the first `limit + 1` bytes (enough for the decoder to reject the
//! record as too large) and discards the rest of the line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;

/// An input opened for reading, gzip already unwrapped.
pub struct Source {
    pub name: String,
    pub reader: Box<dyn BufRead + Send>,
}

/// Opens a file (or `-` for stdin), looking at its first bytes for gzip.
pub fn open(path: &str) -> anyhow::Result<Source> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(Path::new(path)).with_context(|| format!("cannot open {path}"))?)
    };
    let mut buf = BufReader::with_capacity(256 << 10, raw);
    let head = buf
        .fill_buf()
        .with_context(|| format!("cannot read {path}"))?;
    let reader: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            256 << 10,
            flate2::bufread::MultiGzDecoder::new(buf),
        ))
    } else {
        Box::new(buf)
    };
    let name = if path == "-" {
        "<stdin>".into()
    } else {
        path.to_owned()
    };
    Ok(Source { name, reader })
}

/// Reads the next line into `buf` (without its `\n` / `\r\n`), keeping at
/// most `limit + 1` bytes of it. Returns `Ok(false)` at end of input.
pub fn read_line_bounded(r: &mut dyn BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = (limit + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(if done { take + 1 } else { take });
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(any)
}

/// Whether the input is one JSON array spread over many lines (a pretty-
/// printed batch) rather than NDJSON: it starts with `[` and its first line
/// is not a complete array.
pub fn first_line_opens_array(first: &[u8]) -> bool {
    let t = first.trim_ascii();
    t.starts_with(b"[") && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_capped_and_the_rest_discarded() {
        let data = format!("{}\nshort\r\nlast", "x".repeat(100));
        let mut r = BufReader::with_capacity(16, data.as_bytes());
        let mut buf = Vec::new();
        assert!(read_line_bounded(&mut r, &mut buf, 10).unwrap());
        assert_eq!(buf.len(), 11);
        assert!(read_line_bounded(&mut r, &mut buf, 10).unwrap());
        assert_eq!(buf, b"short");
        assert!(read_line_bounded(&mut r, &mut buf, 10).unwrap());
        assert_eq!(buf, b"last");
        assert!(!read_line_bounded(&mut r, &mut buf, 10).unwrap());
    }
}
