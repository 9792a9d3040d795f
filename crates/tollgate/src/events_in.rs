//! Events from files, in event-time order: each input is decoded line by
//! line and passed through a bounded reorder buffer; several inputs are
//! merged by event time. Used by `replay` (and by `eval` for recorded data).
//!
//! Order is exact when no event is more than `reorder_window` events late in
//! its file; later ones are still processed, just out of order (and counted).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use anyhow::Context;
use tollgate_events::{Decoded, Decoder, Event, RecordMeta, Tally};

use tollgate_service::file_input as input;

/// One input's events, in event-time order.
pub struct EventStream {
    src: input::Source,
    dec: Decoder,
    line: Vec<u8>,
    items: Vec<Decoded>,
    /// Min-heap on (ts millis, arrival sequence).
    heap: BinaryHeap<Reverse<(i64, u64, HeapEvent)>>,
    seq: u64,
    window: usize,
    done: bool,
    last_out_ms: i64,
    pub late: u64,
    pub tally: Tally,
}

/// An event ordered only by the heap key.
struct HeapEvent(Box<Event>);

impl PartialEq for HeapEvent {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeapEvent {}
impl PartialOrd for HeapEvent {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapEvent {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl EventStream {
    pub fn open(path: &str, dec: Decoder, window: usize) -> anyhow::Result<Self> {
        Ok(EventStream {
            src: input::open(path)?,
            dec,
            line: Vec::with_capacity(4096),
            items: Vec::new(),
            heap: BinaryHeap::with_capacity(window + 64),
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
        while !self.done && self.heap.len() < self.window {
            if !input::read_line_bounded(&mut *self.src.reader, &mut self.line, limit)
                .with_context(|| format!("reading {}", self.src.name))?
            {
                self.done = true;
                break;
            }
            self.dec.decode(&self.line, &meta, &mut self.items);
            for d in self.items.drain(..) {
                self.tally.add(&d);
                if let Decoded::Event(ev) = d {
                    self.seq += 1;
                    let ms = ev.ts.timestamp_millis();
                    self.heap
                        .push(Reverse((ms, self.seq, HeapEvent(Box::new(ev)))));
                }
            }
        }
        Ok(())
    }

    /// The time of the next event, if any.
    pub fn peek_ms(&mut self) -> anyhow::Result<Option<i64>> {
        self.fill()?;
        Ok(self.heap.peek().map(|Reverse((ms, _, _))| *ms))
    }

    pub fn next_event(&mut self) -> anyhow::Result<Option<Box<Event>>> {
        self.fill()?;
        Ok(self.heap.pop().map(|Reverse((ms, _, HeapEvent(ev)))| {
            if ms < self.last_out_ms {
                self.late += 1;
            }
            self.last_out_ms = self.last_out_ms.max(ms);
            ev
        }))
    }

    pub fn quirks(&self) -> &tollgate_events::Quirks {
        &self.dec.quirks
    }
}

/// Merges streams by event time.
pub struct Merged {
    pub streams: Vec<EventStream>,
}

impl Merged {
    pub fn next_event(&mut self) -> anyhow::Result<Option<Box<Event>>> {
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
