//! Acknowledgements flowing back from the sinks.
//!
//! The tracker knows, for every batch in flight, which sinks still owe an
//! answer, and for every file, the batches that cover it in order. A file's
//! committed offset moves only over the longest prefix of its batches that
//! every sink has acknowledged: batches may finish out of order (sinks run
//! several at once), but the checkpoint never runs ahead of delivery.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::checkpoint::Checkpoints;
use crate::file::FileId;

/// Identifies a batch inside the pipeline.
pub type BatchId = u64;

struct InFlight {
    remaining: usize,
    acks: Vec<(FileId, u64)>,
}

/// Tracks batches until every sink has acknowledged them.
pub struct AckTracker {
    sinks: usize,
    next: BatchId,
    batches: HashMap<BatchId, InFlight>,
    /// Per file: (batch, offset covered, fully acknowledged), in batch order.
    files: HashMap<FileId, VecDeque<(BatchId, u64, bool)>>,
    checkpoints: Arc<Mutex<Checkpoints>>,
}

impl AckTracker {
    /// A tracker for batches that `sinks` sinks must each acknowledge.
    pub fn new(sinks: usize, checkpoints: Arc<Mutex<Checkpoints>>) -> Self {
        Self {
            sinks,
            next: 0,
            batches: HashMap::new(),
            files: HashMap::new(),
            checkpoints,
        }
    }

    /// Register a batch (in the order batches were made) covering `acks`.
    pub fn register(&mut self, acks: Vec<(FileId, u64)>) -> BatchId {
        let id = self.next;
        self.next += 1;
        for (file, offset) in &acks {
            self.files
                .entry(*file)
                .or_default()
                .push_back((id, *offset, false));
        }
        self.batches.insert(
            id,
            InFlight {
                remaining: self.sinks,
                acks,
            },
        );
        id
    }

    /// One sink is done with batch `id` (delivered, or rejected rows
    /// dead-lettered). When it was the last, offsets are committed.
    pub fn ack(&mut self, id: BatchId) {
        let Some(batch) = self.batches.get_mut(&id) else {
            return;
        };
        batch.remaining -= 1;
        if batch.remaining > 0 {
            return;
        }
        let Some(batch) = self.batches.remove(&id) else {
            return;
        };
        let mut commits = Vec::new();
        for (file, _) in batch.acks {
            let Some(queue) = self.files.get_mut(&file) else {
                continue;
            };
            if let Some(slot) = queue.iter_mut().find(|(b, _, _)| *b == id) {
                slot.2 = true;
            }
            let mut committed = None;
            while let Some(&(_, offset, true)) = queue.front() {
                committed = Some(offset);
                queue.pop_front();
            }
            if queue.is_empty() {
                self.files.remove(&file);
            }
            if let Some(offset) = committed {
                commits.push((file, offset));
            }
        }
        if !commits.is_empty() {
            let mut store = crate::lock(&self.checkpoints);
            for (file, offset) in commits {
                store.commit(file, offset);
            }
        }
    }

    /// Batches not yet acknowledged by every sink.
    pub fn in_flight(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Entry;

    #[test]
    fn offsets_move_only_over_a_fully_acknowledged_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Mutex::new(Checkpoints::open(dir.path()).expect("store")));
        let f = FileId::next();
        store.lock().expect("lock").track(
            f,
            Entry {
                source: "s".into(),
                path: "/x".into(),
                dev: 1,
                ino: 1,
                head_len: 0,
                head_hash: 0,
                offset: 0,
            },
        );
        let committed = || store.lock().expect("lock").committed(f);
        let mut t = AckTracker::new(2, Arc::clone(&store));
        let b1 = t.register(vec![(f, 100)]);
        let b2 = t.register(vec![(f, 200)]);
        let b3 = t.register(vec![(f, 300)]);
        // Batch 2 and 3 complete first, on both sinks: nothing moves.
        for b in [b2, b3, b2, b3] {
            t.ack(b);
        }
        assert_eq!(committed(), Some(0));
        // Batch 1 on one sink only: still nothing.
        t.ack(b1);
        assert_eq!(committed(), Some(0));
        // The second sink acknowledges batch 1: the whole prefix commits.
        t.ack(b1);
        assert_eq!(committed(), Some(300));
        assert_eq!(t.in_flight(), 0);
    }
}
