//! Events from files, in event-time order: each input is decoded line by
//! line and passed through a bounded reorder buffer; several inputs are
//! merged by event time. Used by `replay` (and by `eval` for recorded data).
//!
//! Order is exact when no event is more than `reorder_window` events late in
//! its file; later ones are still processed, just out of order (and counted).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use anyhow::Context;
use tollgate_events::{Decoded, Decoder, Event, RecordMeta, Tally};

use tollgate_service::file_input as input;

/// One input's events, in event-time order.
pub struct EventStream {
    src: input::Source,
    dec: Decoder,
    line: Vec<u8>,
    items: Vec<Decoded>,
    /// The buffered events' (ts millis, arrival sequence, slot in `slab`),
    /// taken smallest first.
    order: Order,
    /// The buffered events, in slots reused from event to event: a `Box`
    /// per event was an allocation and a free each, ≈ 2 % of a replay.
    slab: Vec<Event>,
    /// Slots of `slab` whose events have been handed out.
    free: Vec<u32>,
    seq: u64,
    window: usize,
    done: bool,
    last_out_ms: i64,
    pub late: u64,
    pub tally: Tally,
}

impl EventStream {
    pub fn open(path: &str, dec: Decoder, window: usize) -> anyhow::Result<Self> {
        Ok(EventStream {
            src: input::open(path)?,
            dec,
            line: Vec::with_capacity(4096),
            items: Vec::new(),
            order: Order::with_capacity(window + 64),
            slab: Vec::with_capacity(window + 64),
            free: Vec::with_capacity(window + 64),
            seq: 0,
            window: window.max(1),
            done: false,
            last_out_ms: i64::MIN,
            late: 0,
            tally: Tally::default(),
        })
    }

    fn fill(&mut self) -> anyhow::Result<()> {
        let limit = self.dec.limits().max_record_bytes;
        let meta = RecordMeta::default();
        while !self.done && self.order.len() < self.window {
            // a line wholly inside the reader's buffer is decoded where it
            // lies; one that crosses the buffer's end (or an error, which
            // `read_line_bounded` reports) takes the copying path
            let whole = match self.src.reader.fill_buf() {
                Ok(chunk) => memchr::memchr(b'\n', chunk),
                Err(_) => None,
            };
            if let Some(end) = whole {
                // the buffer again, without I/O: it still holds the line
                let chunk = self.src.reader.fill_buf()?;
                // as `read_line_bounded` keeps it: the first `limit + 1`
                // bytes, then without a trailing `\r`
                let mut line = &chunk[..end.min(limit + 1)];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                self.dec.decode(line, &meta, &mut self.items);
                self.src.reader.consume(end + 1);
            } else {
                if !input::read_line_bounded(&mut *self.src.reader, &mut self.line, limit)
                    .with_context(|| format!("reading {}", self.src.name))?
                {
                    self.done = true;
                    break;
                }
                self.dec.decode(&self.line, &meta, &mut self.items);
            }
            for d in self.items.drain(..) {
                self.tally.add(&d);
                if let Decoded::Event(ev) = d {
                    self.seq += 1;
                    let ms = ev.ts.timestamp_millis();
                    let slot = match self.free.pop() {
                        Some(i) => {
                            self.slab[i as usize] = ev;
                            i
                        }
                        None => {
                            self.slab.push(ev);
                            u32::try_from(self.slab.len() - 1).context("reorder buffer")?
                        }
                    };
                    self.order.push((ms, self.seq, slot));
                }
            }
        }
        Ok(())
    }

    /// The time of the next event, if any.
    pub fn peek_ms(&mut self) -> anyhow::Result<Option<i64>> {
        self.fill()?;
        Ok(self.order.peek().map(|(ms, _, _)| ms))
    }

    /// The next event; its slot is reused from the next call on.
    pub fn next_event(&mut self) -> anyhow::Result<Option<&Event>> {
        self.fill()?;
        let Some((ms, _, slot)) = self.order.pop() else {
            return Ok(None);
        };
        if ms < self.last_out_ms {
            self.late += 1;
        }
        self.last_out_ms = self.last_out_ms.max(ms);
        self.free.push(slot);
        Ok(Some(&self.slab[slot as usize]))
    }

    pub fn quirks(&self) -> &tollgate_events::Quirks {
        &self.dec.quirks
    }
}

/// The reorder buffer's keys, (ts, arrival sequence, slot), taken smallest
/// first. A file is nearly in time order, so a key no earlier than the last
/// one in order joins a FIFO run and only the others go to a heap: taking
/// the next is then a comparison of two fronts instead of a heap pop, whose
/// sift through a 100,000-entry heap (2.4 MB per input) missed the caches
/// at every level — ≈ 5 % of a replay's samples in `perf`. The order
/// taken is exactly a single heap's: the run is sorted (arrival sequences
/// only grow), and every key is in one of the two.
struct Order {
    run: VecDeque<(i64, u64, u32)>,
    late: BinaryHeap<Reverse<(i64, u64, u32)>>,
}

impl Order {
    fn with_capacity(n: usize) -> Self {
        Order {
            run: VecDeque::with_capacity(n),
            late: BinaryHeap::new(),
        }
    }

    fn len(&self) -> usize {
        self.run.len() + self.late.len()
    }

    fn push(&mut self, k: (i64, u64, u32)) {
        match self.run.back() {
            Some(b) if k < *b => self.late.push(Reverse(k)),
            _ => self.run.push_back(k),
        }
    }

    fn peek(&self) -> Option<(i64, u64, u32)> {
        match (self.run.front(), self.late.peek()) {
            (Some(r), Some(Reverse(l))) => Some(*r.min(l)),
            (Some(r), None) => Some(*r),
            (None, Some(Reverse(l))) => Some(*l),
            (None, None) => None,
        }
    }

    fn pop(&mut self) -> Option<(i64, u64, u32)> {
        match (self.run.front(), self.late.peek()) {
            (Some(r), Some(Reverse(l))) if l < r => self.late.pop().map(|Reverse(k)| k),
            (Some(_), _) => self.run.pop_front(),
            (None, _) => self.late.pop().map(|Reverse(k)| k),
        }
    }
}

/// Merges streams by event time.
pub struct Merged {
    pub streams: Vec<EventStream>,
}

impl Merged {
    pub fn next_event(&mut self) -> anyhow::Result<Option<&Event>> {
        let mut best: Option<(usize, i64)> = None;
        for (i, s) in self.streams.iter_mut().enumerate() {
            if let Some(ms) = s.peek_ms()? {
                if best.is_none_or(|(_, b)| ms < b) {
                    best = Some((i, ms));
                }
            }
        }
        match best {
            Some((i, _)) => self.streams[i].next_event(),
            None => Ok(None),
        }
    }

    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for s in &self.streams {
            t.decoded += s.tally.decoded;
            for (k, v) in &s.tally.skipped {
                *t.skipped.entry(*k).or_default() += v;
            }
            for (k, v) in &s.tally.rejected {
                *t.rejected.entry(*k).or_default() += v;
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_events::{DecodeConfig, Format, RejectReason, TenantRule};

    fn dns_line(i: u64, pad: usize) -> String {
        format!(
            r#"{{"datetime":"Mon Mar 04 00:00:{:02} 2024","user":"erin.turner%40oceanic3.example.com","dns_req":"github.com","dns_reqtype":"A","dns_resp":"140.82.112.3","durationms":7,"clt_sip":"10.4.130.134","srv_dip":"185.46.212.88","srv_dport":53,"reqaction":"REQ_ALLOW","category":"Online Storage","company":"oceanic-003","tz":"GMT","recordid":"{i}","devicehostname":"{}"}}"#,
            i % 60,
            "d".repeat(pad)
        )
    }

    /// Lines are read as `read_line_bounded` reads them whether they lie
    /// inside the reader's buffer (decoded in place) or cross its end
    /// (copied): `\r\n` endings, a line over the record limit rejected as
    /// too large, one without a final newline, and lines of every length
    /// across several 256 KiB buffers.
    #[test]
    fn lines_decode_alike_inside_and_across_the_read_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dns.ndjson");
        let mut text = String::new();
        let mut want = 0u64;
        for i in 0..3_000u64 {
            text.push_str(&dns_line(i, (i as usize * 37) % 900));
            text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
            want += 1;
        }
        text.push_str(&dns_line(3_000, 5_000)); // over the limit below
        text.push('\n');
        text.push_str(&dns_line(3_001, 0)); // no final newline
        want += 1;
        std::fs::write(&path, &text).unwrap();
        let mut cfg = DecodeConfig::new(
            Format::Auto,
            TenantRule::Pointer {
                pointer: "/company".into(),
            },
        );
        cfg.limits.max_record_bytes = 4_096;
        let dec = Decoder::new(&cfg).unwrap();
        let mut s = EventStream::open(path.to_str().unwrap(), dec, 100).unwrap();
        let mut ids = Vec::new();
        while let Some(ev) = s.next_event().unwrap() {
            ids.push(ev.id.as_ref().map(|t| t.to_string()).unwrap());
        }
        assert_eq!(s.tally.decoded, want);
        assert_eq!(
            s.tally.rejected.get(&RejectReason::TooLarge),
            Some(&1),
            "{:?}",
            s.tally
        );
        assert_eq!(s.tally.rejected.len(), 1, "{:?}", s.tally);
        assert_eq!(ids.len() as u64, want);
        assert!(
            text.len() > 2 * (256 << 10),
            "the file spans several buffers"
        );
        // every line but the oversized one, once (in event-time order)
        let mut got: Vec<u64> = ids.iter().map(|i| i.parse().unwrap()).collect();
        got.sort_unstable();
        let expected: Vec<u64> = (0..3_000).chain([3_001]).collect();
        assert_eq!(got, expected);
    }

    /// The run-and-heap order takes keys exactly as one heap does, for
    /// inputs in order, nearly in order, in reverse and at random, with
    /// takes interleaved as the reorder buffer does them.
    #[test]
    fn order_takes_keys_as_a_single_heap_does() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let shapes: [&dyn Fn(u64, u64) -> i64; 4] = [
            &|i, _| i as i64,
            &|i, r| i as i64 * 10 - if r % 10 == 0 { (r % 500) as i64 } else { 0 },
            &|i, _| -(i as i64),
            &|_, r| (r % 1000) as i64,
        ];
        for shape in shapes {
            let (mut ours, mut heap) = (Order::with_capacity(16), BinaryHeap::new());
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for i in 0..5_000u64 {
                let k = (shape(i, rnd()), i, i as u32);
                ours.push(k);
                heap.push(Reverse(k));
                assert_eq!(ours.len(), heap.len());
                // a window of 100, and now and then a drain
                while ours.len() > 100 || (i % 997 == 0 && ours.len() > 0) {
                    assert_eq!(ours.peek(), heap.peek().map(|Reverse(k)| *k));
                    got.push(ours.pop());
                    want.push(heap.pop().map(|Reverse(k)| k));
                }
            }
            while let Some(k) = ours.pop() {
                got.push(Some(k));
                want.push(heap.pop().map(|Reverse(k)| k));
            }
            assert_eq!(heap.pop(), None);
            assert_eq!(got, want);
        }
    }
}
