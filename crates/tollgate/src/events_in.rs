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
    /// Min-heap on (ts millis, arrival sequence, slot in `slab`).
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
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
            heap: BinaryHeap::with_capacity(window + 64),
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
                    self.heap.push(Reverse((ms, self.seq, slot)));
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

    /// The next event; its slot is reused from the next call on.
    pub fn next_event(&mut self) -> anyhow::Result<Option<&Event>> {
        self.fill()?;
        let Some(Reverse((ms, _, slot))) = self.heap.pop() else {
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
