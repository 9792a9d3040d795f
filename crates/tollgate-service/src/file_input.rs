//! Reading records from files and stdin: NDJSON, a JSON array, or either
//! inside gzip (told by content, not by file name); and the file/stdin
//! input of the service ([`run`]), optionally following a growing file.
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
    let (any, _) = read_line_append(r, buf, limit)?;
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(any)
}

/// Appends to `buf` up to the next `\n` (consumed, not kept), keeping at
/// most `limit + 1` bytes in `buf`. Returns (read anything, the line ended
/// with `\n`): a follower keeps an unterminated tail and appends to it when
/// the file grows.
pub fn read_line_append(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<(bool, bool)> {
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((any, false));
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
            return Ok((true, true));
        }
    }
}

/// Whether the input is one JSON array spread over many lines (a pretty-
/// printed batch) rather than NDJSON: it starts with `[` and its first line
/// is not a complete array.
pub fn first_line_opens_array(first: &[u8]) -> bool {
    let t = first.trim_ascii();
    t.starts_with(b"[") && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_err()
}

/// The service's file or stdin input: reads each path in turn, hands every
/// line to `router` (blocking while the pipeline is full), and with
/// `follow` keeps reading the last file as it grows until `stop` is set. A
/// line's offset in the metadata is its 1-based line number. Returns the
/// records read.
pub fn run(
    input: &str,
    paths: &[std::path::PathBuf],
    follow: bool,
    poll: std::time::Duration,
    limit: usize,
    router: &mut crate::pipeline::Router,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<u64> {
    use std::sync::atomic::Ordering;
    let mut records = 0u64;
    let mut line = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let p = path.to_string_lossy();
        let mut src = open(&p)?;
        let last = i + 1 == paths.len();
        let mut lineno = 0u64;
        let mut num = itoa::Buffer::new();
        line.clear();
        loop {
            if stop.load(Ordering::Relaxed) {
                let _ = router.flush_blocking();
                return Ok(records);
            }
            let (any, complete) = read_line_append(&mut *src.reader, &mut line, limit)
                .with_context(|| format!("reading {}", src.name))?;
            if !complete && follow && last {
                // End of the file for now: wait for it to grow (an
                // unterminated tail stays in `line` until its newline comes).
                if !any {
                    if router.flush_blocking().is_err() {
                        return Ok(records);
                    }
                    std::thread::sleep(poll);
                }
                continue;
            }
            if !any {
                break;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lineno += 1;
            if !line.iter().all(u8::is_ascii_whitespace) {
                let meta = tollgate_events::RecordMeta {
                    input: Some(input),
                    offset: Some(num.format(lineno)),
                    ..Default::default()
                };
                records += 1;
                if router
                    .submit_blocking(&line, &meta, tollgate_events::Ack::none())
                    .is_err()
                {
                    return Ok(records);
                }
            }
            line.clear();
        }
    }
    let _ = router.flush_blocking();
    Ok(records)
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
