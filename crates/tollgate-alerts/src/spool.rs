//! A sink target's on-disk spool: the updates it could not deliver yet, in
//! order, durable before their acks are released, replayed after a restart.
//! It does not deliver anything and knows nothing of sinks: the lane
//! ([`crate::lane`]) appends, peeks and pops.
//!
//! Layout of a spool directory (one per sink target):
//!
//! ```text
//! seg-<first seq, 20 digits>.tgsp   append-only segment files, in seq order
//! cursor                            seq of the oldest undelivered entry (decimal text)
//! episodes.json                     the target's open episodes (written by the lane)
//! ```
//!
//! A segment starts with an 8-byte header, `TGSP` · version u16 LE (1) ·
//! reserved u16, followed by records:
//! `payload length u32 LE · seq u64 LE · checksum u32 LE · payload`, where the
//! checksum is the first four bytes (LE) of BLAKE3(seq LE ‖ payload) and the
//! payload is one entry as JSON. Seqs increase by one per entry and are never
//! reused. An append writes a batch of records with one `write` and one
//! `fsync` (`sync_data`; the directory is synced when a segment is created);
//! only then does the caller release the entries' acks. On open, each
//! segment is read through; a torn or corrupt tail (a crash mid-append) is
//! truncated away — those entries' acks were never released, so the input
//! delivers them again. Popping advances `cursor` (replaced by rename, synced
//! at close: a crash may re-deliver a few entries, never skip one) and
//! deletes segments whose every entry is behind it. When the live entries
//! exceed `max_bytes`, the oldest are dropped and counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::metrics::LaneMetrics;

const MAGIC: &[u8; 4] = b"TGSP";
const VERSION: u16 = 1;
const FILE_HEADER: u64 = 8;
const REC_HEADER: u64 = 16;
/// An entry larger than this is not a Tollgate alert; refusing it keeps a
/// corrupt length from allocating gigabytes on open.
pub const MAX_ENTRY_BYTES: usize = 16 << 20;

struct Segment {
    first_seq: u64,
    path: PathBuf,
    len: u64,
}

#[derive(Clone, Copy)]
struct Rec {
    seq: u64,
    segment: u64,
    offset: u64,
    len: u32,
}

impl Rec {
    fn bytes(&self) -> u64 {
        REC_HEADER + u64::from(self.len)
    }
}

/// What opening a spool found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub entries: usize,
    pub bytes: u64,
    /// Bytes cut from torn or corrupt segment tails.
    pub truncated_bytes: u64,
}

pub(crate) struct Spool {
    dir: PathBuf,
    segment_max: u64,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    index: VecDeque<Rec>,
    /// The last segment, open for appending.
    writer: Option<File>,
    /// The segment entries are being read from.
    reader: Option<(u64, File)>,
    next_seq: u64,
    live_bytes: u64,
    metrics: Arc<LaneMetrics>,
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    let b = h.finalize();
    u32::from_le_bytes(b.as_bytes()[..4].try_into().expect("4 bytes"))
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.tgsp")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically (temp file, optional fsync,
/// rename, optional directory fsync).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_data()?;
        }
    }
    fs::rename(&tmp, dir.join(name))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

impl Spool {
    /// Opens (creating) the spool in `dir`, recovering what it holds.
    pub fn open(
        dir: &Path,
        segment_max: u64,
        max_bytes: u64,
        metrics: Arc<LaneMetrics>,
    ) -> io::Result<(Spool, Recovered)> {
        fs::create_dir_all(dir)?;
        let cursor = match fs::read_to_string(dir.join("cursor")) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut firsts = Vec::new();
        for ent in fs::read_dir(dir)? {
            let name = ent?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name
                .strip_prefix("seg-")
                .and_then(|r| r.strip_suffix(".tgsp"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                firsts.push(n);
            }
        }
        firsts.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            segment_max,
            max_bytes,
            segments: VecDeque::new(),
            index: VecDeque::new(),
            writer: None,
            reader: None,
            next_seq: cursor,
            live_bytes: 0,
            metrics,
        };
        let mut rec = Recovered::default();
        for first in firsts {
            let path = dir.join(segment_name(first));
            let mut buf = Vec::new();
            File::open(&path)?.read_to_end(&mut buf)?;
            let good = spool.scan_segment(first, &buf, cursor);
            if good < FILE_HEADER {
                rec.truncated_bytes += buf.len() as u64;
                fs::remove_file(&path)?;
                continue;
            }
            if good < buf.len() as u64 {
                rec.truncated_bytes += buf.len() as u64 - good;
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good)?;
                f.sync_all()?;
            }
            spool.segments.push_back(Segment {
                first_seq: first,
                path,
                len: good,
            });
        }
        rec.entries = spool.index.len();
        rec.bytes = spool.live_bytes;
        spool.drop_consumed_segments()?;
        spool.publish();
        Ok((spool, rec))
    }

    /// Indexes the valid records of one segment; returns the length of its
    /// valid prefix.
    fn scan_segment(&mut self, first: u64, buf: &[u8], cursor: u64) -> u64 {
        if buf.len() < FILE_HEADER as usize
            || &buf[..4] != MAGIC
            || u16::from_le_bytes([buf[4], buf[5]]) != VERSION
        {
            return 0;
        }
        let mut off = FILE_HEADER as usize;
        let mut expected = first;
        while off + REC_HEADER as usize <= buf.len() {
            let len = u32::from_le_bytes(buf[off..off + 4].try_into().expect("4")) as usize;
            let seq = u64::from_le_bytes(buf[off + 4..off + 12].try_into().expect("8"));
            let sum = u32::from_le_bytes(buf[off + 12..off + 16].try_into().expect("4"));
            let start = off + REC_HEADER as usize;
            if len > MAX_ENTRY_BYTES
                || start + len > buf.len()
                || seq != expected
                || checksum(seq, &buf[start..start + len]) != sum
            {
                break;
            }
            if seq >= cursor {
                let r = Rec {
                    seq,
                    segment: first,
                    offset: off as u64,
                    len: len as u32,
                };
                self.live_bytes += r.bytes();
                self.index.push_back(r);
            }
            self.next_seq = self.next_seq.max(seq + 1);
            expected = seq + 1;
            off = start + len;
        }
        off as u64
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.live_bytes
    }

    fn publish(&self) {
        self.metrics
            .spool_entries
            .store(self.index.len() as u64, Ordering::Relaxed);
        self.metrics
            .spool_bytes
            .store(self.live_bytes, Ordering::Relaxed);
    }

    /// Appends entries durably (one write, one fsync), then enforces the
    /// size cap. On error nothing was appended (a partial write is cut off
    /// again) and the caller keeps the entries.
    pub fn append<'a>(&mut self, payloads: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        let roll = self
            .segments
            .back()
            .is_none_or(|s| s.len >= self.segment_max)
            || self.writer.is_none();
        if roll {
            self.open_writer()?;
        }
        let (seg_first, base) = {
            let seg = self.segments.back().expect("a writer segment");
            (seg.first_seq, seg.len)
        };
        let mut buf = Vec::new();
        let mut recs = Vec::new();
        let mut seq = self.next_seq;
        for p in payloads {
            if p.len() > MAX_ENTRY_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "spool entry too large",
                ));
            }
            recs.push(Rec {
                seq,
                segment: seg_first,
                offset: base + buf.len() as u64,
                len: p.len() as u32,
            });
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&checksum(seq, p).to_le_bytes());
            buf.extend_from_slice(p);
            seq += 1;
        }
        if recs.is_empty() {
            return Ok(());
        }
        let w = self.writer.as_mut().expect("writer open");
        let written = w.write_all(&buf).and_then(|()| w.sync_data());
        if let Err(e) = written {
            // Cut off whatever part of the batch reached the file, so the
            // next append does not follow garbage; reopen on next use.
            if let Some(w) = self.writer.take() {
                let _ = w.set_len(base);
            }
            return Err(e);
        }
        self.segments.back_mut().expect("writer segment").len = base + buf.len() as u64;
        self.next_seq = seq;
        let n = recs.len() as u64;
        for r in recs {
            self.live_bytes += r.bytes();
            self.index.push_back(r);
        }
        LaneMetrics::add(&self.metrics.spooled, n);
        let mut dropped = 0;
        while self.live_bytes > self.max_bytes && self.index.len() > 1 {
            let r = self.index.pop_front().expect("non-empty");
            self.live_bytes -= r.bytes();
            dropped += 1;
        }
        if dropped > 0 {
            LaneMetrics::add(&self.metrics.dropped_by_cap, dropped);
            tracing::warn!(
                dir = %self.dir.display(),
                dropped,
                "alert spool over its size cap: oldest entries dropped"
            );
            self.advance_cursor()?;
        }
        self.publish();
        Ok(())
    }

    /// Starts a new segment named after the next seq.
    fn open_writer(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.take() {
            w.sync_data()?;
        }
        // Reuse the last segment if it has room (after a restart).
        if let Some(last) = self.segments.back() {
            if last.len < self.segment_max && last.len >= FILE_HEADER {
                let f = OpenOptions::new().append(true).open(&last.path)?;
                self.writer = Some(f);
                return Ok(());
            }
        }
        let first = self.next_seq;
        let path = self.dir.join(segment_name(first));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let mut header = [0u8; FILE_HEADER as usize];
        header[..4].copy_from_slice(MAGIC);
        header[4..6].copy_from_slice(&VERSION.to_le_bytes());
        f.write_all(&header)?;
        f.sync_data()?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            first_seq: first,
            path,
            len: FILE_HEADER,
        });
        self.writer = Some(f);
        Ok(())
    }

    /// The payloads of up to `n` oldest entries.
    pub fn peek(&mut self, n: usize) -> io::Result<Vec<Vec<u8>>> {
        let recs: Vec<Rec> = self.index.iter().take(n).copied().collect();
        let mut out = Vec::with_capacity(recs.len());
        for r in recs {
            if self.reader.as_ref().is_none_or(|(s, _)| *s != r.segment) {
                let path = self.dir.join(segment_name(r.segment));
                self.reader = Some((r.segment, File::open(path)?));
            }
            let (_, f) = self.reader.as_ref().expect("reader");
            let mut hdr = [0u8; REC_HEADER as usize];
            f.read_exact_at(&mut hdr, r.offset)?;
            let mut buf = vec![0u8; r.len as usize];
            f.read_exact_at(&mut buf, r.offset + REC_HEADER)?;
            let sum = u32::from_le_bytes(hdr[12..16].try_into().expect("4"));
            if checksum(r.seq, &buf) != sum {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("spool entry {} fails its checksum", r.seq),
                ));
            }
            out.push(buf);
        }
        Ok(out)
    }

    /// Removes the `n` oldest entries (delivered, or refused for good).
    pub fn pop(&mut self, n: usize) -> io::Result<()> {
        for _ in 0..n {
            match self.index.pop_front() {
                Some(r) => self.live_bytes -= r.bytes(),
                None => break,
            }
        }
        self.advance_cursor()?;
        self.publish();
        Ok(())
    }

    fn cursor(&self) -> u64 {
        self.index.front().map_or(self.next_seq, |r| r.seq)
    }

    fn advance_cursor(&mut self) -> io::Result<()> {
        let c = self.cursor();
        write_atomic(&self.dir, "cursor", format!("{c}\n").as_bytes(), false)?;
        self.drop_consumed_segments()
    }

    /// Deletes segments every entry of which is behind the cursor (all of
    /// them when the spool is empty).
    fn drop_consumed_segments(&mut self) -> io::Result<()> {
        let live_from = self.index.front().map(|r| r.segment);
        while let Some(s) = self.segments.front() {
            if live_from.is_some_and(|first| s.first_seq >= first) {
                break;
            }
            let s = self.segments.pop_front().expect("non-empty");
            if self.reader.as_ref().is_some_and(|(f, _)| *f == s.first_seq) {
                self.reader = None;
            }
            if self.segments.is_empty() {
                self.writer = None;
            }
            match fs::remove_file(&s.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes the cursor durable (at shutdown).
    pub fn close(&mut self) -> io::Result<()> {
        let c = self.cursor();
        write_atomic(&self.dir, "cursor", format!("{c}\n").as_bytes(), true)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, seg: u64, max: u64) -> (Spool, Recovered, Arc<LaneMetrics>) {
        let m = Arc::new(LaneMetrics::default());
        let (s, r) = Spool::open(dir, seg, max, m.clone()).unwrap();
        (s, r, m)
    }

    fn payload(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i:04},\"pad\":\"{}\"}}", "x".repeat(40)).into_bytes()
    }

    fn segs(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("seg-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn appends_pops_and_replays_in_order_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, rec, m) = open(d.path(), 300, 1 << 20);
        assert_eq!(rec, Recovered::default());
        for chunk in (0..20).collect::<Vec<_>>().chunks(3) {
            let ps: Vec<Vec<u8>> = chunk.iter().map(|&i| payload(i)).collect();
            s.append(ps.iter().map(Vec::as_slice)).unwrap();
        }
        assert_eq!(s.len(), 20);
        assert!(segs(d.path()).len() > 1, "rolled segments");
        assert_eq!(s.peek(2).unwrap(), vec![payload(0), payload(1)]);
        s.pop(7).unwrap();
        assert_eq!(m.spool_entries.load(Ordering::Relaxed), 13);
        let before = segs(d.path()).len();
        drop(s);
        let (mut s, rec, _) = open(d.path(), 300, 1 << 20);
        assert_eq!(rec.entries, 13);
        assert_eq!(
            s.peek(100).unwrap(),
            (7..20).map(payload).collect::<Vec<_>>()
        );
        assert!(segs(d.path()).len() <= before);
        // New appends continue the sequence after the old ones.
        s.append([payload(20).as_slice()]).unwrap();
        s.pop(13).unwrap();
        assert_eq!(s.peek(5).unwrap(), vec![payload(20)]);
        s.pop(1).unwrap();
        assert!(s.is_empty());
        assert!(segs(d.path()).is_empty(), "{:?}", segs(d.path()));
        s.close().unwrap();
        let (s, rec, _) = open(d.path(), 300, 1 << 20);
        assert_eq!(rec.entries, 0);
        assert!(s.is_empty());
    }

    #[test]
    fn a_torn_tail_is_truncated_and_the_rest_kept() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _, _) = open(d.path(), 1 << 20, 1 << 20);
        for i in 0..5 {
            s.append([payload(i).as_slice()]).unwrap();
        }
        drop(s);
        let seg = d.path().join(&segs(d.path())[0]);
        let len = fs::metadata(&seg).unwrap().len();
        // Half of the last record, as a crash mid-write leaves it.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let (mut s, rec, _) = open(d.path(), 1 << 20, 1 << 20);
        assert_eq!(rec.entries, 4);
        assert!(rec.truncated_bytes > 0);
        s.append([payload(9).as_slice()]).unwrap();
        drop(s);
        let (mut s, rec, _) = open(d.path(), 1 << 20, 1 << 20);
        assert_eq!(rec.truncated_bytes, 0);
        let got = s.peek(10).unwrap();
        assert_eq!(
            got,
            vec![payload(0), payload(1), payload(2), payload(3), payload(9)]
        );
    }

    #[test]
    fn a_corrupt_byte_ends_the_valid_prefix() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _, _) = open(d.path(), 1 << 20, 1 << 20);
        let ps: Vec<Vec<u8>> = (0..4).map(payload).collect();
        s.append(ps.iter().map(Vec::as_slice)).unwrap();
        drop(s);
        let seg = d.path().join(&segs(d.path())[0]);
        let mut bytes = fs::read(&seg).unwrap();
        let rec_len = (REC_HEADER as usize) + payload(0).len();
        bytes[FILE_HEADER as usize + 2 * rec_len + 20] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let (mut s, rec, _) = open(d.path(), 1 << 20, 1 << 20);
        assert_eq!(rec.entries, 2);
        assert_eq!(s.peek(10).unwrap(), vec![payload(0), payload(1)]);
    }

    #[test]
    fn the_cap_drops_the_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let one = REC_HEADER + payload(0).len() as u64;
        let (mut s, _, m) = open(d.path(), 512, 5 * one);
        for i in 0..12 {
            s.append([payload(i).as_slice()]).unwrap();
        }
        assert_eq!(s.len(), 5);
        assert_eq!(m.dropped_by_cap.load(Ordering::Relaxed), 7);
        assert!(s.bytes() <= 5 * one);
        assert_eq!(
            s.peek(10).unwrap(),
            (7..12).map(payload).collect::<Vec<_>>()
        );
        drop(s);
        let (mut s, rec, _) = open(d.path(), 512, 5 * one);
        assert_eq!(rec.entries, 5);
        assert_eq!(s.peek(1).unwrap(), vec![payload(7)]);
        // Segments wholly behind the cursor are gone from disk.
        let on_disk: u64 = segs(d.path())
            .iter()
            .map(|n| fs::metadata(d.path().join(n)).unwrap().len())
            .sum();
        assert!(
            on_disk <= 5 * one + 512 + one + 2 * FILE_HEADER,
            "{on_disk}"
        );
    }
}
