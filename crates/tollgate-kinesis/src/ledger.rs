//! Per-shard bookkeeping of which records the pipeline has finished, and so
//! which sequence number may be checkpointed. Pure; one ledger per shard
//! reader, owned by it (acknowledgements reach it as tickets over a channel).
//!
//! The invariant: the checkpoint is the sequence number of a record that was
//! acknowledged *and* every earlier record of the shard was acknowledged too,
//! however out of order the acknowledgements arrive. A record the pipeline
//! never accepted (its `submit` failed or was cancelled) is *abandoned*: the
//! checkpoint never passes it, even if its token is later dropped — dropping
//! is what signals completion, so a dropped-but-unprocessed record must not
//! count.
//!
//! Sequence numbers are opaque here: records are ordered by arrival, which
//! is shard order, so no decimal comparison of 128-digit numbers is needed.

use std::collections::VecDeque;

/// Identifies one received record within its shard's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Done,
    Abandoned,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct SequenceLedger {
    /// Ticket of `entries[0]`.
    base: u64,
    /// Records received and not yet folded into the checkpoint, in shard order.
    entries: VecDeque<(String, State)>,
    /// Sequence number of the last record folded into the checkpoint.
    checkpoint: Option<String>,
    /// Records still waiting for their acknowledgement.
    pending: usize,
}

impl SequenceLedger {
    /// A ledger for a shard whose checkpoint is `checkpoint` (None: nothing
    /// acknowledged yet).
    pub fn new(checkpoint: Option<String>) -> Self {
        SequenceLedger {
            checkpoint,
            ..SequenceLedger::default()
        }
    }

    /// A record was read and is about to be handed to the pipeline.
    pub fn received(&mut self, sequence_number: String) -> Ticket {
        let t = Ticket(self.base + self.entries.len() as u64);
        self.entries.push_back((sequence_number, State::Pending));
        self.pending += 1;
        t
    }

    /// The record's acknowledgement arrived. Returns true when the checkpoint
    /// advanced. Unknown, repeated and abandoned tickets change nothing.
    pub fn acked(&mut self, t: Ticket) -> bool {
        let Some(e) = self.entry_mut(t) else {
            return false;
        };
        if e.1 != State::Pending {
            return false;
        }
        e.1 = State::Done;
        self.pending -= 1;
        let mut advanced = false;
        while self.entries.front().is_some_and(|e| e.1 == State::Done) {
            let (seq, _) = self.entries.pop_front().expect("front exists");
            self.base += 1;
            self.checkpoint = Some(seq);
            advanced = true;
        }
        advanced
    }

    /// The pipeline did not take the record: the checkpoint must stay before
    /// it for good (the record is read again after a restart).
    pub fn abandon(&mut self, t: Ticket) {
        let was_pending = match self.entry_mut(t) {
            Some(e) => std::mem::replace(&mut e.1, State::Abandoned) == State::Pending,
            None => false,
        };
        if was_pending {
            self.pending -= 1;
        }
    }

    fn entry_mut(&mut self, t: Ticket) -> Option<&mut (String, State)> {
        let i = t.0.checked_sub(self.base)?;
        self.entries.get_mut(usize::try_from(i).ok()?)
    }

    /// The sequence number that may be checkpointed.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Records held in memory (received, not yet folded into the checkpoint).
    pub fn held(&self) -> usize {
        self.entries.len()
    }

    /// Records still waiting for an acknowledgement (abandoned ones excluded).
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// True when a record was abandoned: the checkpoint cannot advance past it.
    pub fn blocked(&self) -> bool {
        self.entries.iter().any(|e| e.1 == State::Abandoned)
    }

    /// True when every received record is folded into the checkpoint.
    pub fn is_settled(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(l: &mut SequenceLedger, n: u64) -> Vec<Ticket> {
        (0..n).map(|i| l.received(format!("s{i}"))).collect()
    }

    #[test]
    fn in_order_acknowledgements_advance_one_by_one() {
        let mut l = SequenceLedger::new(None);
        let t = seqs(&mut l, 3);
        for (i, t) in t.into_iter().enumerate() {
            assert!(l.acked(t));
            assert_eq!(l.checkpoint(), Some(format!("s{i}").as_str()));
        }
        assert!(l.is_settled());
        assert_eq!(l.pending(), 0);
    }

    #[test]
    fn an_unacknowledged_record_holds_the_checkpoint_back() {
        let mut l = SequenceLedger::new(Some("before".into()));
        let t = seqs(&mut l, 4);
        assert!(!l.acked(t[1]));
        assert!(!l.acked(t[3]));
        assert_eq!(l.checkpoint(), Some("before"));
        assert_eq!(l.pending(), 2);
        assert!(l.acked(t[0]));
        assert_eq!(l.checkpoint(), Some("s1"));
        assert!(l.acked(t[2]));
        assert_eq!(l.checkpoint(), Some("s3"));
        assert!(l.is_settled());
    }

    #[test]
    fn unknown_and_repeated_tickets_change_nothing() {
        let mut l = SequenceLedger::new(None);
        assert!(!l.acked(Ticket(0)));
        let t = seqs(&mut l, 2);
        assert!(l.acked(t[0]));
        assert!(!l.acked(t[0]));
        assert!(!l.acked(Ticket(99)));
        assert_eq!(l.checkpoint(), Some("s0"));
        assert_eq!(l.held(), 1);
        // Tickets keep counting after the front was folded away.
        let t2 = l.received("s2".into());
        assert_eq!(t2, Ticket(2));
        assert!(!l.acked(t2));
        assert!(l.acked(t[1]));
        assert_eq!(l.checkpoint(), Some("s2"));
    }

    #[test]
    fn an_abandoned_record_is_never_passed() {
        let mut l = SequenceLedger::new(None);
        let t = seqs(&mut l, 3);
        l.abandon(t[1]);
        assert!(l.blocked());
        // Its token being dropped later (an acknowledgement) does not count.
        assert!(!l.acked(t[1]));
        assert!(!l.acked(t[2]));
        assert!(l.acked(t[0]));
        assert_eq!(l.checkpoint(), Some("s0"));
        assert_eq!(l.pending(), 0);
        assert!(!l.is_settled());
    }
}
