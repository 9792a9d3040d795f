//! Which shards to read, from where, and when: the resharding rules. Pure —
//! it looks at a shard listing and the checkpoints, never at the network.
//!
//! Kinesis resharding closes a shard and opens one child (merge) or two
//! (split); a child names its `parent` and, for a merge, its
//! `adjacent_parent`. Records with the same partition key go to the parent
//! before the reshard and to a child after it, so per-key order holds only
//! if every parent is *finished* — closed, read to its end and every record
//! acknowledged and checkpointed — before a child is read. The rules:
//!
//! - a shard marked finished in the checkpoints is never read again;
//! - a shard starts once each of its parents is finished, or gone from the
//!   listing (trimmed past the retention period: nothing left to read);
//! - it starts after its checkpoint (`AFTER_SEQUENCE_NUMBER`) when it has
//!   one, else at the configured start — except that with `latest` a child
//!   of a parent this input has read starts at `TRIM_HORIZON` (everything
//!   after the parent's end is new to us), and a closed shard this input
//!   never read is skipped: at `latest` it holds nothing to read, and its
//!   children are the shards that are "latest".

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::CheckpointFile;
use crate::config::Start;
use crate::ShardId;

/// A shard as listed by `ListShards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: ShardId,
    pub parent: Option<ShardId>,
    pub adjacent_parent: Option<ShardId>,
    /// It has an ending sequence number: no record will be added.
    pub closed: bool,
}

impl ShardInfo {
    fn parents(&self) -> impl Iterator<Item = &ShardId> {
        self.parent.iter().chain(self.adjacent_parent.iter())
    }
}

/// Where a shard reader asks for its first iterator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Position {
    After(String),
    Start(Start),
}

/// The shards to start now (not finished, not running, parents done), each
/// with its position, in shard-id order.
pub(crate) fn plan(
    listed: &[ShardInfo],
    store: &CheckpointFile,
    running: &BTreeSet<ShardId>,
    start: Start,
) -> Vec<(ShardId, Position)> {
    let by_id: BTreeMap<&str, &ShardInfo> = listed.iter().map(|s| (s.id.as_str(), s)).collect();
    let latest = matches!(start, Start::Latest);
    // At `latest`, a closed shard we hold no checkpoint for is not read.
    let skipped = |s: &ShardInfo| latest && s.closed && store.get(s.id.as_str()).is_none();
    let parent_done = |p: &ShardId| match by_id.get(p.as_str()) {
        None => true,
        Some(ps) => store.is_finished(p.as_str()) || skipped(ps),
    };
    let mut out = Vec::new();
    for s in listed {
        if running.contains(&s.id) || store.is_finished(s.id.as_str()) || skipped(s) {
            continue;
        }
        if !s.parents().all(parent_done) {
            continue;
        }
        let pos = match store
            .get(s.id.as_str())
            .and_then(|c| c.sequence_number.clone())
        {
            Some(seq) => Position::After(seq),
            None if latest && s.parents().any(|p| store.get(p.as_str()).is_some()) => {
                Position::Start(Start::TrimHorizon)
            }
            None => Position::Start(start),
        };
        out.push((s.id.clone(), pos));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Forgets finished shards that are no longer listed (trimmed): nothing
/// refers to them any more. Returns true when something was removed.
pub(crate) fn prune(store: &mut CheckpointFile, listed: &[ShardInfo]) -> bool {
    let ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    let before = store.shards.len();
    store
        .shards
        .retain(|id, c| !c.finished || ids.contains(id.as_str()));
    store.shards.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ShardCheckpoint;

    fn id(s: &str) -> ShardId {
        ShardId::new(s)
    }

    fn shard(s: &str, parent: Option<&str>, adjacent: Option<&str>, closed: bool) -> ShardInfo {
        ShardInfo {
            id: id(s),
            parent: parent.map(id),
            adjacent_parent: adjacent.map(id),
            closed,
        }
    }

    fn store(entries: &[(&str, Option<&str>, bool)]) -> CheckpointFile {
        let mut f = CheckpointFile::empty("s");
        for (s, seq, finished) in entries {
            f.shards.insert(
                (*s).into(),
                ShardCheckpoint {
                    sequence_number: seq.map(str::to_owned),
                    finished: *finished,
                },
            );
        }
        f
    }

    /// 0 was split into 1 and 2; 1 and 2 were merged into 3.
    fn lineage() -> Vec<ShardInfo> {
        vec![
            shard("0", None, None, true),
            shard("1", Some("0"), None, true),
            shard("2", Some("0"), None, true),
            shard("3", Some("1"), Some("2"), false),
        ]
    }

    fn ids(p: &[(ShardId, Position)]) -> Vec<&str> {
        p.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn children_wait_for_every_parent_to_finish() {
        let l = lineage();
        let none = BTreeSet::new();
        let p = plan(&l, &store(&[]), &none, Start::TrimHorizon);
        assert_eq!(p, vec![(id("0"), Position::Start(Start::TrimHorizon))]);
        // 0 read but not finished: nothing new, and 0 is not restarted while running.
        let running: BTreeSet<_> = [id("0")].into();
        assert!(plan(
            &l,
            &store(&[("0", Some("9"), false)]),
            &running,
            Start::TrimHorizon
        )
        .is_empty());
        let s = store(&[("0", Some("9"), true)]);
        assert_eq!(ids(&plan(&l, &s, &none, Start::TrimHorizon)), ["1", "2"]);
        // The merge child needs both parents.
        let s = store(&[
            ("0", None, true),
            ("1", Some("5"), true),
            ("2", Some("6"), false),
        ]);
        assert_eq!(
            plan(&l, &s, &none, Start::TrimHorizon),
            vec![(id("2"), Position::After("6".into()))]
        );
        let s = store(&[("0", None, true), ("1", None, true), ("2", None, true)]);
        assert_eq!(ids(&plan(&l, &s, &none, Start::TrimHorizon)), ["3"]);
    }

    #[test]
    fn a_parent_gone_from_the_listing_does_not_block() {
        let l = vec![shard("1", Some("0"), None, false)];
        let p = plan(&l, &store(&[]), &BTreeSet::new(), Start::TrimHorizon);
        assert_eq!(ids(&p), ["1"]);
    }

    #[test]
    fn latest_skips_closed_shards_it_never_read_and_reads_children_of_read_parents_fully() {
        let l = vec![
            shard("0", None, None, true),
            shard("1", Some("0"), None, false),
            shard("2", Some("0"), None, false),
        ];
        let none = BTreeSet::new();
        // Fresh start: 0 is closed and unread, so its children start at latest.
        let p = plan(&l, &store(&[]), &none, Start::Latest);
        assert_eq!(
            p,
            vec![
                (id("1"), Position::Start(Start::Latest)),
                (id("2"), Position::Start(Start::Latest)),
            ]
        );
        // 0 was read by us (it has an entry) and finished: children from the horizon.
        let s = store(&[("0", None, true)]);
        let p = plan(&l, &s, &none, Start::Latest);
        assert_eq!(p[0], (id("1"), Position::Start(Start::TrimHorizon)));
        // 0 read, not finished: children wait.
        let s = store(&[("0", Some("3"), false)]);
        assert_eq!(
            plan(&l, &s, &none, Start::Latest),
            vec![(id("0"), Position::After("3".into()))]
        );
    }

    #[test]
    fn finished_shards_are_pruned_only_once_unlisted() {
        let mut s = store(&[
            ("0", None, true),
            ("1", Some("4"), false),
            ("2", None, true),
        ]);
        let l = vec![
            shard("2", None, None, true),
            shard("3", Some("2"), None, false),
        ];
        assert!(prune(&mut s, &l));
        assert_eq!(s.shards.keys().collect::<Vec<_>>(), ["1", "2"]);
        assert!(!prune(&mut s, &l));
    }
}
